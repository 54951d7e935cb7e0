"""A store that refuses a write as the daemon starts (another process holds its lock past the
busy timeout, a full disk) delays what the start recovers, never the daemon: raised at the
start, `run` exited 2, which systemd does not restart, and the host went unwatched for good."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

import ai_sysadmin.store.db as db
from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.daemon import build_daemon
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import Database, IncidentStore
from tests.support.polling import until


def test_a_start_the_store_refuses_recovers_once_it_takes_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(db, "BUSY_TIMEOUT", 1)  # 30 s in a daemon: only sooner here
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", check_interval=1,
                        journal_follow=False, knowledge={"enabled": False},
                        llm={"backend": "openai", "url": "http://127.0.0.1:9", "model": "m"})
    store = IncidentStore(Database(settings.db_path))
    # web1's: no check of this daemon's (of "here") judges it
    failed = Finding("web1", "failed_unit", "nginx.service", Severity.CRITICAL,
                     "nginx.service has failed", ("nginx.service: active=failed",))
    (incident_id,) = store.record_check("web1", [failed], {"failed_unit"}).opened
    # the daemon before was stopped while it investigated
    store.transition(incident_id, "investigating", "agent", "investigation started")
    daemon = build_daemon(Runtime(settings, store, [LocalTransport("here")]))
    other = sqlite3.connect(settings.db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # a backup, a sqlite3 shell

    def state() -> str:
        return store.get(incident_id, history=0).state

    async def go() -> None:
        running = asyncio.create_task(daemon.run())
        try:
            await until(lambda: any("recovering investigations a stop cut off failed" in
                                    r.getMessage() for r in caplog.records) or running.done(),
                        30, "the recovery refused")
            assert not running.done(), running
            other.execute("ROLLBACK")
            await until(lambda: state() != "investigating", 30, "the recovery, once written")
            assert not running.done()
        finally:
            daemon.stop_event.set()
            await asyncio.wait_for(running, 30)

    with caplog.at_level(logging.WARNING, logger="ai_sysadmin.service"):
        asyncio.run(go())
    # recovered (an investigation may have started again since: the LLM is down here)
    assert any("investigation interrupted by a restart" in (e.detail or "")
               for e in store.get(incident_id, history=None).events), [
        (e.kind, e.detail) for e in store.get(incident_id, history=None).events]


def test_a_host_followed_again_leaves_no_follower_behind(tmp_path: Path) -> None:
    """Each `systems remove` and `add` of a host, or its renewal, followed its journal anew
    and kept the old follower, with its transport, for the daemon's life."""
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", journal_follow=True,
                        knowledge={"enabled": False}, agent={"investigate": False})
    store = IncidentStore(Database(settings.db_path))
    daemon = build_daemon(Runtime(settings, store, [LocalTransport("here")]))
    checker = daemon.runtime.checkers["here"]

    async def go() -> list[str]:
        for _ in range(4):  # followed anew, as a renewal does
            for task in daemon._follow(checker):
                task.cancel()
        await daemon._forget("here")
        return [f.transport.host for f in daemon.followers]

    assert asyncio.run(go()) == []
