"""A full file system is one incident, open, however its other mounts come and go: df lists
it at one of its mounts (the one nearest the root) and lists it elsewhere once a bind mount of
it at a shorter path appears; the check names it by the mount table. A new name resolved the
incident, the disk still full, and opened another (a notification and an investigation each),
and the reverse on unmount."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.orchestrator.checker import CheckReport, HostChecker
from ai_sysadmin.store import Database, IncidentStore

pytestmark = pytest.mark.lab

FULL, SHORT = "/srv/backups/data", "/bk"


class Scripted(SandboxTransport):
    """The lab, collected by one remote script (as an SSH host is) or command by command."""

    def __init__(self, sandbox: Sandbox, one_round_trip: bool) -> None:
        super().__init__(sandbox)
        self.one_round_trip = one_round_trip


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_a_full_disk_stays_one_open_incident_while_a_bind_mount_of_it_comes_and_goes(
        sandbox: Sandbox, lab_settings: Settings, tmp_path: Path, one_round_trip: bool) -> None:
    store = IncidentStore(Database(lab_settings.model_copy(
        update={"state_dir": tmp_path}).db_path))
    checker = HostChecker(Scripted(sandbox, one_round_trip), lab_settings, store)

    def check() -> tuple[CheckReport, list[str]]:
        report = asyncio.run(checker.check("interval"))
        assert "mounts" not in report.snapshot.errors
        return report, [f.subject for f in report.findings if f.rule == "disk_space"
                        and f.subject in (FULL, SHORT)]

    sandbox.exec(["mkdir", "-p", FULL, SHORT], check=True)
    sandbox.exec(["mount", "-t", "tmpfs", "-o", "size=1000k", "backupdisk", FULL], check=True)
    try:
        sandbox.exec(["dd", "if=/dev/zero", f"of={FULL}/fill", "bs=1k", "count=990"],
                     check=True)
        full, found = check()
        assert found == [FULL]
        [incident] = full.outcome.opened
        sandbox.exec(["mount", "--bind", FULL, SHORT], check=True)
        bound, found_bound = check()
        sandbox.exec(["umount", SHORT], check=True)
        unbound, found_unbound = check()
    finally:
        sandbox.exec(["umount", SHORT])
        sandbox.exec(["umount", FULL])
    # df's own choice moved to the shorter path: what made the incident move
    listed = {m.target for m in bound.snapshot.mounts or []}
    assert SHORT in listed and FULL not in listed
    assert found_bound == found_unbound == [FULL]
    for report in (bound, unbound):
        assert report.outcome.opened == report.outcome.resolved == []
        assert report.outcome.reopened == []
    [live] = [i for i in store.incidents(states=None) if i.rule == "disk_space"
              and i.subject in (FULL, SHORT)]
    assert (live.id, live.subject, live.state) == (incident, FULL, "open")
    assert [e.to_state for e in store.get(live.id, history=50).events if e.to_state] == ["open"]
