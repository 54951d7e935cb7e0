"""A lesson that cannot be learned holds up no other. A fix of a unit with a long name (a
transient mount unit of a container task: 160 characters of plain token) made a lesson whose
topic was over its limit: refused at every try, and since the daemon's housekeeping stopped at
the first lesson that failed, no fix was ever learned again. A real state database, a real
embedded ChromaDB, the runtime's housekeeping, and the `knowledge` command to see it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import Database, IncidentStore
from ai_sysadmin.store.actions import ActionStore

#: opening a knowledge base (ChromaDB, the embedding model) costs seconds
pytestmark = pytest.mark.slow

#: only what a token allows ([a-z0-9.-]), 160 characters
LONG_UNIT = ("run-containerd-io.containerd.runtime.v2.task-k8s.io-" + "a" * 64 + "-" + "b" * 24
             + "-rootfs-data.mount")


def _settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", knowledge={"seed": False})
    monkeypatch.setenv("AI_SYSADMIN_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("AI_SYSADMIN_KNOWLEDGE__SEED", "false")
    return settings


def _failed_fixes(store: IncidentStore, *units: str) -> list[int]:
    """A restart of each unit that ran and failed, its lesson due, oldest first."""
    actions = ActionStore(store.db)
    ids = []
    for unit in units:
        finding = Finding("here", "failed_unit", unit, Severity.CRITICAL,
                          f"{unit} has failed", (f"{unit}: failed",))
        (incident_id,) = store.record_check("here", [finding], {"failed_unit"}).opened
        action = actions.create(
            incident_id=incident_id, proposal_id=None, host="here", kind="restart_unit",
            params={"unit": unit}, subject=unit, risk="low", plan={}, outcome="approval",
            reason="restart it", state="executing")
        # its restart ran (a failed fix none of whose commands ran teaches nothing)
        ran = [{"argv": ["systemctl", "restart", unit], "returncode": 0, "stdout": "",
                "stderr": ""}]
        actions.ran(action.id, ran, time.time())
        actions.move(action.id, "failed", "executor", "still failed after it",
                     {"commands": ran, "verification": "still failed after 10 s"})
        actions.lesson_due(action.id)
        ids.append(action.id)
    return ids


def _housekeeping(settings: Settings, store: IncidentStore) -> int:
    async def run() -> int:
        runtime = Runtime(settings, store, [])
        try:
            return await runtime.learn_due()
        finally:
            await runtime.close()

    return asyncio.run(run())


def test_a_fix_of_a_unit_with_a_long_name_is_learned_and_holds_up_none(
        tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path, monkeypatch)
    store = IncidentStore(Database(settings.db_path))
    _failed_fixes(store, LONG_UNIT, "demo.service")

    assert _housekeeping(settings, store) == 2
    assert ActionStore(store.db).lessons_waiting() == (0, None)
    code, out, err = cli("knowledge", "list", "--json")
    assert code == 0 and "wait to be learned" not in err, err
    by_topic = {e["topic"]: e for e in json.loads(out)}
    assert "failed_unit on demo.service: restart_unit did not work" in by_topic
    (long_one,) = [e for t, e in by_topic.items() if "demo.service" not in t]
    # the topic within its limit, the unit cut in its middle; the text names it whole
    assert len(long_one["topic"]) == 200
    assert long_one["topic"].startswith("failed_unit on run-containerd-io.containerd.")
    assert long_one["topic"].endswith("-rootfs-data.mount: restart_unit did not work")
    assert "\u2026" in long_one["topic"]
    assert f"When failed_unit fired for {LONG_UNIT} on here" in long_one["text"]
    # an export of it is taken back as this program's own lesson, word for word
    dump = tmp_path / "notes.jsonl"
    assert cli("knowledge", "export", str(dump))[0] == 0
    code, out, err = cli("knowledge", "import", str(dump), "--json")
    assert code == 0, err
    # (a file nobody vouched for replaces none of the store's lessons: they are kept)
    assert len(json.loads(out)["kept"]) == 4
    code, out, err = cli("knowledge", "import", "--trust-operator-notes", str(dump), "--json")
    assert code == 0, err
    assert len(json.loads(out)["replaced"]) == 4


def test_a_lesson_refused_for_what_it_holds_is_passed_over(
        tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a lesson is refused for (here: its fix ended at a time no date can show, as
    a clock far off wrote it), the lessons after it are learned; it stays due, and said."""
    settings = _settings(tmp_path, monkeypatch)
    store = IncidentStore(Database(settings.db_path))
    bad, _ = _failed_fixes(store, "first.service", "demo.service")
    with store.db.transaction() as conn:
        conn.execute("UPDATE actions SET finished_at=1e13 WHERE id=?", (bad,))

    assert _housekeeping(settings, store) == 1
    assert _housekeeping(settings, store) == 0
    assert ActionStore(store.db).lessons_due() == [bad]
    code, out, err = cli("knowledge", "list", "--json")
    assert code == 0
    assert [e["topic"] for e in json.loads(out)] == [
        "failed_unit on demo.service: restart_unit did not work"]
    assert "note: 1 lesson(s) of fixes that ran wait to be learned" in err
