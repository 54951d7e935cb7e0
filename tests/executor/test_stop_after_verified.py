"""A stop (SIGTERM cancels the daemon's tasks) that lands after a fix's verification found it
fixed, while the check that follows it runs: the fix ended "failed, its verification cut off",
and the person paged of the incident, resolved meanwhile by that check, never heard that it
was fixed. It succeeded, and says so."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.monitor.snapshot import Snapshot
from ai_sysadmin.orchestrator.checker import CheckReport
from ai_sysadmin.store import ActionStore, Database, IncidentStore


def test_a_fix_verified_before_a_stop_succeeded_and_is_told_fixed(tmp_path: Path) -> None:
    journalctl = tmp_path / "journalctl"
    journalctl.write_text("#!/bin/sh\nexit 0\n")
    journalctl.chmod(0o755)
    settings = Settings(ai_name="hal", state_dir=tmp_path, autonomy_level="suggest",
                        programs={"journalctl": str(journalctl)},
                        safety={"verify_settle_seconds": 0.2, "verify_timeout": 10})
    store = IncidentStore(Database(settings.db_path))
    host = short_hostname()
    finding = Finding(host, "disk_space", "/", Severity.CRITICAL, "/ is 97% full")
    (incident,) = store.record_check(host, [finding], {"disk_space"}).opened

    class Checker:
        """The finding is gone at the verification; the check after it is slow, and the
        daemon's own check, queued behind the verification, resolved the incident first."""

        previous = None
        seen = None

        def __init__(self) -> None:
            self.after_verified = asyncio.Event()

        def fix_ran(self, *_: object) -> None:
            pass

        def commands_ran(self) -> None:
            pass

        async def check(self, reason: str, afresh: object = None) -> CheckReport:
            snapshot = Snapshot(host, time.time())
            if reason == "verified":
                store.record_check(host, [], {"disk_space"})
                self.after_verified.set()
                await asyncio.Event().wait()  # the stop lands here
            found = [] if reason in ("verify", "verified") else [finding]
            return CheckReport(host, snapshot, found, {"disk_space"})

    checker = Checker()
    executor = Executor(settings, store, {host: LocalTransport(host)},
                        checker_for=lambda _host: checker)
    action = asyncio.run(executor.propose(host, "vacuum_journal", {"max_size": "500M"},
                                          incident_id=incident))
    assert action.state == "pending"

    async def approve_then_stop() -> None:
        approving = asyncio.create_task(executor.approve(action.id, "alice"))
        waiting = asyncio.create_task(checker.after_verified.wait())
        await asyncio.wait({approving, waiting}, timeout=60,
                           return_when=asyncio.FIRST_COMPLETED)
        assert checker.after_verified.is_set(), "the fix never reached the check after it"
        approving.cancel()  # what SIGTERM does to the daemon's tasks
        await asyncio.gather(approving, return_exceptions=True)

    asyncio.run(approve_then_stop())
    ended = ActionStore(store.db).get(action.id)
    assert ended.state == "succeeded", (ended.state, ended.reason)
    assert ended.reason.startswith("finding gone for"), ended.reason
    assert store.get(incident, history=0).state == "resolved"
    told = [kind for (kind,) in store.db.conn.execute(
        "SELECT kind FROM notify_events WHERE action_id=? ORDER BY id", (action.id,))]
    assert told == ["approval", "fixed"], told
