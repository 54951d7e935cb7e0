"""OS facts from ``/etc/os-release``."""

from __future__ import annotations

import functools
import shlex
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class OsInfo:
    id: str = "linux"
    id_like: tuple[str, ...] = field(default_factory=tuple)
    name: str = "Linux"
    pretty_name: str = "Linux"
    version_id: str = ""

    @property
    def is_nixos(self) -> bool:
        return self.id == "nixos"


@functools.lru_cache(maxsize=256)
def parse_os_release(text: str) -> OsInfo:
    """Cached by text: a fleet's hosts share a few os-release files, and every check reads one."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, raw = line.split("=", 1)
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw.strip("\"'")]
        values[key.strip()] = parts[0] if parts else ""
    return OsInfo(
        id=values.get("ID", "linux").lower() or "linux",
        id_like=tuple(values.get("ID_LIKE", "").lower().split()),
        name=values.get("NAME", "Linux"),
        pretty_name=values.get("PRETTY_NAME", values.get("NAME", "Linux")),
        version_id=values.get("VERSION_ID", ""),
    )
