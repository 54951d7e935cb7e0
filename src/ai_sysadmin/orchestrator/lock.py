"""One daemon per state directory, held by an exclusive lock on ``daemon.lock`` in it."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import AlreadyRunning

LOCK_NAME = "daemon.lock"


@contextlib.contextmanager
def held_by_this_daemon(state_dir: Path) -> Iterator[None]:
    """The state directory, this process's alone while the block runs; raises
    :class:`AlreadyRunning`, naming the other daemon's pid, when another daemon has it.

    An ``flock``, not a pid file: the kernel lets go of it when the process dies, however it
    dies, so a daemon killed by SIGKILL or a power cut leaves nothing that stops the next
    start. The file is never removed, which would let a third daemon lock a new file while
    the second still holds the old one. The pid in it only names the holder in the refusal.
    """
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    path = state_dir / LOCK_NAME
    # close-on-exec: a fix's sudo or an ssh started by the daemon never keeps it locked
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise AlreadyRunning(
                f"another daemon{pid} already runs on {state_dir}: stop it first; two would "
                "send every notification twice and take over each other's investigations"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)
