"""Which hosts are managed: from the config, added by the operator, or discovered (from
``~/.ssh/config`` or the journal) and waiting for the operator to accept them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..config import RemoteSystem, Settings
from ..errors import ConfigError

_TARGET = re.compile(r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)"
                     r"(?::(?P<port>[0-9]{1,5}))?$")


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
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port != 22 else ""
        return f"{user}{self.host}{port}"


def parse_target(entry: str | RemoteSystem, source: str = "config") -> HostSpec:
    """``host``, ``user@host:port``, ``[::1]:2222`` or a RemoteSystem table."""
    if isinstance(entry, RemoteSystem):
        return HostSpec(entry.name or entry.host, entry.host, entry.port, entry.user,
                        entry.key_file, entry.sudo, source)
    match = _TARGET.match(entry.strip())
    if not match or (match["port"] and not 0 < int(match["port"]) < 65536):
        raise ConfigError("remote_systems", [
            f"{entry!r} is not 'host', 'user@host' or 'user@host:port'"])
    host = match["host"].strip("[]")
    return HostSpec(host, host, int(match["port"] or 22), match["user"], source=source)


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
