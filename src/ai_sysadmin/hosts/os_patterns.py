"""Per-OS command patterns, as data: how to install updates and roll them back.

Which package manager a host has is a fact the host reports (:data:`PACKAGE_PROGRAMS` found on
it, and whether it booted an ostree deployment), never a guess from its os-release family: an
Amazon Linux 2 or CentOS 7 host is "fedora"-like and has only yum; a Fedora CoreOS or
Silverblue host has dnf or yum too, but its system is an rpm-ostree deployment that they must
not change. The os-release family only breaks a tie between programs a host has (a Debian host
with dnf installed to build chroots is still updated with apt-get). A host with none of the
known programs is "generic systemd": investigation works, and OS-specific actions are refused
with a clear reason."""

from __future__ import annotations

from dataclasses import dataclass

Argv = tuple[str, ...]


@dataclass(frozen=True)
class PackageManager:
    """How one package manager installs pending updates (``program`` is the bare name the
    policy and ``programs.*`` know it by)."""

    program: str
    update: Argv
    rollback: Argv | None = None
    #: what a person must know beyond the command itself
    note: str = ""


#: what a person must know of an update an image-based system applies at its next boot
_NEXT_BOOT = ("it stages a new {}, applied only at the next boot (a reboot, which this does "
              "not do); the booted one stays the rollback")
#: every package manager a host is asked about, the first of a family preferred
MANAGERS: dict[str, PackageManager] = {m.program: m for m in (
    PackageManager("nixos-rebuild", ("nixos-rebuild", "switch", "--upgrade"),
                   rollback=("nixos-rebuild", "switch", "--rollback")),
    PackageManager("apt-get", ("apt-get", "-y", "upgrade")),
    PackageManager("pacman", ("pacman", "-Syu", "--noconfirm")),
    PackageManager("dnf", ("dnf", "-y", "upgrade"),
                   rollback=("dnf", "-y", "history", "undo", "last")),
    PackageManager("yum", ("yum", "-y", "update"),
                   rollback=("yum", "-y", "history", "undo", "last")),
    # it stages a new deployment beside the booted one, which stays as it is until a boot
    PackageManager("rpm-ostree", ("rpm-ostree", "upgrade"), note=_NEXT_BOOT.format("deployment")),
    # a global option, before the command; `update` keeps a fixed release's packages
    PackageManager("zypper", ("zypper", "--non-interactive", "update")),
    # a transactional system's (MicroOS, SLE Micro): its root is read-only, which zypper
    # cannot change; a new snapshot, the booted one untouched until a boot
    PackageManager("transactional-update", ("transactional-update", "--non-interactive", "up"),
                   note=_NEXT_BOOT.format("snapshot")),
)}
#: the update of a rolling release, whose packages move by whole snapshots: `zypper update`
#: on Tumbleweed leaves the system between two snapshots, the one way its makers support is
#: `dist-upgrade`
ROLLING: dict[str, PackageManager] = {
    "zypper": PackageManager(
        "zypper", ("zypper", "--non-interactive", "dist-upgrade"),
        note="a rolling release's update to its latest snapshot, which may remove or "
             "downgrade packages as that snapshot requires"),
    "transactional-update": PackageManager(
        "transactional-update", ("transactional-update", "--non-interactive", "dup"),
        note=_NEXT_BOOT.format("snapshot of the release's latest")),
}
#: os-release IDs of rolling releases
ROLLING_IDS = frozenset({"opensuse-tumbleweed", "opensuse-slowroll", "opensuse-microos"})
#: the programs a host is asked whether it has
PACKAGE_PROGRAMS: tuple[str, ...] = tuple(MANAGERS)
#: the file an ostree-booted system has (ostree's own test, as rpm-ostree and bootc make it)
OSTREE_BOOTED = "/run/ostree-booted"

#: each family's package managers, the preferred first (yum where dnf is missing: RHEL 7)
FAMILY_MANAGERS: dict[str, tuple[str, ...]] = {
    "nixos": ("nixos-rebuild",), "debian": ("apt-get",), "arch": ("pacman",),
    # transactional-update first: a host that has it has a read-only root zypper fails on
    "fedora": ("dnf", "yum"), "suse": ("transactional-update", "zypper"),
}
#: IDs (or ID_LIKE words) and the family whose commands they use
FAMILIES: dict[str, str] = {
    "nixos": "nixos", "debian": "debian", "ubuntu": "debian", "raspbian": "debian",
    "linuxmint": "debian", "arch": "arch", "manjaro": "arch", "endeavouros": "arch",
    "fedora": "fedora", "rhel": "fedora", "centos": "fedora", "rocky": "fedora",
    "almalinux": "fedora", "amzn": "fedora", "opensuse": "suse", "suse": "suse",
    "opensuse-leap": "suse", "opensuse-tumbleweed": "suse", "opensuse-slowroll": "suse",
    "sles": "suse", "sled": "suse", "opensuse-microos": "suse", "sl-micro": "suse",
    "opensuse-leap-micro": "suse",
}


def family_of(os_id: str | None, id_like: tuple[str, ...] = ()) -> str | None:
    """The first of ID, then ID_LIKE words, that the table knows; None: generic systemd."""
    for word in (os_id, *id_like):
        if word and word in FAMILIES:
            return FAMILIES[word]
    return None


def package_manager(os_id: str | None, id_like: tuple[str, ...], found: frozenset[str],
                    ostree_booted: bool) -> PackageManager | str:
    """The package manager that updates this host, from the programs of
    :data:`PACKAGE_PROGRAMS` it has (``found``) and whether it booted an ostree deployment; or
    why there is none."""
    if ostree_booted:
        # dnf or yum there would change the /usr the deployment holds read-only, or fail
        if "rpm-ostree" in found:
            return MANAGERS["rpm-ostree"]
        return ("the host booted an ostree deployment, whose packages only rpm-ostree "
                "changes, and it has no rpm-ostree")
    family = family_of(os_id, id_like)
    ours = [p for p in FAMILY_MANAGERS.get(family or "", ()) if p in found]
    if ours:
        return _of_release(ours[0], os_id)
    # rpm-ostree changes nothing on a system that did not boot a deployment of it
    others = [p for p in PACKAGE_PROGRAMS if p in found and p != "rpm-ostree"]
    if len(others) == 1 and family is None:
        return _of_release(others[0], os_id)
    known = ", ".join(PACKAGE_PROGRAMS)
    if not others:
        return f"the host has none of the package managers known here ({known})"
    has = " and ".join(others)
    if family:
        own = " or ".join(FAMILY_MANAGERS[family])
        return f"it has {has}, not {own} as its {family} family does: a person updates it"
    return (f"it has {has}, and its OS does not tell which one its packages come from: a "
            "person updates it")


def _of_release(program: str, os_id: str | None) -> PackageManager:
    """``program``'s update as the host's release takes it (a rolling one's own)."""
    return ROLLING.get(program, MANAGERS[program]) if os_id in ROLLING_IDS else MANAGERS[program]
