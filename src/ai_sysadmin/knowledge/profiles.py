"""A host's profile for the ``systems`` collection, from what its check collected.

Only slow-moving facts go in (OS, NixOS generation, cores, memory, block-device file systems,
how many services run), so a profile is written when the host changes, not at every check;
values are kept only as plain tokens, like a lesson's (host text never becomes knowledge).
"""

from __future__ import annotations

import re

from ..monitor.snapshot import Snapshot
from .learning import token
from .models import SystemProfile

#: file systems listed in a profile, at most
MAX_FILE_SYSTEMS = 16
#: an OS's PRETTY_NAME as distributions write it ("NixOS 24.05 (Uakari)"); anything else
#: is replaced by the OS id
_PRETTY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 .,()/+_:-]{0,99}$")


def profile_of(snap: Snapshot) -> SystemProfile | None:
    """The profile of the host ``snap`` was taken on; None before its OS is known."""
    if snap.os is None:
        return None
    facts: dict[str, str] = {"os_id": snap.os.id, "version_id": snap.os.version_id,
                             "cores": str(snap.cores)}
    if snap.nixos_generation:
        facts["nixos_generation"] = snap.nixos_generation
    if snap.systemd_running is not None:
        facts["systemd"] = "yes" if snap.systemd_running else "no"
    if snap.memory is not None:
        facts["memory_gib"] = f"{snap.memory.total_kb / 2**20:.0f}"
    if snap.mounts is not None:
        # a device-backed file system: where data lives (tmpfs and the like come and go)
        devices = sorted({m.target for m in snap.mounts if m.source.startswith("/dev/")})
        facts["file_systems"] = ",".join(devices[:MAX_FILE_SYSTEMS])
    if snap.units is not None:
        facts["services_running"] = str(sum(
            1 for u in snap.units if u.name.endswith(".service") and u.active == "active"))
    kept = {k: v for k, v in facts.items() if v and token(v) is not None}
    os_name = snap.os.pretty_name if _PRETTY.match(snap.os.pretty_name) else snap.os.id
    parts = [os_name]
    if "nixos_generation" in kept:
        parts.append(f"generation {kept['nixos_generation']}")
    parts.append(f"{kept.get('cores', '?')} cores")
    if "memory_gib" in kept:
        parts.append(f"{kept['memory_gib']} GiB memory")
    if "services_running" in kept:
        parts.append(f"{kept['services_running']} services running")
    return SystemProfile(host=snap.host, os=os_name[:200], summary=", ".join(parts),
                         facts=kept, updated_at=snap.taken_at)
