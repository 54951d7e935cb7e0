"""Which diagnostics run as root: a short allow-list, each with why (pure).

Every read for the model runs as the unprivileged reading identity (``hosts/reader.py``),
except these programs, which report metadata that only root can see on a normal host (sizes,
socket owners, firewall and RAID state), never the contents of a file. The command policy has
already judged their arguments read-only.
"""

from __future__ import annotations

from collections.abc import Sequence

ROOT_DIAGNOSTICS: dict[str, str] = {
    "du": "sizes of directories the reading identity may not list (sizes, never contents)",
    "ss": "which process holds a socket (another user's processes are hidden otherwise)",
    "lsof": "which process holds a file or a port",
    "nft": "the firewall rules (reading them needs CAP_NET_ADMIN)",
    "mdadm": "RAID state, read from the block devices",
    "zpool": "ZFS pool state",
    "dmesg": "the kernel ring buffer (kernel.dmesg_restrict hides it from users)",
}


def root_reason(argv: Sequence[str]) -> str | None:
    """Why this (already allowed) diagnostic runs as root; None: it runs as the reader."""
    return ROOT_DIAGNOSTICS.get(argv[0]) if argv else None
