"""A real ext4 on a loop device, mounted ``errors=continue`` (it stays writable after an
error), then errors by the kernel's own test hook: a check of the fault lab (one remote
script, as an SSH host is checked, or command by command) finds filesystem_errors on its
mount point with the count the kernel recorded, keeps one incident while the count stands,
and resolves it once the file system is unmounted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.findings import Finding, Severity

from .loop_ext4 import ext4_in_lab, raise_error

pytestmark = pytest.mark.lab

POINT = "/mnt/ext4 continues"
NODE = "/dev/lab-ext4-errors"  # the lab's /dev is its own: the device made there


class Scripted(SandboxTransport):
    def __init__(self, sandbox: Sandbox, one_round_trip: bool) -> None:
        super().__init__(sandbox)
        self.one_round_trip = one_round_trip


def until(check: Callable[[], list[Finding]], count: int) -> list[Finding]:
    """The findings of the first check that quotes ``count`` errors: the driver writes its
    superblock, which the count is read from, a moment after the error (errors=continue
    hands that to a worker)."""
    deadline = time.monotonic() + 20
    while True:
        found = check()
        if any(f"errors_count: {count}" in f.evidence[0] for f in found) \
                or time.monotonic() > deadline:
            return found
        time.sleep(0.2)  # paces the polling; the deadline decides


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_errors_on_an_ext4_that_stays_writable_are_one_incident_until_it_is_unmounted(
        sandbox: Sandbox, lab_settings: Settings, tmp_path, one_round_trip: bool) -> None:  # type: ignore[no-untyped-def]
    from ai_sysadmin.orchestrator.checker import HostChecker
    from ai_sysadmin.store import Database, IncidentStore

    store = IncidentStore(Database(lab_settings.model_copy(
        update={"state_dir": tmp_path}).db_path))
    checker = HostChecker(Scripted(sandbox, one_round_trip), lab_settings, store)

    def check() -> list[Finding]:
        report = asyncio.run(checker.check("interval"))
        assert "fs_errors" not in report.snapshot.errors, report.snapshot.errors
        return [f for f in report.findings
                if f.rule == "filesystem_errors" and f.subject == POINT]

    with ext4_in_lab(sandbox, tmp_path / "data.img", NODE, POINT, "continue") as loop:
        assert check() == []
        raise_error(loop, "lab: a first error")
        [first] = until(check, 1)
        assert "errors_count: 1 (0 at the previous check)" in first.evidence[0]
        assert first.severity is Severity.CRITICAL  # recorded now
        assert sandbox.exec(["touch", f"{POINT}/still-writable"]).ok  # errors=continue
        raise_error(loop, "lab: a second error")
        [second] = until(check, 2)
        assert "errors_count: 2 (1 at the previous check)" in second.evidence[0]
        assert "1 new since the last check" in second.summary
        assert [f.subject for f in check()] == [POINT]  # the count stands: kept
        [incident] = [i for i in store.incidents(states=None) if i.subject == POINT]
        events = store.get(incident.id, history=50).events
        assert [e.to_state for e in events if e.to_state] == ["open"]  # one incident
        sandbox.exec(["umount", POINT], check=True)
        assert check() == []
        assert [e.to_state for e in store.get(incident.id, history=50).events
                if e.to_state] == ["open", "resolved"]
