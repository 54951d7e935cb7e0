"""Which hosts are managed: from the config, added by the operator, or discovered (from
``~/.ssh/config`` or the journal) and waiting for the operator to accept them."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ..config import (
    RemoteSystem,
    Settings,
    check_host,
    join_target,
    machine_of,
    split_target,
)
from ..errors import ConfigError


@dataclass(frozen=True)
class HostSpec:
    name: str
    host: str
    #: None: none written, ~/.ssh/config's (else 22); a written one wins over it
    port: int | None = None
    user: str | None = None
    key_file: Path | None = None
    sudo: bool = False
    source: str = "config"

    @property
    def target(self) -> str:
        """What :func:`parse_target` reads back as this host (IPv6 in brackets)."""
        return join_target(self.user, self.host, self.port)

    @property
    def machine(self) -> tuple[str, int]:
        return machine_of(self.host, self.port)


def target_machine(target: str) -> tuple[str, int] | None:
    """:func:`machine_of` a stored target; None for one that reaches nothing."""
    try:
        _, host, port = split_target(target)
    except ValueError:
        return None
    return machine_of(host, port)


def parse_target(entry: str | RemoteSystem, source: str = "config") -> HostSpec:
    """``host``, ``user@host:port``, ``[::1]:2222`` or a RemoteSystem table."""
    if isinstance(entry, RemoteSystem):
        return HostSpec(entry.name or entry.host, entry.host, entry.port, entry.user,
                        entry.key_file, entry.sudo, source)
    try:
        user, host, port = split_target(entry)
    except ValueError as exc:
        raise ConfigError("remote_systems", [str(exc)]) from None
    return HostSpec(host, host, port, user, source=source)


#: a line of an ssh config: its keyword, then its arguments after whitespace or one ``=``
#: (``Host=web1`` and ``Host = web1`` as well as ``Host web1``), as OpenSSH reads it
_SSH_CONFIG_LINE = re.compile(r"\s*([^\s=]+)\s*=?\s*(.*)")


def _ssh_config_words(arguments: str) -> list[str]:
    """A line's arguments as OpenSSH splits them: quotes hold spaces (``"web 2"``), and a word
    that starts with ``#`` begins a comment. A quote left open makes no words (ssh refuses the
    whole file)."""
    lexer = shlex.shlex(arguments, posix=True)
    lexer.whitespace_split, lexer.commenters = True, ""
    words: list[str] = []
    try:
        for word in lexer:  # word by word: an open quote after a comment is the comment's
            if word.startswith("#"):
                break
            words.append(word)
    except ValueError:
        return []
    return words


def _host_name(word: str) -> bool:
    """Whether a ``Host`` word names one host: not a pattern (``*``, ``?``, ``!``), and a host
    name or address as the rest of the inventory takes it."""
    if any(c in word for c in "*?!"):
        return False
    try:
        check_host(word)
    except ValueError:
        return False
    return True


def ssh_config_hosts(path: Path) -> list[str]:
    """The concrete ``Host`` names of an ssh config (patterns and words that name no host,
    such as ``web 2``, are skipped)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    names: list[str] = []
    for line in text.splitlines():
        match = _SSH_CONFIG_LINE.fullmatch(line)
        if match is not None and match[1].lower() == "host":
            names += [w for w in _ssh_config_words(match[2]) if _host_name(w)]
    return list(dict.fromkeys(names))


def configured_hosts(settings: Settings) -> list[HostSpec]:
    return [parse_target(entry) for entry in settings.remote_systems]
