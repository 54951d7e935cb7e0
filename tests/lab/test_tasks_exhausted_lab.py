"""A service at its tasks limit, as the kernel counts it: a pids cgroup named as a service
under system.slice, where a check reads the services' pids controllers, with pids.max set
on it directly, and processes put in it up to near that limit. Real checks of this machine
(command by command, and one script as an SSH host is checked) see it: tasks_exhausted
warns at 18 of 20, is critical at 19, and resolves once the processes end.

Needs root and a pids controller (cgroup v1's pids hierarchy, or v2's enabled under
system.slice). The cgroup and its processes are this test's own (see :mod:`.service_cgroup`).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.checker import HostChecker

from .service_cgroup import ThisMachine, service_cgroup

pytestmark = pytest.mark.lab

V1 = Path("/sys/fs/cgroup/pids")
V2 = Path("/sys/fs/cgroup")
LIMIT = 20


def _hierarchy() -> Path:
    """The system.slice a service's pids cgroup goes in."""
    if (V1 / "cgroup.procs").exists():
        return V1 / "system.slice"
    control = V2 / "system.slice" / "cgroup.subtree_control"
    if control.exists() and "pids" in control.read_text().split():
        return V2 / "system.slice"
    pytest.skip("no pids controller: neither cgroup v1's pids hierarchy nor v2's under "
                "system.slice")


class Tasks:
    """Processes of this test, each put in the service's cgroup as it starts."""

    def __init__(self, cgroup: Path) -> None:
        self.cgroup = cgroup
        self.started: list[subprocess.Popen[bytes]] = []

    def run(self, count: int) -> None:
        for _ in range(count):
            self.started.append(subprocess.Popen(
                ["sh", "-c", 'echo $$ > "$1/cgroup.procs" && exec sleep 600', "sh",
                 str(self.cgroup)]))
        self.wait_for(len(self.started))

    def end(self) -> None:
        for process in self.started:
            process.kill()
            process.wait(timeout=10)
        self.started = []
        self.wait_for(0)

    def wait_for(self, count: int) -> None:
        """Until the kernel counts ``count`` tasks in the cgroup (each puts itself in)."""
        deadline = time.monotonic() + 20
        while (current := int((self.cgroup / "pids.current").read_text())) != count:
            assert time.monotonic() < deadline, f"{current} tasks in {self.cgroup}, not {count}"
            time.sleep(0.05)


@pytest.fixture
def tasks() -> Iterator[Tasks]:
    """A pids cgroup named as a service, limited to LIMIT tasks; its processes ended and
    the cgroup removed after the test."""
    if os.geteuid() != 0:
        pytest.skip("making a pids cgroup needs root")
    with service_cgroup(_hierarchy(), "ai-sysadmin-tasktest") as cgroup:
        (cgroup / "pids.max").write_text(f"{LIMIT}\n")
        made = Tasks(cgroup)
        try:
            yield made
        finally:
            made.end()


def _look(checker: HostChecker, unit: str) -> list[Finding]:
    report = asyncio.run(checker.check())
    snapshot = report.snapshot
    assert "service_tasks" not in snapshot.errors, snapshot.errors
    assert "tasks_exhausted" in report.judged_rules
    # the host's own numbers are read on a real host too
    assert snapshot.load is not None and snapshot.load.threads
    assert snapshot.kernel_limits is not None and snapshot.kernel_limits.files_open > 0
    return [f for f in report.findings if f.rule == "tasks_exhausted" and f.subject == unit]


def test_a_service_near_its_tasks_limit_is_found_and_resolves_once_its_tasks_end(
        tasks: Tasks, tmp_path: Path) -> None:
    settings = Settings(ai_name="labtest", state_dir=tmp_path)
    checkers = [HostChecker(ThisMachine("taskhost", one_round_trip), settings, None)
                for one_round_trip in (False, True)]
    unit = tasks.cgroup.name
    assert [_look(checker, unit) for checker in checkers] == [[], []]

    tasks.run(LIMIT - 2)
    for checker in checkers:  # command by command, then in one script
        [found] = _look(checker, unit)
        assert found.severity is Severity.WARNING
        assert found.summary.startswith(
            f"{unit} runs 18 of the 20 tasks (processes and threads) its cgroup allows (90%)")
        assert found.evidence[0].startswith(f"{unit}: pids.current=18, pids.max=20")

    tasks.run(1)
    for checker in checkers:
        [found] = _look(checker, unit)
        assert found.severity is Severity.CRITICAL and "19 of the 20 tasks" in found.summary

    tasks.end()
    assert [_look(checker, unit) for checker in checkers] == [[], []]
