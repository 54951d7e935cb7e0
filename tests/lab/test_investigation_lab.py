"""A full autonomous investigation of a real fault (systemd in the lab) by the scripted model,
through the daemon, the durable queue and its embedded worker, over both wire protocols."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab import SandboxTransport
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.orchestrator.checker import HostChecker
from ai_sysadmin.store import ActionStore, Database, IncidentStore
from tests.lab.daemon_runner import QUIET_HOST_WIDE, run_daemon
from tests.support.scripted_model import ScriptedModel, call, http_error, say, tool_results

pytestmark = pytest.mark.lab
UNIT = """
[Service]
ExecStart=/bin/sh -c 'test -r /etc/demo.conf || { echo "<3>demo: cannot read /etc/demo.conf" >&2; exit 1; }; exec sleep infinity'
"""  # noqa: E501


def _settings(tmp_path: Path, url: str, backend: str, **agent) -> Settings:
    return Settings(
        ai_name="hal", state_dir=tmp_path, check_interval=3600,
        llm={"backend": backend, "url": url, "model": "scripted", "timeout": 10},
        agent={"retry_backoff_seconds": 0.5, **agent}, thresholds=QUIET_HOST_WIDE,
    )


def _run_until(settings: Settings, sb: Sandbox, done, timeout: float = 40):
    return run_daemon(settings, sb, done, timeout)[0]


def _failed_demo(sb: Sandbox) -> None:
    apply(sb, "install_unit", {"name": "demo.service", "text": UNIT})
    apply(sb, "start_unit", {"name": "demo.service"})


@pytest.mark.parametrize("backend", ["ollama", "openai"])
def test_investigation_ends_in_a_diagnosis_and_a_proposal(tmp_path, backend) -> None:
    script = [
        call("incident_evidence"),
        call("journal", unit="demo.service", priority="err", since="today"),
        call("propose_action", kind="restart_unit", parameters={"unit": "demo.service"},
             rationale="the config file is missing; restart after it is restored"),
        say("DIAGNOSIS: demo.service cannot read /etc/demo.conf.\nPROPOSALS: restart_unit"),
    ]
    with Sandbox() as sb, ScriptedModel(script) as model:
        _failed_demo(sb)
        settings = _settings(tmp_path, model.url, backend)
        # the proposal is decided after the diagnosis is recorded (the unit's facts are read
        # on the host first): wait for both
        store = _run_until(settings, sb, lambda s: any(i.diagnosis for i in s.incidents())
                           and bool(ActionStore(s.db).find()))
        (incident,) = store.incidents()
        journal_seen = tool_results(model.requests[2])[-1]
        still_failed = sb.exec(["systemctl", "is-failed", "demo.service"]).stdout.strip()
        first = model.requests[0]
    # at 'suggest' the proposal waits for a person
    assert (incident.rule, incident.subject, incident.state) == (
        "failed_unit", "demo.service", "awaiting_approval")
    (action,) = ActionStore(store.db).find()
    assert (action.kind, action.state, action.started_at) == ("restart_unit", "pending", None)
    assert incident.diagnosis.startswith("DIAGNOSIS: demo.service cannot read /etc/demo.conf")
    (proposal,) = store.proposals(incident.id)
    assert (proposal["kind"], proposal["parameters"]) == ("restart_unit",
                                                          {"unit": "demo.service"})
    # the real journal of the real unit reached the model, delimited as host data
    assert "demo: cannot read /etc/demo.conf" in journal_seen
    assert "untrusted data from the host" in journal_seen
    # the system prompt carries the name, never host text; the task the autonomy level
    system = next(m for m in first["messages"] if m["role"] == "system")["content"]
    task = next(m for m in first["messages"] if m["role"] == "user")["content"]
    assert "You are hal" in system and "demo.conf" not in system and "'suggest'" in task
    # nothing was executed: the unit is still failed
    assert still_failed == "failed"
    kinds = [e.kind for e in store.get(incident.id).events]
    assert kinds[:1] == ["opened"] and "proposal" in kinds and "diagnosis" in kinds


def test_an_llm_failure_keeps_the_incident_open_and_retries(tmp_path) -> None:
    script = [http_error(500), say("not JSON at all is fine too: here is a diagnosis")]
    with Sandbox() as sb, ScriptedModel(script) as model:
        _failed_demo(sb)
        settings = _settings(tmp_path, model.url, "openai")
        store = _run_until(settings, sb, lambda s: any(i.diagnosis for i in s.incidents()))
        (incident,) = store.incidents()
    events = store.get(incident.id).events
    failed = [e for e in events if e.kind == "investigation_failed"]
    assert failed and "500" in failed[0].detail
    # the failure never resolved the incident; the retry produced the diagnosis
    states = [e.to_state for e in events if e.kind == "state"]
    assert "resolved" not in states
    assert incident.state == "open" and incident.diagnosis.startswith("not JSON")
    # the retry answered but proposed nothing: open again with that reason, retried later
    assert incident.investigation_error == "the investigation ended without a proposal"
    assert incident.investigation_attempts == 2  # the failed one and the one without a fix


def test_an_incident_opened_by_check_is_investigated_by_the_daemon(tmp_path) -> None:
    script = [say("DIAGNOSIS: demo.service cannot read /etc/demo.conf.")]
    with Sandbox() as sb, ScriptedModel(script) as model:
        _failed_demo(sb)
        settings = _settings(tmp_path, model.url, "openai")
        # `check` records the incident on its own consumer; the daemon then sees it as known
        store = IncidentStore(Database(settings.db_path))
        checker = HostChecker(SandboxTransport(sb), settings, store, consumer="check")
        asyncio.run(checker.check("manual"))
        (opened,) = store.incidents()
        assert (opened.investigation_attempts, opened.diagnosis) == (0, None)
        store = _run_until(settings, sb, lambda s: any(i.diagnosis for i in s.incidents()))
    incident = store.get(opened.id)
    assert incident.diagnosis.startswith("DIAGNOSIS: demo.service cannot read")
    assert len(model.requests) == 1
