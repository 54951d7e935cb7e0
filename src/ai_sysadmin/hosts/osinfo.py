"""OS facts from ``/etc/os-release``."""

from __future__ import annotations

import functools
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .transport import Transport

#: where os-release(5) says to look, in turn: /usr/lib's where /etc's is missing or empty
OS_RELEASE_PATHS = ("/etc/os-release", "/usr/lib/os-release")


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


async def read_os_release(transport: Transport, timeout: float = 20.0) -> OsInfo:
    """The host's OS, read now through its transport (a host that does not answer raises
    :class:`TransportError`; one with no os-release file is plain Linux, as os-release(5)
    says)."""
    for path in OS_RELEASE_PATHS:
        text = await transport.read_file(path, timeout)
        if text and text.strip():
            return parse_os_release(text)
    return parse_os_release("")
