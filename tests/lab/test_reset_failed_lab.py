"""A reset-failed clears a unit's failed state; it starts nothing. Where the host needs the
unit running (it is wanted by a target), clearing the state must not pass for the fix: the
failed_unit finding goes, the service is still dead. Real systemd, the scripted model
proposes, the policy and the executor decide, run and verify."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.learning import lesson
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.scenario import load_scenario
from ai_sysadmin.store import ActionStore
from tests.lab.daemon_runner import QUIET_HOST_WIDE, run_daemon
from tests.support.scripted_model import ScriptedModel, call, say

pytestmark = [pytest.mark.lab, pytest.mark.slow]

# dies at every start until its config is there: nothing short of that brings it up
BROKEN = """
[Service]
ExecStart=/bin/sh -c 'test -e /etc/app.conf || { echo "<3>cannot open /etc/app.conf" >&2; exit 1; }; exec sleep infinity'

[Install]
WantedBy=multi-user.target
"""  # noqa: E501
# a one-off job run by hand, wanted by nothing: its failure is old news once seen
ONE_OFF = """
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "<3>migration step 3 failed" >&2; exit 1'
"""


def settings_for(tmp_path: Path, url: str) -> Settings:
    return Settings(
        ai_name="hal", state_dir=tmp_path, check_interval=3600, autonomy_level="auto-safe",
        llm={"backend": "openai", "url": url, "model": "scripted", "timeout": 10},
        agent={"retry_backoff_seconds": 0.5}, thresholds=QUIET_HOST_WIDE,
        safety={"verify_settle_seconds": 1, "verify_timeout": 8},
    )


def propose_reset(unit: str):
    def step(request):
        if request["messages"][-1]["role"] == "tool" and "nothing was executed" in str(
                request["messages"][-1]["content"]):
            return say(f"DIAGNOSIS: {unit} failed. PROPOSALS: reset_failed_unit")
        return call("propose_action", kind="reset_failed_unit", parameters={"unit": unit},
                    rationale="clear its failed state")

    return step


def _ran(store) -> bool:
    return any(a.state in ("succeeded", "failed") for a in ActionStore(store.db).find())


def test_a_reset_failed_of_a_wanted_service_that_stays_dead_is_no_fix(tmp_path) -> None:
    with Sandbox() as sb, ScriptedModel([propose_reset("app.service")] * 20) as model:
        apply(sb, "install_unit", {"name": "app.service", "text": BROKEN,
                                   "wanted_by": "multi-user.target"})
        apply(sb, "start_unit", {"name": "app.service"})
        apply(sb, "wait_unit", {"name": "app.service", "value": "failed"})
        settings = settings_for(tmp_path, model.url)
        store, _ = run_daemon(settings, sb, _ran, timeout=90)
        state = sb.exec(["systemctl", "is-active", "app.service"]).stdout.strip()
        (incident,) = store.incidents(None)
        kept = incident.state
        # a later daemon's check no longer shows the finding: the incident stays a person's
        checked = store.hosts()[0]["last_check"]
        _, daemon = run_daemon(settings, sb, lambda s: s.hosts()[0]["last_check"] > checked,
                               timeout=90)
        (incident,) = store.incidents(None)
        still = incident.state
        # a person writes the config; a start of the unit that verifies resolves it
        sb.write_file("/etc/app.conf", "db=local\n")
        start = asyncio.run(daemon.executor.propose(incident.host, "start_unit",
                                                    {"unit": "app.service"},
                                                    incident_id=incident.id, actor="alice"))
        started = asyncio.run(daemon.executor.run(start.id))
    assert state != "active"  # the reset ran and started nothing
    (action, *_) = ActionStore(store.db).find()
    assert action.kind == "reset_failed_unit" and action.risk == "low"
    assert [c["argv"][:2] for c in action.result["commands"]] == [
        ["systemctl", "reset-failed"]]
    assert action.state == "failed", action.result
    assert "app.service is not active" in action.result["verification"]
    assert kept in ("open", "reopened")  # escalated to a person, not resolved
    assert still in ("open", "reopened", "investigating", "awaiting_approval")
    assert started.state == "succeeded", started.result
    assert store.get(incident.id).state == "resolved"
    escalated = [e["detail"] for e in store.audit_log(200) if e["action"] == "escalated"]
    assert any("did not fix it" in d for d in escalated)
    taught = lesson(incident, action)
    assert taught is not None and not taught.entry.verified
    assert taught.entry.category == "failed-fix"


def test_a_reset_failed_of_a_one_off_job_nothing_wants_resolves_it(tmp_path) -> None:
    with Sandbox() as sb, ScriptedModel([propose_reset("migrate.service")] * 20) as model:
        apply(sb, "install_unit", {"name": "migrate.service", "text": ONE_OFF})
        sb.exec(["systemctl", "start", "--no-block", "migrate.service"], check=True)
        apply(sb, "wait_unit", {"name": "migrate.service", "value": "failed"})
        store, _ = run_daemon(settings_for(tmp_path, model.url), sb, _ran, timeout=90)
    (action,) = ActionStore(store.db).find()
    assert (action.kind, action.state) == ("reset_failed_unit", "succeeded"), action.result
    assert action.result["verification"].startswith("finding gone for")
    (incident,) = store.incidents(None)
    assert incident.state == "resolved"


def test_a_reset_failed_of_a_service_that_hit_its_start_limit_and_stays_dead_is_no_fix(
        tmp_path) -> None:
    """Wanted by nothing, but systemd itself kept it running (Restart=on-failure) until its
    start limit: a reset clears the limit and starts nothing."""
    scenario = load_scenario("start-limit-hit")
    with Sandbox() as sb, ScriptedModel([propose_reset("syncer.service")] * 20) as model:
        for step in scenario.inject:
            apply(sb, step.action, step.params)
        shown = sb.exec(["systemctl", "show", "-p", "WantedBy,UnitFileState",
                         "syncer.service"]).stdout
        store, _ = run_daemon(settings_for(tmp_path, model.url), sb, _ran, timeout=90)
        state = sb.exec(["systemctl", "is-active", "syncer.service"]).stdout.strip()
    # nothing wants it: only systemd's own restarts kept it running
    assert "WantedBy=\n" in shown and "UnitFileState=static" in shown, shown
    assert state != "active"
    (action,) = [a for a in ActionStore(store.db).find() if a.subject == "syncer.service"]
    assert (action.kind, action.state) == ("reset_failed_unit", "failed"), action.result
    assert "syncer.service is not active" in action.result["verification"]
    assert "syncer.service has Restart=on-failure" in action.plan["reason"]
    (incident,) = [i for i in store.incidents(None) if i.subject == "syncer.service"
                   and i.rule == "failed_unit"]
    assert incident.state in ("open", "reopened")
    taught = lesson(incident, action)
    assert taught is not None and not taught.entry.verified


def test_a_reset_failed_of_a_one_off_service_systemd_does_not_restart_resolves_it(
        tmp_path) -> None:
    # Restart=no, wanted by nothing, it ran and failed: its failure is old news once seen
    one_off = "[Service]\nExecStart=/bin/sh -c 'sleep 0.3; echo \"<3>import failed\" >&2; exit 1'\n"
    with Sandbox() as sb, ScriptedModel([propose_reset("import.service")] * 20) as model:
        apply(sb, "install_unit", {"name": "import.service", "text": one_off})
        apply(sb, "start_unit", {"name": "import.service"})
        apply(sb, "wait_unit", {"name": "import.service", "value": "failed"})
        store, _ = run_daemon(settings_for(tmp_path, model.url), sb, _ran, timeout=90)
    (action,) = ActionStore(store.db).find()
    assert (action.kind, action.state) == ("reset_failed_unit", "succeeded"), action.result
    (incident,) = store.incidents(None)
    assert incident.state == "resolved"
