"""A lesson the knowledge base cannot take when its fix ends (its files damaged, a ChromaDB
server down, a full disk) is kept in the state database and learned by the daemon's
housekeeping once the knowledge base works again: before, it was logged and lost for good.
A real `approve`'s runtime, a real embedded ChromaDB made unusable and mended as its error
says, the daemon's own loops in-process, and the `knowledge` command to see what it knows."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.daemon import Daemon
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import Database, IncidentStore
from ai_sysadmin.store.actions import ActionStore
from tests.support.polling import until

#: opening a knowledge base (ChromaDB, the embedding model) costs seconds
pytestmark = pytest.mark.slow


def test_a_lesson_the_knowledge_base_could_not_take_is_learned_once_it_can(
        tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", check_interval=1,
                        journal_follow=False, knowledge={"seed": False})
    monkeypatch.setenv("AI_SYSADMIN_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("AI_SYSADMIN_KNOWLEDGE__SEED", "false")
    store = IncidentStore(Database(settings.db_path))
    finding = Finding("here", "failed_unit", "demo.service", Severity.CRITICAL,
                      "demo.service has failed", ("demo.service: active=failed",))
    (incident_id,) = store.record_check("here", [finding], {"failed_unit"}).opened
    fix = ActionStore(store.db).create(
        incident_id=incident_id, proposal_id=None, host="here", kind="restart_unit",
        params={"unit": "demo.service"}, subject="demo.service", risk="low", plan={},
        outcome="approval", reason="restart it", state="succeeded")
    # the knowledge base's files are damaged when a person's `approve` runs the fix
    settings.knowledge_dir.mkdir(parents=True)
    (settings.knowledge_dir / "chroma.sqlite3").write_bytes(b"\x00garbage" * 4096)

    async def approved() -> None:
        runtime = Runtime(settings, store, [LocalTransport("here")], consumer="check")
        await runtime.learn(fix)
        await runtime.close()

    with caplog.at_level(logging.WARNING, logger="ai_sysadmin"):
        asyncio.run(approved())
    (failed,) = [r for r in caplog.records if getattr(r, "event", None) == "learn_failed"]
    assert "file is not a database" in failed.getMessage()
    caplog.clear()
    # moved aside as the knowledge base's error says: what waits is said, then learned
    settings.knowledge_dir.rename(tmp_path / "knowledge.damaged")
    code, out, err = cli("knowledge", "list", "--json")
    assert (code, json.loads(out)) == (0, [])
    assert err.startswith("note: 1 lesson(s) of fixes that ran wait to be learned; the daemon "
                          "tries again at each housekeeping (the last try: knowledge base ")
    assert "file is not a database" in err
    daemon = Daemon(Runtime(settings, store, [LocalTransport("here")]))
    daemon.executor = daemon.runtime.executor

    async def housekeeping() -> None:
        task = asyncio.create_task(daemon.run())
        try:
            # what `knowledge list` says waits: nothing, once learned
            await until(lambda: ActionStore(store.db).lessons_waiting() == (0, None),
                        timeout=120, what="the kept lesson learned", interval=0.2)
        finally:
            daemon.stop_event.set()
            await asyncio.wait_for(task, 60)
            await daemon.runtime.close()

    asyncio.run(housekeeping())
    code, out, err = cli("knowledge", "list", "--json")
    assert (code, err) == (0, "")
    assert [(e["topic"], e["provenance"], e["verified"]) for e in json.loads(out)] == [
        ("failed_unit on demo.service: restart_unit works", "learned", True)]


def test_why_a_lesson_waits_is_shown_masked_for_a_row_an_older_version_stored(
        tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lesson's error stored before it was masked (a ChromaDB server's answer quoting
    its token): `knowledge list` says why the lesson waits without the token."""
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", knowledge={"seed": False})
    monkeypatch.setenv("AI_SYSADMIN_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("AI_SYSADMIN_KNOWLEDGE__SEED", "false")
    store = IncidentStore(Database(settings.db_path))
    finding = Finding("here", "failed_unit", "demo.service", Severity.CRITICAL,
                      "demo.service has failed", ("demo.service: active=failed",))
    (incident_id,) = store.record_check("here", [finding], {"failed_unit"}).opened
    actions = ActionStore(store.db)
    fix = actions.create(
        incident_id=incident_id, proposal_id=None, host="here", kind="restart_unit",
        params={"unit": "demo.service"}, subject="demo.service", risk="low", plan={},
        outcome="approval", reason="restart it", state="succeeded")
    actions.lesson_due(fix.id)
    # as an older version stored it: in clear
    actions.lesson_failed(fix.id, "knowledge base: the ChromaDB server at chroma:8000 said "
                          "401 for X-Chroma-Token: ghp_Q7wErT9yUiOpAsDfGhJkLzXcVbNm1234Ab\n"
                          "Traceback ...")
    code, _, err = cli("knowledge", "list", "--json")
    assert code == 0, err
    assert err.startswith("note: 1 lesson(s) of fixes that ran wait to be learned"), err
    assert "said 401 for X-Chroma-Token: [redacted]" in err, err
    assert "Q7wErT9y" not in err, err
