"""A cgroup of this test's own, named as a service under a hierarchy's system.slice, where a
check of this machine reads the services' cgroups; and a transport that checks this machine
command by command or in one script, as an SSH host is checked. The cgroup is removed after
the test, with any system.slice it had to make; no other cgroup is touched."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ai_sysadmin.hosts.transport import LocalTransport


class ThisMachine(LocalTransport):
    def __init__(self, host: str, one_round_trip: bool) -> None:
        super().__init__(host)
        self.one_round_trip = one_round_trip


@contextmanager
def service_cgroup(slice_: Path, name: str) -> Iterator[Path]:
    """``slice_/name-PID.service``, made for the test and removed after it."""
    made_slice = not slice_.exists()
    if made_slice:
        slice_.mkdir()
    cgroup = slice_ / f"{name}-{os.getpid()}.service"
    cgroup.mkdir()
    try:
        yield cgroup
    finally:
        remove_cgroup(cgroup)
        if made_slice:
            remove_cgroup(slice_)


def remove_cgroup(cgroup: Path) -> None:
    # the kernel frees a cgroup a moment after its last task is reaped
    for _ in range(50):
        try:
            cgroup.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
    cgroup.rmdir()
