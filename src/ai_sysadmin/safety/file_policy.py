"""Which files investigation tools may read or list (pure: the caller resolves symlinks on the
host first, with ``readlink -f``, and passes both paths).

A read is allowed only when the requested path is a plain absolute path (no NUL, no control or
invisible characters, no ``..``, not too long; spaces and letters beyond ASCII are fine), the
resolved path is one too, and neither is a secret: shadow files, private keys, credentials,
another process's memory or environment, devices, or one of the assistant's own secret files.
Of /sys only counters are read: cgroup files and network interface statistics.

:func:`path_to_read` says which of the two paths to read once both are allowed.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import unicodedata
from collections.abc import Iterable

from ..redact import private_key_format, redact_cut
from .argv_parser import describe_char, hidden_char, path_too_long
from .command_policy import Decision

NAME_MAX = 255

#: never read, whatever the path looks like after resolution
DENIED_PATTERNS: tuple[str, ...] = (
    "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/security/opasswd",
    "/etc/ssh/ssh_host_*_key", "/etc/ssl/private/*", "/etc/ssl/private",
    "*/.ssh/id_*", "*/.ssh/*_sk", "*.key", "*.keytab", "*/.netrc", "*/.pgpass",
    "*/.aws/credentials", "*/.docker/config.json", "*/.gnupg/*", "*/.kube/config",
    "*/.git-credentials", "*/.password-store/*", "*/.*_history", "*/.vault-token",
    "/etc/NetworkManager/system-connections/*", "/etc/wpa_supplicant*.conf",
    "/etc/wpa_supplicant/*", "/var/lib/iwd/*", "/etc/wireguard/*", "/etc/ppp/*-secrets",
    "/etc/krb5.keytab", "/etc/rancher/k3s/k3s.yaml", "/var/lib/tailscale/*",
    "/proc/*/environ", "/proc/*/mem", "/proc/kcore", "/proc/kmsg", "/proc/kpage*",
    "/proc/sysrq-trigger", "/dev/*", "/sys/*", "/var/lib/sops-nix/*", "/run/secrets/*",
    "/run/agenix/*", "/run/keys/*", "/run/credentials/*",
)

#: what may be read below /proc/<pid>/ (and /proc/<pid>/task/<tid>/): state, not memory,
#: environment, open files or the process's view of the file system
PROC_PID_READABLE = frozenset({
    "status", "stat", "statm", "cmdline", "comm", "cgroup", "limits", "io", "oom_score",
    "oom_score_adj", "sched", "wchan", "smaps_rollup", "mountinfo", "mounts", "loginuid",
    "sessionid", "schedstat", "task", "fd", "ns", "net",
})
#: directory entries above are readable as listings only; these never have children read
_PROC_LIST_ONLY = frozenset({"task", "fd", "ns", "net"})

_PROC_PID = re.compile(r"^/proc/([0-9]+|self|thread-self)(/.*)?$")

#: what of /sys may be read (everything else there is denied): cgroup files (cpu.stat,
#: memory.current, memory.events, pids.current, cgroup.procs ...) and network interface
#: counters, which /sys/class/net/IF/statistics links to below /sys/devices
_SYS_READABLE = (
    re.compile(r"/sys/fs/cgroup(/[^/]+)*"),
    re.compile(r"/sys/class/net"),
    re.compile(r"/sys/class/net/[^/]+/statistics(/[^/]+)?"),
    re.compile(r"/sys/devices(/[^/]+)+/net/[^/]+/statistics(/[^/]+)?"),
)


def path_problem(path: object) -> str | None:
    """Why ``path`` is not a plain absolute path; None when it is one."""
    if not isinstance(path, str) or not path:
        return "a path must be non-empty text"
    if (problem := path_too_long(path)) is not None:
        return problem
    if "\x00" in path:
        return "a path cannot hold a NUL byte"
    if (char := hidden_char(path)) is not None:
        return f"the path holds an invisible or control character {describe_char(char)}"
    if not path.startswith("/"):
        return "not an absolute path"
    parts = path.split("/")
    if ".." in parts:
        return "climbs out of a directory with '..'"
    if any(len(part.encode()) > NAME_MAX for part in parts):
        return f"a path component is longer than {NAME_MAX} bytes"
    return None


def normalise(path: str) -> str | None:
    """An absolute, '..'-free path, or None when the input cannot be one."""
    if path_problem(path) is not None:
        return None
    clean = posixpath.normpath(path)
    return "/" + clean.lstrip("/") if clean.startswith("//") else clean


def _proc_problem(path: str) -> str | None:
    match = _PROC_PID.match(path)
    if match is None:
        return None
    if match.group(1) in ("self", "thread-self"):
        return f"{path} is the reading program itself (its environment may hold secrets)"
    rest = [p for p in (match.group(2) or "").split("/") if p]
    while len(rest) >= 2 and rest[0] == "task" and rest[1].isdigit():
        rest = rest[2:]  # /proc/<pid>/task/<tid>/... follows the same rules
    if not rest:
        return None
    if rest[0] not in PROC_PID_READABLE or (rest[0] in _PROC_LIST_ONLY and len(rest) > 1
                                            and rest[0] != "net"):
        return (f"{path} may hold secrets (another process's memory, environment, files or "
                f"root)")
    return None


def _secret_problem(candidate: str, secrets: set[str]) -> str | None:
    if candidate in secrets:
        return f"{candidate} is one of the assistant's own secrets"
    proc = _proc_problem(candidate)
    if proc:
        return proc
    looks = unicodedata.normalize("NFKC", candidate)
    for pattern in DENIED_PATTERNS:
        # public halves of key pairs are fine to read
        if candidate.endswith(".pub") and pattern.startswith("*/.ssh/"):
            continue
        if pattern == "/sys/*" and any(rx.fullmatch(candidate) for rx in _SYS_READABLE):
            continue
        if fnmatch.fnmatchcase(candidate, pattern):
            return f"{candidate} may hold secrets ({pattern})"
        if looks != candidate and fnmatch.fnmatchcase(looks, pattern):
            return f"{candidate} looks like {looks}, which may hold secrets ({pattern})"
    return None


def check_read(
    requested: str, resolved: str | None, own_secrets: Iterable[str] = ()
) -> Decision:
    """May a tool read (or list) ``requested``? ``resolved`` is the path after following
    symlinks on the host (``readlink -f``); None when it could not be resolved, and then the
    read is refused: symlinks are resolved before a read is allowed."""
    problem = path_problem(requested)
    if problem is not None:
        shown = redact_cut(requested, 80) if isinstance(requested, str) else requested
        return Decision(False, f"{shown!r}: {problem}", "high")
    path = normalise(requested)
    assert path is not None
    secrets = {normalise(s) for s in own_secrets if isinstance(s, str) and s}
    if why := _secret_problem(path, secrets):
        return Decision(False, why, "high")
    if resolved is None:
        return Decision(False, f"{path}: symlinks could not be resolved on the host, so the "
                        "read is refused", "high")
    problem = path_problem(resolved)
    if problem is not None:
        return Decision(False, f"{path} resolves to {redact_cut(resolved, 80)!r}, which is "
                        f"not a plain path: {problem}", "high")
    real = normalise(resolved)
    assert real is not None
    if real != path and (why := _secret_problem(real, secrets)):
        return Decision(False, f"symlink target {why}", "high")
    return Decision(True, "readable")


def path_to_read(requested: str, resolved: str | None) -> str:
    """Which path a tool reads once :func:`check_read` allowed both: the resolved one (a link
    swapped after the check cannot redirect the read), except where the resolution went
    through /proc/self. ``readlink -f /proc/net/dev`` answers /proc/<readlink's PID>/net/dev,
    a process gone by the time the file is read; /proc/mounts, /proc/net and /etc/mtab are
    links to the reader's own view, which the kernel (or root) sets, so the requested path is
    read instead."""
    path = normalise(requested)
    real = normalise(resolved) if resolved is not None else None
    if path is None or real is None:
        return resolved or requested
    match = _PROC_PID.match(real)
    if match is None or not match.group(1).isdigit():
        return real
    tail = match.group(2) or ""
    proc_link = path == f"/proc{tail}" and not _PROC_PID.match(path)  # /proc/net/dev
    mtab = path == "/etc/mtab" and tail == "/mounts"
    return path if proc_link or mtab else real


def holds_private_key(text: str) -> bool:
    """Whether ``text`` holds a private key in a format the masking knows (PEM, PGP, SSH.com, PuTTY,
    age): a file holding one is refused whole, whatever its name."""
    return private_key_format(text) is not None
