"""Which diagnostics run as root: a short allow-list, each with why (pure).

Every read for the model runs as the unprivileged reading identity (``hosts/reader.py``),
except these programs, which report metadata that only root can see on a normal host (sizes,
socket owners, firewall and RAID state), never the contents of a file. The command policy has
already judged their arguments read-only.
"""

from __future__ import annotations

from collections.abc import Sequence

from .argv_parser import Refused, parse_args
from .readonly_commands import READ_ONLY

ROOT_DIAGNOSTICS: dict[str, str] = {
    "du": "sizes of directories the reading identity may not list (sizes, never contents)",
    "ss": "which process holds a socket (another user's processes are hidden otherwise)",
    "lsof": "which process holds a file or a port",
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


def _du_shows_names(args: Sequence[str]) -> bool:
    try:
        parsed = parse_args("du", READ_ONLY["du"], list(args), "as root")
    except Refused:
        return True  # not the directory-level form: not as root
    return any(name in _DU_SHOWS_NAMES for name, _ in parsed.options)


def root_reason(argv: Sequence[str]) -> str | None:
    """Why this (already allowed) diagnostic runs as root; None: it runs as the reader."""
    if not argv:
        return None
    if argv[0] == "du" and _du_shows_names(argv[1:]):
        return None
    return ROOT_DIAGNOSTICS.get(argv[0])
