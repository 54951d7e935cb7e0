"""Which hosts are managed: from the config, added by the operator, or discovered (from
``~/.ssh/config`` or the journal) and waiting for the operator to accept them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import RemoteSystem, Settings, join_target, split_target
from ..errors import ConfigError


@dataclass(frozen=True)
class HostSpec:
    name: str
    host: str
    port: int = 22
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


def machine_of(host: str, port: int) -> tuple[str, int]:
    """What makes two targets one machine. The user is only an account on it; DNS names are
    case-insensitive and a rooted ``web1.`` is ``web1``. A target without port reads back as
    22, like ``:22``: both leave the port to ~/.ssh/config, so they reach the same place."""
    return host.lower().removesuffix("."), port


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


def ssh_config_hosts(path: Path) -> list[str]:
    """The concrete ``Host`` names of an ssh config (patterns with * ? ! are skipped)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    names: list[str] = []
    for line in text.splitlines():
        words = line.strip().split()
        if len(words) >= 2 and words[0].lower() == "host":
            names += [w for w in words[1:] if not any(c in w for c in "*?!")]
    return list(dict.fromkeys(names))


def configured_hosts(settings: Settings) -> list[HostSpec]:
    return [parse_target(entry) for entry in settings.remote_systems]
