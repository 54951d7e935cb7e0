"""Which diagnostics run as root: a short allow-list, each with why (pure).

Every read for the model runs as the unprivileged reading identity (``hosts/reader.py``),
except these programs, which report metadata that only root can see on a normal host (sizes,
socket owners, firewall and RAID state), never the contents of a file. The command policy has
already judged their arguments read-only.
"""

from __future__ import annotations

from collections.abc import Sequence

from .argv_parser import Parsed, Refused, parse_args
from .readonly_commands import MDADM, READ_ONLY, lsof_options

ROOT_DIAGNOSTICS: dict[str, str] = {
    "du": "sizes of directories the reading identity may not list (sizes, never contents)",
    "ss": "which process holds a socket (another user's processes are hidden otherwise)",
    "lsof": "which process holds a port (-i alone; any other selection: the reader)",
    "nft": "the firewall rules (reading them needs CAP_NET_ADMIN)",
    "mdadm": "RAID state, read from the block devices",
    "zpool": "ZFS pool state",
    "dmesg": "the kernel ring buffer (kernel.dmesg_restrict hides it from users)",
}

#: du options that print or match what is inside a directory: each file's name (--all), the
#: times of what it lists (--time), names tried against a pattern (--exclude, an oracle for
#: names). As root they would show what the reading identity cannot list, so du with any of
#: them runs as the reader, who sees what it may see and is told "Permission denied" for the rest
_DU_SHOWS_NAMES = frozenset({"--all", "--time", "--exclude"})


def _du_parsed(args: Sequence[str]) -> Parsed | None:
    try:
        return parse_args("du", READ_ONLY["du"], list(args), "as root")
    except Refused:
        return None  # not a form the policy allows: never as root


def du_depth(args: Sequence[str]) -> int | None:
    """How many levels below its operands du names directories: 0 with ``-s`` or ``-d 0``, N
    with ``-d N``; None when it names every directory below them (neither given), or prints or
    matches the names of files (``--all``, ``--time``, ``--exclude``)."""
    parsed = _du_parsed(args)
    if parsed is None or any(name in _DU_SHOWS_NAMES for name, _ in parsed.options):
        return None
    if parsed.has("--summarize"):
        return 0
    depths = [value for name, value in parsed.options if name == "--max-depth" and value]
    return int(depths[-1]) if depths else None


def root_reason(argv: Sequence[str]) -> str | None:
    """Why this (already allowed) diagnostic runs as root; None: it runs as the reader.

    du runs as root only to size its operands (depth 0) or to name the directories directly
    inside them (depth 1), and the latter only where the reading identity may list those
    operands (:func:`listed_by_root`): deeper, a name could come from a directory it may not
    list (``du -d 2 /home``, ``du /root``)."""
    if not argv:
        return None
    if argv[0] == "du":
        depth = du_depth(argv[1:])
        if depth is None or depth > 1 or (depth == 1 and not listed_by_root(argv)):
            return None
    if argv[0] == "lsof" and not _lsof_network_only(argv[1:]):
        # as root, any other selection names the open files of every process it selects
        # (bare lsof, -p, -u, -c: /root/private/… too), a directory walked (+d, +D) the
        # files in directories the reader may not list, a file named whether a path it may
        # not see exists; the reader sees what it may see. Ports stay root's
        return None
    return ROOT_DIAGNOSTICS.get(argv[0])


#: lsof's options that, beside -i, select nothing more and show no file's name (how it
#: prints, which network files): the network files alone, as root
_LSOF_ROOT_OPTIONS = frozenset({"-i", "-n", "-P", "-l", "-t", "-F", "-a", "-w", "-b", "-O",
                                "-R", "-s", "-T", "+T", "+c", "-S", "-o", "-V", "-E", "-Q",
                                "-H", "-h", "-v", "-?"})


def _lsof_network_only(args: Sequence[str]) -> bool:
    """Whether lsof selects network files alone (``-i``, and options of how it prints them):
    which process holds a port, which only root may see."""
    try:
        used, names = lsof_options(list(args))
    except Refused:
        return False
    return "-i" in used and not names and set(used) <= _LSOF_ROOT_OPTIONS


def listed_by_root(argv: Sequence[str]) -> tuple[str, ...]:
    """The directories whose entries this diagnostic names when it runs as root (``du -d 1``
    names what is directly inside its operands): it may run as root only where the reading
    identity may list each of them. Empty: it names nothing inside a directory."""
    if not argv or argv[0] != "du" or du_depth(argv[1:]) != 1:
        return ()
    parsed = _du_parsed(argv[1:])
    return tuple(parsed.operands) if parsed is not None else ()


def devices_opened(argv: Sequence[str]) -> tuple[str, ...]:
    """The device nodes this root diagnostic opens (mdadm --detail/--examine/--query open each
    operand and send it block and md ioctls): opening a device runs its driver, and a
    character device's open can act (a watchdog starts counting down to a reboot, a tape
    rewinds, a serial line resets what hangs on it). Each must be a block device, a fact
    the host reports (:func:`opened_not_block`); empty: it opens none named."""
    if not argv or argv[0] != "mdadm":
        return ()
    try:
        return tuple(parse_args("mdadm", MDADM, list(argv[1:]), "as root").operands)
    except Refused:
        return ()


def opened_not_block(listing: str) -> str | None:
    """Why a root diagnostic may not open its devices, from find's listing of those that are
    not block devices (``-printf '%p<TAB>%Y'``, a line each: the path and find's type letter
    for what it leads to); None when the listing is empty, every one a block device."""
    kinds = {"c": "a character device", "p": "a FIFO", "f": "a regular file",
             "d": "a directory", "s": "a socket", "N": "missing", "L": "a symlink loop"}
    found = [line.partition("\t") for line in listing.splitlines() if line.strip()]
    if not found:
        return None
    named = ", ".join(f"{path} is {kinds.get(kind, 'not a block device')}"
                      for path, _, kind in found)
    return (f"{named}: mdadm opens what it is given, as root, and opening a device runs its "
            "driver (a watchdog starts counting down to a reboot, a tape rewinds); it reads "
            "block devices only: an array (/dev/md0) or a member disk or partition")
