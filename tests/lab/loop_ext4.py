"""A real ext4 on a loop device, mounted in a fault lab, and errors raised in it the way the
kernel's driver records one: what the lab tests of file systems in trouble stand on."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from ai_sysadmin.lab.sandbox import Sandbox


@contextlib.contextmanager
def ext4_in_lab(sandbox: Sandbox, image: Path, node: str, point: str,
                errors: str) -> Iterator[str]:
    """A 16 MiB ext4 in ``image`` on a loop device, whose node is made at ``node`` in the
    lab's /dev (its own), mounted at ``point`` with ``errors=``; yields the loop device.
    Unmounted (if it still is), its node removed and the loop device detached after."""
    with open(image, "wb") as made:
        made.truncate(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", str(image)], check=True)
    loop = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                          capture_output=True, text=True).stdout.strip()
    rdev = os.stat(loop).st_rdev
    try:
        sandbox.exec(["mknod", node, "b", str(os.major(rdev)), str(os.minor(rdev))],
                     check=True)
        sandbox.exec(["mkdir", "-p", point], check=True)
        sandbox.exec(["mount", "-t", "ext4", "-o", f"errors={errors}", node, point],
                     check=True)
        yield loop
    finally:
        sandbox.exec(["umount", point])  # where a test unmounted it already: refused
        sandbox.exec(["rm", "-f", node])
        subprocess.run(["losetup", "-d", loop], check=False)


def raise_error(loop: str, text: str) -> None:
    """An error as the ext4 driver records one, by its test hook (from the host: the lab's
    /sys is read-only)."""
    with open(f"/sys/fs/ext4/{os.path.basename(loop)}/trigger_fs_error", "w") as hook:
        hook.write(f"{text}\n")
