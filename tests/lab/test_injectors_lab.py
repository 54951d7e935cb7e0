"""The injectors the drills build their faults with, in a real lab: users, ownership, and
waiting on a unit or a port, which fails with a clear error instead of hanging."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ai_sysadmin.errors import LabError
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from tests.support.polling import poll_until

pytestmark = pytest.mark.lab

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def test_a_system_user_gets_a_directory_it_cannot_write(sandbox: Sandbox) -> None:
    apply(sandbox, "add_user", {"name": "injtest"})
    apply(sandbox, "run", {"argv": ["mkdir", "-p", "/srv/injtest"]})
    apply(sandbox, "set_owner", {"path": "/srv/injtest", "owner": "root", "mode": 0o755})
    denied = sandbox.exec(["setpriv", "--reuid=injtest", "--regid=injtest", "--clear-groups",
                           "touch", "/srv/injtest/f"])
    assert not denied.ok and "Permission denied" in denied.stderr
    apply(sandbox, "set_owner", {"path": "/srv/injtest", "owner": "injtest", "group": "injtest"})
    assert sandbox.exec(["stat", "-c", "%U:%G %a", "/srv/injtest"]).stdout.strip() == \
        "injtest:injtest 755"


def test_waiting_for_a_unit_and_a_port(sandbox: Sandbox) -> None:
    apply(sandbox, "install_unit", {"name": "waitme.service", "text": (
        "[Service]\nExecStart=/usr/bin/python3 -m http.server --bind 127.0.0.1 8299\n")})
    apply(sandbox, "start_unit", {"name": "waitme.service"})
    apply(sandbox, "wait_unit", {"name": "waitme.service", "value": "active"})
    apply(sandbox, "wait_listening", {"port": 8299})
    with pytest.raises(LabError, match=r"SubState is 'running', not 'exited' after 0.3 s"):
        apply(sandbox, "wait_unit", {"name": "waitme.service", "property": "SubState",
                                     "value": "exited", "timeout": 0.3})
    with pytest.raises(LabError, match="nothing listens on port 8298 after 0.3 s"):
        apply(sandbox, "wait_listening", {"port": 8298, "timeout": 0.3})
    apply(sandbox, "stop_unit", {"name": "waitme.service"})


def test_a_runaway_burns_three_quarters_of_a_core_and_leaves_the_rest(
    sandbox: Sandbox,
) -> None:
    """At nice 0 a busy loop gets what a busy machine leaves it (13% of a core beside a dozen
    busy sessions on 2 cores), and the runaway-cpu drill never saw the runaway it injected;
    at the highest weight it took a whole core from the machine (two drills at once, both
    cores), and the daemon watching it and every other test crawled. Under the deadline
    scheduler its share is the kernel's to keep: enough for the drill's 50%, never all."""
    apply(sandbox, "runaway", {"unit": "injspin.service"})
    try:
        pid = sandbox.exec(["systemctl", "show", "--property=MainPID", "--value",
                            "injspin.service"], check=True).stdout.strip()
        policy = sandbox.exec(["chrt", "--pid", pid], check=True).stdout
        assert "SCHED_DEADLINE" in policy and "75000000/100000000/100000000" in policy

        def reading() -> tuple[float, float]:
            """(the lab's uptime, the loop's CPU seconds), read together by one process."""
            uptime, stat = sandbox.exec(["cat", "/proc/uptime", f"/proc/{pid}/stat"],
                                        check=True).stdout.splitlines()
            fields = stat.rpartition(")")[2].split()
            return float(uptime.split()[0]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

        start = reading()
        end = poll_until(lambda: (now := reading())[0] - start[0] >= 2 and now,
                         what="two seconds of the runaway", interval=0.25)
        share = 100 * (end[1] - start[1]) / (end[0] - start[0])
        assert 60 <= share <= 80, f"{share:.0f}% of a core"
    finally:
        apply(sandbox, "stop_unit", {"name": "injspin.service"})


def test_filling_inodes_through_a_symlink_fills_the_lab_never_the_host(
        sandbox: Sandbox, tmp_path: Path) -> None:
    # the lab's own copy of a host path (its /tmp is private), on a small file system,
    # reached through an absolute symlink as /var/lock -> /run/lock is on Debian
    target = str(tmp_path / "spool")
    os.mkdir(target)  # the host's directory of that name: it must stay empty
    apply(sandbox, "mount_tmpfs", {"path": target, "size": "1m", "nr_inodes": 60})
    apply(sandbox, "run", {"argv": ["ln", "-s", target, "/srv/spool-link"]})
    apply(sandbox, "fill_inodes", {"directory": "/srv/spool-link", "max_files": 500})
    assert os.listdir(target) == []
    made = sandbox.exec(["find", target, "-type", "f"], check=True).stdout.split()
    assert 40 < len(made) < 60  # the file system's inodes, less its root and what it keeps
    assert sandbox.exec(["touch", f"{target}/one-more"]).returncode != 0
    apply(sandbox, "run", {"argv": ["umount", target]})
