"""Which other process has an SQLite file open, read from the lock SQLite itself holds.

In WAL mode every connection keeps a shared POSIX lock on one byte of the ``-shm`` file, the
"DMS" lock (byte 128: after the eight WAL locks at 120..127; SQLite's documented wal-index
format), for as long as it is open: that is how the last one to close knows it is the last. A
write lock asked there with ``F_GETLK`` is refused by any other process's connection, and the
kernel names the process. Nothing is taken: ``F_GETLK`` only asks.
"""

from __future__ import annotations

import fcntl
import os
import struct
from pathlib import Path

#: the DMS lock's byte in the -shm file (SQLite's os_unix.c: UNIX_SHM_BASE + SQLITE_SHM_NLOCK)
DMS_BYTE = 128
#: struct flock as the kernel lays it out on 64-bit Linux: l_type, l_whence, l_start, l_len,
#: l_pid, padded to 8 bytes
_FLOCK = "hhqqi4x" if struct.calcsize("hhqqi") % 8 else "hhqqi"
#: the -shm files this process asked about, by path, the newest first, each kept open for the
#: process's life: closing any descriptor of a file drops every POSIX lock this process holds
#: on it, SQLite's own connections' included (the last connection to close removes the file,
#: and the next to open makes another)
_KEPT: dict[str, list[int]] = {}


def opened_elsewhere(path: Path) -> int | None:
    """The pid of another process that has the SQLite file ``path`` open (0 where the kernel
    cannot name it: a process of another PID namespace), None where none has. This process's
    own connections never count."""
    shm = f"{path}-shm"
    try:
        now = os.stat(shm)
    except OSError:  # none open it (a file made and closed), or unreadable: nothing to tell
        return None
    kept = _KEPT.setdefault(shm, [])
    fd = kept[0] if kept and _same_file(kept[0], now) else None
    if fd is None:
        try:
            fd = os.open(shm, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        kept.insert(0, fd)
    asked = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, DMS_BYTE, 1, 0)
    try:
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, asked)
    except OSError:
        return None
    kind, _, _, _, pid = struct.unpack(_FLOCK, answer)
    return None if kind == fcntl.F_UNLCK else pid


def _same_file(fd: int, now: os.stat_result) -> bool:
    kept = os.fstat(fd)
    return (kept.st_dev, kept.st_ino) == (now.st_dev, now.st_ino)


def described(pid: int) -> str:
    """``pid 1234, ai-sysadmin run`` from the process's command line, as far as it can be read."""
    if pid <= 0:
        return "a process of another PID namespace"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"pid {pid}"
    words = [os.path.basename(a.decode("utf-8", "replace")) if i == 0 else
             a.decode("utf-8", "replace") for i, a in enumerate(argv) if a]
    # a Python entry point reads `python3 /usr/bin/ai-sysadmin run`: its script names it
    if len(words) > 1 and words[0].startswith("python"):
        words = [os.path.basename(words[1]), *words[2:]]
    shown = " ".join(words)[:120]
    return f"pid {pid}, {shown}" if shown else f"pid {pid}"
