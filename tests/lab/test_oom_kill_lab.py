"""A real OOM kill, made by the kernel: a memory cgroup named as a service under
system.slice, where a check reads the services' counters, with a limit set on it directly;
a process put in it allocates past the limit and the kernel's OOM killer kills it. Real
checks of this machine (command by command, and one script as an SSH host is checked) see
the counter rise: oom_kill warns on the service, keeps the incident while the kill is within
the window, and resolves it after a window without one.

Needs root and a memory controller (cgroup v1's memory hierarchy, or v2's enabled under
system.slice). The cgroup is this test's own (see :mod:`.service_cgroup`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings, Thresholds
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.checker import HostChecker

from .service_cgroup import ThisMachine, service_cgroup

pytestmark = pytest.mark.lab

V1 = Path("/sys/fs/cgroup/memory")
V2 = Path("/sys/fs/cgroup")
LIMIT = 64 << 20
WINDOW = 6.0


def _hierarchy() -> tuple[Path, dict[str, str]]:
    """Where a service's memory cgroup goes, and the files that limit it (memory only, no
    swap to spill into)."""
    if (V1 / "memory.oom_control").exists():
        return V1 / "system.slice", {"memory.limit_in_bytes": str(LIMIT),
                                     "memory.memsw.limit_in_bytes": str(LIMIT)}
    control = V2 / "system.slice" / "cgroup.subtree_control"
    if control.exists() and "memory" in control.read_text().split():
        return V2 / "system.slice", {"memory.max": str(LIMIT), "memory.swap.max": "0"}
    pytest.skip("no memory controller: neither cgroup v1's memory hierarchy nor v2's "
                "under system.slice")


@pytest.fixture
def service() -> Iterator[Path]:
    """A memory cgroup named as a service, limited to LIMIT; removed after the test."""
    if os.geteuid() != 0:
        pytest.skip("making a memory cgroup needs root")
    slice_, limits = _hierarchy()
    with service_cgroup(slice_, "ai-sysadmin-oomtest") as cgroup:
        for name, value in limits.items():
            if (cgroup / name).exists():  # memsw: only where swap accounting is on
                (cgroup / name).write_text(value)
        yield cgroup


def _oom(cgroup: Path) -> None:
    """A process of the service allocates past its limit: the kernel kills it (SIGKILL)."""
    done = subprocess.run(
        ["sh", "-c", 'echo $$ > "$1/cgroup.procs" && exec "$2" -c "b = bytearray(512 << 20)"',
         "sh", str(cgroup), sys.executable], capture_output=True, timeout=60)
    assert done.returncode in (-9, 137), done


def _look(checker: HostChecker) -> tuple[list[Finding], bool]:
    report = asyncio.run(checker.check())
    assert "oom_kills" not in report.snapshot.errors, report.snapshot.errors
    return ([f for f in report.findings if f.rule == "oom_kill"],
            "oom_kill" in report.judged_rules)


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_a_real_oom_kill_in_a_service_is_a_warning_until_a_window_passes_without_one(
        service: Path, tmp_path: Path, one_round_trip: bool) -> None:
    settings = Settings(ai_name="labtest", state_dir=tmp_path,
                        thresholds=Thresholds(oom_kill_window_seconds=WINDOW))
    checker = HostChecker(ThisMachine("oomhost", one_round_trip), settings, None)
    unit = service.name
    assert _look(checker) == ([], False)  # a first look: nothing to compare with
    assert checker.previous is not None and checker.previous.oom_kills is not None
    assert checker.previous.oom_kills[unit] == 0
    _oom(service)
    _oom(service)
    found, judged = _look(checker)
    [kill] = [f for f in found if f.subject == unit]
    assert judged and kill.severity is Severity.WARNING
    assert kill.summary == (f"the kernel's OOM killer killed a process of {unit} "
                            "(2 since the last look, 2 since it started)")
    [again] = [f for f in _look(checker)[0] if f.subject == unit]  # no new kill: kept
    assert "(0 since the last look, 2 since it started)" in again.summary
    time.sleep(WINDOW + 1)
    found, judged = _look(checker)
    assert judged and all(f.subject != unit for f in found)  # a quiet window: resolved
