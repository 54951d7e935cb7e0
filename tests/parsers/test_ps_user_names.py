"""A user whose name holds a space (a directory service's account, as sssd may name it), seen
by the real ps: the columns after the name stay in their place.

The name exists only in a private mount namespace, whose /etc/passwd is a copy with one more
line; the process runs as that uid there, and ps runs in the same namespace.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from ai_sysadmin.config import Programs
from ai_sysadmin.monitor import parsers
from ai_sysadmin.monitor.sections import ps_argv

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a mount namespace")

UID = 4242
NAME = "john smith"


def _listing(pid: int, argv: list[str]) -> str:
    """``argv`` run in the mount namespace of ``pid``, once it lists that process as its
    user's (before the exec of the spinning shell it is still root's) with some CPU (ps
    shows 0.0 for a process less than a second old)."""
    deadline = time.monotonic() + 10
    while True:
        out = subprocess.run(["nsenter", "-t", str(pid), "-m", "--", *argv],
                             capture_output=True, text=True, check=True).stdout
        line = next((line for line in out.splitlines() if line.split()[:1] == [str(pid)]), "")
        if NAME in line and "while" in line and line.split(NAME)[1].split()[0] != "0.0":
            return out
        assert time.monotonic() < deadline, f"ps never listed {pid} as {NAME!r}:\n{out}"
        time.sleep(0.02)  # a poll, with a deadline above


@pytest.fixture
def spinner(tmp_path: Path):
    passwd = tmp_path / "passwd"
    passwd.write_text(Path("/etc/passwd").read_text()
                      + f"{NAME}:x:{UID}:{UID}::/:/bin/sh\n")
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         f"mount --bind {passwd} /etc/passwd && exec setpriv --reuid {UID} --regid {UID} "
         "--clear-groups sh -c 'while :; do :; done'"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_a_runaway_process_of_a_user_named_with_a_space_is_among_the_top(spinner: int):
    """The collector's own listing (with cgroups): the spinning process is kept, with its
    user, its CPU and its command (before, its line did not read and it was left out)."""
    text = _listing(spinner, list(ps_argv(Programs())))
    listed = parsers.parse_ps_top(text)
    mine = [p for p in listed if p.pid == spinner]
    assert mine, f"pid {spinner} not among the top processes: {listed}"
    assert mine[0].user == NAME
    # its CPU column as ps printed it, right after the user (how much it got of a busy
    # machine is not the point)
    line = next(line for line in text.splitlines() if line.split()[:1] == [str(spinner)])
    assert mine[0].cpu_percent == float(line.split(NAME)[1].split()[0]) > 0
    assert mine[0].command.startswith("sh -c while :; do :; done")


def test_the_agents_process_listing_shows_the_user_named_with_a_space(spinner: int):
    """The agent's ``processes`` tool reads :data:`parsers.PS_COLUMNS` (no cgroups)."""
    text = _listing(spinner, ["ps", "-ww", "-e", "-o", parsers.PS_COLUMNS])
    mine = [p for p in parsers.parse_ps(text) if p.pid == spinner]
    assert len(mine) == 1
    assert (mine[0].user, mine[0].command) == (NAME, "sh -c while :; do :; done")
    # every other process still reads as before
    assert len(parsers.parse_ps(text)) == sum(
        1 for line in text.splitlines() if line.split()[:1] and line.split()[0].isdigit())
