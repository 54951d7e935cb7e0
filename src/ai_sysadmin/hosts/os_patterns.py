"""Per-OS command patterns, as data: how to list and install updates, collect garbage, roll
back and deploy. An OS not in the table is "generic systemd": investigation works, and
OS-specific actions are refused with a clear reason."""

from __future__ import annotations

from dataclasses import dataclass

from .osinfo import OsInfo

Argv = tuple[str, ...]


@dataclass(frozen=True)
class OsProfile:
    family: str
    list_updates: Argv | None = None
    update: Argv | None = None
    gc: Argv | None = None
    rollback: Argv | None = None
    #: deploying from the control node; {host} is the target host
    deploy: tuple[Argv, ...] = ()


PROFILES: dict[str, OsProfile] = {
    "nixos": OsProfile(
        "nixos",
        list_updates=("nixos-rebuild", "dry-build", "--upgrade"),
        update=("nixos-rebuild", "switch", "--upgrade"),
        gc=("nix-collect-garbage", "--delete-older-than", "14d"),
        rollback=("nixos-rebuild", "switch", "--rollback"),
        deploy=(("nixos-rebuild", "switch", "--target-host", "{host}", "--use-remote-sudo"),
                ("nh", "os", "switch", "--target-host", "{host}")),
    ),
    "debian": OsProfile(
        "debian",
        list_updates=("apt", "list", "--upgradable"),
        update=("apt-get", "-y", "upgrade"),
        gc=("apt-get", "-y", "autoremove"),
    ),
    "arch": OsProfile(
        "arch",
        list_updates=("pacman", "-Qu"),
        update=("pacman", "-Syu", "--noconfirm"),
        gc=("paccache", "-r"),
    ),
    "fedora": OsProfile(
        "fedora",
        list_updates=("dnf", "check-update"),
        update=("dnf", "-y", "upgrade"),
        gc=("dnf", "-y", "autoremove"),
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


def profile_of(info: OsInfo | None) -> OsProfile | None:
    return profile_for(info.id, info.id_like) if info else None
