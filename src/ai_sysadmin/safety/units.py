"""systemd unit names, validated by systemd's own naming rules (pure)."""

from __future__ import annotations

import re

UNIT_TYPES = ("service", "socket", "target", "timer", "mount", "automount", "swap", "path",
              "slice", "scope", "device")
# systemd: [a-zA-Z0-9:_.\-] plus one '@' for templates, at most 255 characters with the suffix
_UNIT_RE = re.compile(r"^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?$")


def normalise_unit(name: str) -> str | None:
    """``nginx`` -> ``nginx.service``; None when the name is not a valid unit name."""
    if not name or len(name) > 255 or name.startswith("-"):
        return None
    base, dot, suffix = name.rpartition(".")
    if not dot or suffix not in UNIT_TYPES:
        base, suffix = name, "service"
    if not base or not _UNIT_RE.match(base) or base.startswith("."):
        return None
    full = f"{base}.{suffix}"
    return full if len(full) <= 255 else None
