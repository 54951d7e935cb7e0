"""What an investigation's proposals leave for a person to read: a fix the policy refuses on
its parameters alone is said to the model as it proposes it, so it can propose the right one
in the same investigation; and what the history and the audit log say of a proposal is
bounded, whatever the model wrote. Real investigations against the scripted model, the real
store and the real CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import Database, IncidentStore
from tests.conftest import BIN
from tests.support.investigations import sweep_until
from tests.support.scripted_model import ScriptedModel, call, say, tool_results

FAILED = Finding("web1", "failed_unit", "nginx.service", Severity.CRITICAL,
                 "nginx.service has failed", ("nginx.service: active=failed",))


def _hal(state: Path, *args: str) -> str:
    """What a person reads of ``ai-sysadmin ARGS`` on this state directory."""
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(state / "none.toml"),
           "AI_SYSADMIN_STATE_DIR": str(state), "COLUMNS": "200"}
    (state / "none.toml").write_text('ai_name = "hal"\n')
    done = subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _investigate(tmp_path: Path, script: list) -> tuple[IncidentStore, int, ScriptedModel]:
    with ScriptedModel(script) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path, autonomy_level="auto-safe",
                            agent={"retry_backoff_seconds": 3600},
                            llm={"backend": "ollama", "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened
        asyncio.run(sweep_until(settings, store, incident_id,
                                lambda: store.get(incident_id).diagnosis is not None))
    return store, incident_id, model


def test_an_invalid_unit_name_is_corrected_in_the_same_investigation(tmp_path: Path) -> None:
    """The model was told "proposal 1 recorded" for `nginx service`; the plan refused it
    (not a unit name), and the incident read "every proposal was refused", its
    investigation spent. Told at once, the model proposes nginx.service, the one proposal."""
    script = [call("propose_action", kind="restart_unit", parameters={"unit": "nginx service"},
                   rationale="nginx failed"),
              call("propose_action", kind="restart_unit", parameters={"unit": "nginx.service"},
                   rationale="nginx failed"),
              say("DIAGNOSIS: nginx crashed.\nPROPOSALS: restart_unit nginx.service")]
    store, incident_id, model = _investigate(tmp_path, script)
    told = tool_results(model.requests[1])[-1]
    assert told.startswith("tool propose_action status=refused"), told
    assert "'nginx service' is not a valid systemd unit name" in told, told
    assert "no proposal was recorded" in told, told
    assert [(p["kind"], p["parameters"]) for p in store.proposals(incident_id)] == [
        ("restart_unit", {"unit": "nginx.service"})]
    shown = " ".join(_hal(tmp_path, "issues", "show", str(incident_id)).split())
    assert 'proposed restart_unit {"unit": "nginx.service"}' in shown, shown
    assert 'restart_unit {"unit": "nginx service"}' not in shown, shown


def test_a_huge_argument_is_refused_as_proposed_and_nobody_reads_it(tmp_path: Path) -> None:
    """One run_command argument of 300,000 characters: it was recorded, then `issues show`
    printed 601 KB, `logs audit` 600 KB, before the policy refused it. Now the model is told
    that no argument is that long, and a person reads a few lines of why."""
    huge = "A" * 300_000
    script = [call("propose_action", kind="run_command",
                   parameters={"argv": ["journalctl", "--vacuum-size=1G", huge]},
                   rationale="free space"),
              say("DIAGNOSIS: the journal is full.\nPROPOSALS: run_command")]
    store, incident_id, model = _investigate(tmp_path, script)
    told = tool_results(model.requests[1])[-1]
    assert told.startswith("tool propose_action status=error"), told[:300]
    assert "argv.2: String should have at most" in told and len(told) < 1000, told[:300]
    assert store.proposals(incident_id) == []
    shown = _hal(tmp_path, "issues", "show", str(incident_id))
    assert "ended without a proposal" in " ".join(shown.split()), shown[:2000]
    assert len(shown) < 5000, shown[:2000]
    audit = _hal(tmp_path, "logs", "audit")
    assert "proposal.invalid" in audit and len(audit) < 5000, audit[:2000]


def test_what_the_history_and_audit_say_of_long_parameters_is_cut_and_said_so(
        tmp_path: Path) -> None:
    """Parameters the catalog takes can still be long (32 arguments of up to a path's
    length): the proposal keeps them whole, for the policy and `issues show`'s proposals;
    its history event and audit record hold the start, and say how long they were."""
    store = IncidentStore(Database(Settings(ai_name="hal", state_dir=tmp_path).db_path))
    (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened
    argv = ["rm", *(f"/var/cache/app/{n:02d}/" + "x" * 100 for n in range(30))]
    parameters = json.dumps({"argv": argv})
    store.transition(incident_id, "investigating", "agent", "investigation started")
    store.add_proposal(incident_id, "web1", "run_command", parameters, "old files")
    cut = f"(cut: {len(parameters)} characters in all)"
    events = [e.detail for e in store.get(incident_id).events if e.kind == "proposal"]
    assert len(events) == 1 and events[0].endswith(cut), events
    assert len(events[0]) < 1200
    # what a person reads: the history's line cut, the proposal itself whole, once
    shown = _hal(tmp_path, "issues", "show", str(incident_id))
    assert cut in " ".join(shown.split()), shown[:3000]
    assert " ".join(shown.split()).count(argv[-1]) == 1, shown[:3000]
    audit = " ".join(_hal(tmp_path, "logs", "audit").split())
    assert cut in audit and argv[-1] not in audit, audit[:3000]
