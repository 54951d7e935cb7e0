"""`logs actions` tells only of what the store kept: a fix withdrawn inside a transaction that
is rolled back (a `systems remove` cut short by Ctrl-C) was never withdrawn, and no log line
says it was; once committed, the line is there."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_sysadmin import logs
from ai_sysadmin.config import Settings
from ai_sysadmin.executor import Executor
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import ActionStore, IncidentStore


def _pending_fix(store: IncidentStore) -> int:
    finding = Finding("web1", "failed_unit", "nginx.service", Severity.CRITICAL, "nginx failed")
    (incident_id,) = store.record_check("web1", [finding], {"failed_unit"}).opened
    return ActionStore(store.db).create(
        incident_id=incident_id, proposal_id=None, host="web1", kind="restart_unit",
        params={"unit": "nginx.service"}, subject="nginx.service", risk="low", plan={},
        outcome="approval", reason="needs a person", state="pending").id


def _withdrawn_lines(log_dir: Path) -> list[str]:
    return [r["msg"] for r in logs.read(log_dir, "actions", 100) if "withdrawn" in r["msg"]]


def test_a_withdrawal_rolled_back_is_not_logged_and_a_committed_one_is(
        tmp_path: Path, settings: Settings, store: IncidentStore) -> None:
    fix = _pending_fix(store)
    executor = Executor(settings, store, {})
    log_dir = tmp_path / "logs"
    with logs.kept():
        logs.configure(log_dir, "hal")
        with pytest.raises(KeyboardInterrupt), store.db.transaction():
            assert [a.id for a in executor.withdraw("web1 is gone", host="web1")] == [fix]
            raise KeyboardInterrupt  # the command cut short before its commit
        assert ActionStore(store.db).get(fix).state == "pending"
        assert _withdrawn_lines(log_dir) == []

        with store.db.transaction():
            executor.withdraw("web1 is gone", host="web1")
            assert _withdrawn_lines(log_dir) == []  # not before the commit either
        assert ActionStore(store.db).get(fix).state == "not_needed"
        assert _withdrawn_lines(log_dir) == [f"action {fix} withdrawn: web1 is gone"]
