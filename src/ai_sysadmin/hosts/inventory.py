"""Which hosts are managed: from the config, added by the operator, or discovered (from
``~/.ssh/config`` or the journal) and waiting for the operator to accept them."""

from __future__ import annotations

import glob
import os
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


def target_machine(target: str) -> tuple[str, int] | None:
    """:func:`machine_of` a stored target, as written (the fleet's own,
    ``orchestrator.fleet.machine_at``, reads where ~/.ssh/config sends it); None for one
    that reaches nothing."""
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


#: how deep OpenSSH follows ``Include`` from the file it was given (readconf.c's
#: READCONF_MAX_DEPTH): ssh refuses a config that goes deeper, a loop of includes too; what
#: was read above that depth is kept
_INCLUDE_DEPTH = 16


def ssh_config_hosts(path: Path, ssh_dir: Path | None = None) -> list[str]:
    """The concrete ``Host`` names of a user's ssh config, in the order ssh reads them
    (patterns and words that name no host, such as ``web 2``, are skipped).

    ``Include``d files are read where they are included, as OpenSSH does: ``~`` is the home
    directory, a relative path is relative to ``ssh_dir`` (``~/.ssh`` for a user's config,
    wherever the config itself is; ``/etc/ssh`` for the system's), and each word is a glob,
    its files read in sorted order; a file that is not there is no error. One included inside
    a ``Host`` block is ssh's only for the names that block's patterns match, so a name it
    gives is kept only if those patterns match it; a ``Match`` block's conditions are not
    worked out, so what one includes is kept."""
    names: list[str] = []
    _read_ssh_config(path, Path("~/.ssh").expanduser() if ssh_dir is None else ssh_dir, 0, (),
                     names)
    return list(dict.fromkeys(names))


def _read_ssh_config(path: Path, ssh_dir: Path, depth: int,
                     within: tuple[tuple[str, ...], ...], names: list[str]) -> None:
    """Add to ``names`` the host names of one file of an ssh config and of those it includes;
    ``within``: the patterns of each ``Host`` block an ``Include`` of this file sits in."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return  # not there, not readable, or a directory a glob matched
    block: tuple[str, ...] = ()  # the Host patterns the next lines are for; (): every host
    for line in text.splitlines():
        match = _SSH_CONFIG_LINE.fullmatch(line)
        if match is None:
            continue
        keyword, words = match[1].lower(), _ssh_config_words(match[2])
        if keyword == "host":
            block = tuple(words)
            names += [w for w in words
                      if _host_name(w) and all(_host_matches(w, p) for p in within)]
        elif keyword == "match":
            block = ()
        elif keyword == "include" and depth < _INCLUDE_DEPTH:
            inside = (*within, block) if block else within
            for word in words:
                for found in _included(word, ssh_dir):
                    _read_ssh_config(found, ssh_dir, depth + 1, inside, names)


def _included(word: str, ssh_dir: Path) -> list[Path]:
    """The files an ``Include`` word names, as ssh globs them (``glob(3)``: sorted, ``~``
    expanded, a leading dot matched only by a dot)."""
    if word.startswith("~"):
        pattern = os.path.expanduser(word)
    elif os.path.isabs(word):
        pattern = word
    else:
        pattern = os.path.join(ssh_dir, word)
    return [Path(found) for found in sorted(glob.glob(pattern))]


def _host_matches(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether a ``Host`` line's patterns take ``name`` as ssh's match_pattern does: ``*``
    and ``?`` wildcards, case as written, and a matching ``!`` pattern refusing it
    whatever else matches."""
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        wanted = pattern[1:] if negated else pattern
        regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                        for c in wanted)
        if re.fullmatch(regex, name, re.DOTALL):
            if negated:
                return False
            matched = True
    return matched


def configured_hosts(settings: Settings) -> list[HostSpec]:
    return [parse_target(entry) for entry in settings.remote_systems]
