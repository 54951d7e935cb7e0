"""Which files investigation tools may read or list. Pure: the caller resolves symlinks first."""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Iterable

from .command_policy import Decision

#: never read, whatever the path looks like after resolution
DENIED_PATTERNS: tuple[str, ...] = (
    "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/security/opasswd",
    "/etc/ssh/ssh_host_*_key", "/etc/ssl/private/*", "/etc/ssl/private",
    "*/.ssh/id_*", "*/.ssh/*_sk", "*.key", "*/.netrc", "*/.pgpass",
    "*/.aws/credentials", "*/.docker/config.json", "*/.gnupg/*", "/proc/*/environ",
    "/proc/*/mem", "/proc/kcore", "/dev/*", "/sys/*", "/var/lib/sops-nix/*", "/run/secrets/*",
    "/run/agenix/*", "/run/keys/*",
)

PRIVATE_KEY_MARKERS = ("PRIVATE KEY-----", "OPENSSH PRIVATE KEY")


def normalise(path: str) -> str | None:
    """An absolute, '..'-free path, or None when the input cannot be one."""
    if not path or "\x00" in path or not path.startswith("/") or len(path) > 4096:
        return None
    return posixpath.normpath(path).replace("//", "/")


def check_read(
    requested: str, resolved: str | None, own_secrets: Iterable[str] = ()
) -> Decision:
    """``resolved`` is the path after following symlinks on the host (``readlink -f``)."""
    path = normalise(requested)
    if path is None:
        return Decision(False, f"{requested[:80]!r} is not an absolute path")
    if ".." in requested.split("/"):
        return Decision(False, f"{requested!r} climbs out of a directory with '..'")
    candidates = [path] + ([resolved] if resolved else [])
    secrets = {normalise(s) for s in own_secrets if s}
    for candidate in candidates:
        if candidate in secrets:
            return Decision(False, f"{candidate} is one of the assistant's own secrets")
        for pattern in DENIED_PATTERNS:
            # public halves of key pairs are fine to read
            if candidate.endswith(".pub") and pattern.startswith("*/.ssh/"):
                continue
            if fnmatch.fnmatchcase(candidate, pattern):
                what = "symlink target " if candidate != path else ""
                return Decision(False, f"{what}{candidate} may hold secrets ({pattern})")
    return Decision(True, "readable")


def holds_private_key(text: str) -> bool:
    return any(marker in text for marker in PRIVATE_KEY_MARKERS)
