"""A cgroup named with a comma cannot make a process pass for another unit's.

ps joins a process's cgroup lines with commas, and a name chosen in a delegated subtree (a
user's own manager may make cgroups there) may hold one: ``x,0::/system.slice/sshd.service``.
What follows it then poses as an entry of its own. The check's process table and the
executor's (which decides whether a process may be signalled) must not read such a process as
sshd.service's.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.monitor import parsers
from ai_sysadmin.safety.process_facts import PS_ARGV, facts_for, judge_process, parse_ps

USER = "/user.slice/user-1000.slice/user@1000.service/app.slice/x"
POSING = "0::/system.slice/sshd.service"


def _check_line(pid: int, cgroup: str) -> str:
    """A line of the check's listing (parsers.PS_CGROUP_COLUMNS)."""
    return (f"{pid:>7} 1 R    {'alice':<32}  99.0  0.1  1234      50      49 {cgroup} "
            "sh -c while :; do :; done")


@pytest.mark.parametrize("cgroup", [
    # hybrid: the name=systemd path comes first; its comma poses as the unified entry
    f"1:name=systemd:{USER},{POSING},0::{USER}",
    # hybrid, the unified path at the root (ps leaves root lines out)
    f"1:name=systemd:{USER},{POSING}",
    # legacy only: a second name=systemd entry posing after the real one
    f"1:name=systemd:{USER},1:name=systemd:/system.slice/sshd.service",
])
def test_a_comma_in_a_cgroup_name_is_no_entry_of_its_own(cgroup: str):
    listed = parsers.parse_ps_top(_check_line(4242, cgroup))
    assert [p.unit for p in listed if p.pid == 4242] in ([None], ["user@1000.service"])
    proc = parse_ps(f"4242 1 sh              {cgroup}\n")[4242]
    assert proc.unit != "sshd.service"


def test_the_two_entries_of_a_hybrid_host_agree_for_a_unit_and_a_delegate_below_it():
    for cgroup, unit in (
            ("1:name=systemd:/system.slice/nginx.service,0::/system.slice/nginx.service",
             "nginx.service"),
            # a delegate (a container manager) made cgroups below its unit in one of them
            ("1:name=systemd:/system.slice/docker-1.scope,0::/system.slice/docker-1.scope/init",
             "docker-1.scope"),
            ("0::/system.slice/sshd.service", "sshd.service")):
        assert [p.unit for p in parsers.parse_ps_top(_check_line(7, cgroup))] == [unit]


@pytest.fixture
def posing(tmp_path: Path) -> Iterator[int]:
    """A real process in a real cgroup whose name holds ``,0::/system.slice/sshd.service``:
    under the name=systemd hierarchy where this machine has one (hybrid), else the unified."""
    if os.geteuid() != 0:
        pytest.fail("creating cgroups needs root (the suite runs as root)")
    base = Path("/sys/fs/cgroup/systemd")
    if not (base / "cgroup.procs").exists():
        base = Path("/sys/fs/cgroup")
    top = base / f"ai-sysadmin-test-{os.getpid()},0::"
    leaf = top / "system.slice" / "sshd.service"
    leaf.mkdir(parents=True)
    proc = subprocess.Popen(["sleep", "60"])
    try:
        (leaf / "cgroup.procs").write_text(str(proc.pid))
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
        for path in (leaf, leaf.parent, top):
            path.rmdir()


def test_the_real_ps_of_a_process_in_a_cgroup_named_with_a_comma(posing: int):
    # the check's columns, for this process alone (among all, it need not be a top one)
    check = subprocess.run(["ps", "-ww", "-o", parsers.PS_CGROUP_COLUMNS, "-p", str(posing)],
                           capture_output=True, text=True, check=True).stdout
    assert ",0::/system.slice/sshd.service" in check  # what ps writes, as described above
    listed = [p for p in parsers.parse_ps_top(check) if p.pid == posing]
    assert listed and listed[0].unit != "sshd.service"
    table = parse_ps(subprocess.run([*PS_ARGV], capture_output=True, text=True,
                                    check=True).stdout)
    facts = facts_for(posing, table)
    assert facts is not None and facts.process.unit != "sshd.service"
    # nothing says whose it is: automation does not signal it on sshd's account
    verdict = judge_process(facts, protected=("sshd.service",))
    assert "sshd.service" not in " ".join([verdict.refused or "", *verdict.person])
