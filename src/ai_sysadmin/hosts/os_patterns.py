"""Per-OS command patterns, as data: how to install updates and roll them back. An OS not in
the table is "generic systemd": investigation works, and OS-specific actions are refused with a
clear reason."""

from __future__ import annotations

from dataclasses import dataclass

Argv = tuple[str, ...]


@dataclass(frozen=True)
class OsProfile:
    family: str
    update: Argv | None = None
    rollback: Argv | None = None


PROFILES: dict[str, OsProfile] = {
    "nixos": OsProfile(
        "nixos",
        update=("nixos-rebuild", "switch", "--upgrade"),
        rollback=("nixos-rebuild", "switch", "--rollback"),
    ),
    "debian": OsProfile(
        "debian",
        update=("apt-get", "-y", "upgrade"),
    ),
    "arch": OsProfile(
        "arch",
        update=("pacman", "-Syu", "--noconfirm"),
    ),
    "fedora": OsProfile(
        "fedora",
        update=("dnf", "-y", "upgrade"),
        rollback=("dnf", "-y", "history", "undo", "last"),
    ),
}
#: IDs (or ID_LIKE words) and the family whose commands they use
FAMILIES: dict[str, str] = {
    "nixos": "nixos", "debian": "debian", "ubuntu": "debian", "raspbian": "debian",
    "linuxmint": "debian", "arch": "arch", "manjaro": "arch", "endeavouros": "arch",
    "fedora": "fedora", "rhel": "fedora", "centos": "fedora", "rocky": "fedora",
    "almalinux": "fedora",
}


def profile_for(os_id: str | None, id_like: tuple[str, ...] = ()) -> OsProfile | None:
    """The first of ID, then ID_LIKE words, that the table knows; None: generic systemd."""
    for word in (os_id, *id_like):
        if word and word in FAMILIES:
            return PROFILES[FAMILIES[word]]
    return None
