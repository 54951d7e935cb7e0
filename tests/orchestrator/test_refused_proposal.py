"""A model whose fix is turned down (parameters out of range) and which then names that fix in
its diagnosis: the person reading the incident learns why nothing waits for approval, where
"ended without a proposal" under a diagnosis saying "PROPOSALS: clean_directory" read as a
contradiction; the decisions log says why the call failed too."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import StoreError
from ai_sysadmin.executor import Executor
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import Database, IncidentStore
from tests.conftest import BIN
from tests.executor.test_approval_lifecycle import HOST, ScriptedHost
from tests.support.investigations import sweep_until
from tests.support.scripted_model import ScriptedModel, call, say

FULL = Finding("web1", "disk_space", "/srv", Severity.CRITICAL, "/srv is 100% full",
               ("/srv (ext4 on /dev/vdb): 25.0 MiB of 25.0 MiB used, 0 B free",))
REFUSED = "invalid parameters for clean_directory: older_than_days"


def _hal(state: Path, *args: str) -> str:
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(state / "none.toml"),
           "AI_SYSADMIN_STATE_DIR": str(state), "COLUMNS": "400"}
    (state / "none.toml").write_text('ai_name = "hal"\n')
    done = subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return " ".join(done.stdout.split())


def test_why_the_models_fix_was_refused_is_in_the_incident_and_the_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ai_sysadmin.decisions")
    script = [call("propose_action", kind="clean_directory",
                   parameters={"path": "/var/cache", "older_than_days": 0},
                   rationale="old cache files fill the disk"),
              say("DIAGNOSIS: the cache filled /srv.\nPROPOSALS: clean_directory")]
    with ScriptedModel(script) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path,
                            agent={"retry_backoff_seconds": 3600},
                            llm={"backend": "ollama", "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FULL], {"disk_space"}).opened
        asyncio.run(sweep_until(settings, store, incident_id,
                                lambda: store.get(incident_id).diagnosis is not None))
    shown = _hal(tmp_path, "issues", "show", str(incident_id))
    assert ("the investigation ended without a proposal (the model's proposal was refused: "
            f"{REFUSED}") in shown, shown
    (logged,) = [r.getMessage() for r in caplog.records
                 if r.getMessage().startswith("tool propose_action")]
    assert f"ms: {REFUSED}" in logged, logged


def test_a_fix_the_policy_refuses_as_it_decides_it_leaves_the_incident_to_a_retry_then_a_person(
        tmp_path: Path) -> None:
    """The model proposes a Nix garbage collection (a well-formed call: the policy refuses
    it on what the host says it is, Debian). Nothing runs nor waits for a person: the
    incident was left open with nobody to look at it again. It is retried like an answer
    without a proposal, and once those are spent a person is told. (A fix refused whatever
    the host says, as cleaning /etc outside clean_paths is, is refused as it is proposed:
    test_loop_guards.py.)"""
    refused_fix = call("propose_action", kind="nix_gc", parameters={"older_than": "14d"},
                       rationale="old generations fill the disk")
    diagnosis = say("DIAGNOSIS: old generations filled /srv.\nPROPOSALS: nix_gc")
    with ScriptedModel([refused_fix, diagnosis, refused_fix, diagnosis]) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                            autonomy_level="auto-safe",
                            agent={"retry_backoff_seconds": 0.05, "max_investigations": 2},
                            llm={"backend": "ollama", "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        full = Finding(HOST, "disk_space", "/srv", Severity.CRITICAL, "/srv is 100% full")
        (incident_id,) = store.record_check(HOST, [full], {"disk_space"}).opened
        host = ScriptedHost(tmp_path)
        executor = Executor(settings, store, {HOST: host})

        def escalated() -> bool:
            return any(e.kind == "escalated" for e in store.get(incident_id).events)

        asyncio.run(sweep_until(settings, store, incident_id, escalated,
                                on_proposals=executor.decide_and_act, host=HOST))
    actions = executor.actions.find()
    assert [a.state for a in actions] == ["refused", "refused"]
    assert all("nix_gc needs NixOS; this host is debian" in a.reason for a in actions)
    incident = store.get(incident_id)
    assert incident.state == "open"
    [said] = [e.detail for e in incident.events if e.kind == "escalated"]
    assert said.startswith("every proposal was refused: ") and "retries spent" in said
    assert host.commands() == []


def test_proposals_whose_decision_failed_once_are_proposed_and_decided_again(
        tmp_path: Path) -> None:
    """The store refused the decision of an investigation's restart (locked, once): the
    incident stayed open with its diagnosis and a proposal nobody decided, retried by
    nothing until a restart."""
    decided: list[list[dict]] = []

    async def on_proposals(incident_id: int, host: str, proposals: list[dict]) -> list:
        decided.append(proposals)
        if len(decided) == 1:
            raise StoreError("database is locked")
        return []

    restart = call("propose_action", kind="restart_unit",
                   parameters={"unit": "nginx.service"}, rationale="it failed")
    with ScriptedModel([restart, say("DIAGNOSIS: nginx failed"),
                        restart, say("DIAGNOSIS: nginx failed")]) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path,
                            agent={"retry_backoff_seconds": 0.01},
                            llm={"backend": "ollama", "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        failed = Finding("web1", "failed_unit", "nginx.service", Severity.CRITICAL,
                         "nginx.service has failed")
        (incident_id,) = store.record_check("web1", [failed], {"failed_unit"}).opened
        asyncio.run(sweep_until(settings, store, incident_id, lambda: len(decided) == 2,
                                on_proposals=on_proposals))
    assert [p["state"] for p in store.proposals(incident_id)] == ["abandoned", "proposed"]
    (failure,) = [e.detail for e in store.get(incident_id).events
                  if e.kind == "investigation_failed"]
    assert failure == "StoreError: database is locked"

