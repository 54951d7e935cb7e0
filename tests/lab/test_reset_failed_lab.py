"""A reset-failed clears a unit's failed state; it starts nothing. Where the host needs the
unit running (it is wanted by a target, or systemd itself kept it running), the fix is what
an admin types, ``systemctl reset-failed U && systemctl start U``, judged as that start is,
and done only once the unit runs. Real systemd, the scripted model proposes, the policy and
the executor decide, run and verify."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.executor import Executor
from ai_sysadmin.knowledge.learning import lesson
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.scenario import load_scenario
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import ActionStore, Database, IncidentStore
from tests.lab.daemon_runner import QUIET_HOST_WIDE, run_daemon
from tests.notify.conftest import TOKEN, secret_file
from tests.notify.servers import GotifyServer
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


def _found_failed(sb: Sandbox, settings: Settings, *units: str
                  ) -> tuple[SandboxTransport, IncidentStore, Executor, dict[str, int]]:
    """The lab's transport, a store whose one check found ``units`` failed (a check that
    found one alone would resolve the others'), an executor, and the incidents by unit."""
    transport = SandboxTransport(sb)
    store = IncidentStore(Database(settings.db_path))
    executor = Executor(settings, store, {transport.host: transport})
    store.record_check(transport.host, [
        Finding(transport.host, "failed_unit", unit, Severity.CRITICAL, f"{unit} has failed")
        for unit in units], {"failed_unit"})
    return transport, store, executor, {i.subject: i.id for i in store.incidents()}


def _ran(store) -> bool:
    return any(a.state in ("succeeded", "failed") for a in ActionStore(store.db).find())


def test_a_reset_failed_of_a_wanted_service_starts_it_and_fails_while_it_cannot_run(
        tmp_path) -> None:
    with Sandbox() as sb, ScriptedModel([propose_reset("app.service")] * 20) as model:
        apply(sb, "install_unit", {"name": "app.service", "text": BROKEN,
                                   "wanted_by": "multi-user.target"})
        apply(sb, "start_unit", {"name": "app.service"})
        apply(sb, "wait_unit", {"name": "app.service", "value": "failed"})
        settings = settings_for(tmp_path, model.url)
        store, daemon = run_daemon(settings, sb, _ran, timeout=90)
        state = sb.exec(["systemctl", "is-active", "app.service"]).stdout.strip()
        (incident,) = store.incidents(None)
        kept = incident.state
        # a person writes the config; a start of the unit that verifies resolves it
        sb.write_file("/etc/app.conf", "db=local\n")
        start = asyncio.run(daemon.executor.propose(incident.host, "start_unit",
                                                    {"unit": "app.service"},
                                                    incident_id=incident.id, actor="alice"))
        started = asyncio.run(daemon.executor.run(start.id))
    assert state == "failed"  # the reset's start ran, and it died again
    (action, *_) = ActionStore(store.db).find()
    assert action.kind == "reset_failed_unit" and action.risk == "low"
    assert [c[:2] for c in action.plan["commands"]] == [
        ["systemctl", "reset-failed"], ["systemctl", "start"]]
    assert "app.service is wanted by multi-user.target" in action.plan["reason"]
    assert action.state == "failed", action.result
    assert [c["argv"][:2] for c in action.result["commands"]] == [
        ["systemctl", "reset-failed"], ["systemctl", "start"]]
    assert "finding still present" in action.result["verification"]
    assert kept in ("open", "reopened")  # escalated to a person, not resolved
    assert started.state == "succeeded", started.result
    assert store.get(incident.id).state == "resolved"
    escalated = [e["detail"] for e in store.audit_log(200) if e["action"] == "escalated"]
    assert any(f"action {action.id} did not fix it" in d for d in escalated)
    taught = lesson(incident, action)
    assert taught is not None and not taught.entry.verified


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


def test_the_start_limit_drill_is_fixed_by_its_reset_alone_and_told_once(tmp_path) -> None:
    """Wanted by nothing, but systemd itself kept it running (Restart=on-failure) until its
    start limit: its reset-failed starts it too, as an admin's `systemctl reset-failed U &&
    systemctl start U`; the person hears one outcome, that it is fixed."""
    scenario = load_scenario("start-limit-hit")
    with Sandbox() as sb, ScriptedModel([propose_reset("syncer.service")] * 20) as model, \
            GotifyServer(TOKEN) as gotify:
        for step in scenario.inject:
            apply(sb, step.action, step.params)
        shown = sb.exec(["systemctl", "show", "-p", "WantedBy,UnitFileState",
                         "syncer.service"]).stdout
        settings = settings_for(tmp_path, model.url).model_copy(update={
            "gotify_url": gotify.url,
            "gotify_token_file": secret_file(tmp_path / "token", TOKEN)})

        def told(_store) -> list[str]:
            # the outcome of a fix of syncer's failure: fixed or failed, said once it ended
            return [m["title"] for m in gotify.accepted if "fix" in m["title"]
                    and "syncer.service has failed" in m["title"]]

        store, _ = run_daemon(settings, sb, told, timeout=120)
        state = sb.exec(["systemctl", "is-active", "syncer.service"]).stdout.strip()
        outcomes = told(store)
    # nothing wants it: only systemd's own restarts kept it running
    assert "WantedBy=\n" in shown and "UnitFileState=static" in shown, shown
    assert state == "active"
    (action,) = [a for a in ActionStore(store.db).find() if a.subject == "syncer.service"]
    assert (action.kind, action.state) == ("reset_failed_unit", "succeeded"), action.result
    assert [c["argv"][:2] for c in action.result["commands"]] == [
        ["systemctl", "reset-failed"], ["systemctl", "start"]]
    assert "syncer.service active" in action.result["verification"]
    assert "syncer.service has Restart=on-failure" in action.plan["reason"]
    assert outcomes == [f"[hal] {action.host}: fixed: syncer.service has failed"]
    (incident,) = [i for i in store.incidents(None) if i.subject == "syncer.service"
                   and i.rule == "failed_unit"]
    assert incident.state == "resolved"
    taught = lesson(incident, action)
    assert taught is not None and taught.entry.verified


def test_a_reset_failed_of_a_protected_or_other_unit_that_must_run_is_judged_as_its_start(
        tmp_path) -> None:
    """Its reset starts it: a protected unit, or another than the incident's, waits for a
    person as its start would, where a reset alone was low risk and ran on its own."""
    settings = Settings(ai_name="hal", state_dir=tmp_path, autonomy_level="auto-full",
                        safety={"protected_units": ["vault.service"]})
    with Sandbox() as sb:
        for name in ("app.service", "other.service", "vault.service"):
            apply(sb, "install_unit", {"name": name, "text": BROKEN,
                                       "wanted_by": "multi-user.target"})
            apply(sb, "start_unit", {"name": name})
            apply(sb, "wait_unit", {"name": name, "value": "failed"})
        transport, store, executor, incidents = _found_failed(
            sb, settings, "app.service", "vault.service")

        def judged(kind: str, unit: str, about: str):
            return asyncio.run(executor.plan(transport.host, kind, {"unit": unit},
                                             incidents[about]))

        def proposed(unit: str, about: str):
            return asyncio.run(executor.propose(transport.host, "reset_failed_unit",
                                                {"unit": unit}, incident_id=incidents[about]))

        cases = [("other.service", "app.service", "the incident is about app.service"),
                 ("vault.service", "vault.service", "vault.service is protected")]
        ends = [(proposed(u, about), judged("start_unit", u, about), why)
                for u, about, why in cases]
        states = {u: sb.exec(["systemctl", "is-active", u]).stdout.strip()
                  for u in ("other.service", "vault.service")}
    for action, start, why in ends:
        assert start.risk == "high" and (action.state, action.risk) == ("pending", "high")
        assert why in action.reason and why in start.reason
        _, _, person = start.reason.partition("; needs a person: ")
        assert action.plan["reason"].endswith(f"; needs a person: {person}")
        assert action.plan["commands"][1:] == [list(c) for c in start.commands]
    assert states == {"other.service": "failed", "vault.service": "failed"}  # nothing ran


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


# a nightly job its timer starts: it fails until its destination is there
NIGHTLY = """
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'test -e /srv/backup || { echo "<3>backup: destination unreachable" >&2; exit 1; }; echo done'
"""  # noqa: E501
TIMER = "[Timer]\nOnCalendar=*-*-* 03:00:00\n[Install]\nWantedBy=timers.target\n"


@pytest.mark.parametrize("fixed", [False, True])
def test_a_reset_failed_of_a_timers_job_runs_it_and_resolves_only_once_it_succeeds(
        tmp_path, fixed: bool) -> None:
    """Its timer starts it again tonight: the failure is fixed only by a run that succeeds,
    never by erasing it (a reset alone was 'succeeded', resolved and learned as a fix)."""
    with Sandbox() as sb, ScriptedModel([propose_reset("backup.service")] * 20) as model:
        apply(sb, "install_unit", {"name": "backup.service", "text": NIGHTLY})
        apply(sb, "install_unit", {"name": "backup.timer", "text": TIMER,
                                   "wanted_by": "timers.target"})
        sb.exec(["systemctl", "start", "backup.timer"], check=True)
        sb.exec(["systemctl", "start", "--no-block", "backup.service"], check=True)  # 03:00
        apply(sb, "wait_unit", {"name": "backup.service", "value": "failed"})
        if fixed:
            sb.exec(["mkdir", "/srv/backup"], check=True)  # the cause went before anyone looked
        store, _ = run_daemon(settings_for(tmp_path, model.url), sb, _ran, timeout=90)
        shown = sb.exec(["systemctl", "show", "-p", "ActiveState,Result,ExecMainStatus",
                         "backup.service"]).stdout.split()
    (action, *_) = ActionStore(store.db).find()
    assert (action.kind, action.risk) == ("reset_failed_unit", "low")
    assert "backup.service is started by backup.timer" in action.plan["reason"]
    assert [c[:2] for c in action.plan["commands"]] == [
        ["systemctl", "reset-failed"], ["systemctl", "start"]]
    (incident,) = store.incidents(None)
    taught = lesson(incident, action)
    if fixed:
        assert action.state == "succeeded", action.result
        assert "backup.service ran after the fix and succeeded" in action.result["verification"]
        assert incident.state == "resolved"
        assert taught is not None and taught.entry.verified
    else:
        # systemctl answers a oneshot's start once its run ended, and fails with it
        assert action.state == "failed" and "exited 1" in action.result["error"], action.result
        assert "ActiveState=failed" in shown and "ExecMainStatus=1" in shown, shown
        assert incident.state != "resolved"
        assert taught is None or not taught.entry.verified


def test_a_reset_failed_of_another_unit_than_the_incidents_waits_for_a_person(
        tmp_path) -> None:
    """A reset erases a unit's failure: another than the one the incident is about, or one
    without an incident, is a person's decision, as its start is."""
    settings = Settings(ai_name="hal", state_dir=tmp_path, autonomy_level="auto-safe",
                        safety={"verify_settle_seconds": 1, "verify_timeout": 8})
    with Sandbox() as sb:
        for name in ("app.service", "migrate.service"):
            apply(sb, "install_unit", {"name": name, "text": ONE_OFF})
            sb.exec(["systemctl", "start", "--no-block", name], check=True)
            apply(sb, "wait_unit", {"name": name, "value": "failed"})
        transport, store, executor, incidents = _found_failed(
            sb, settings, "app.service", "migrate.service")
        other, alone, own = (asyncio.run(executor.propose(
            transport.host, "reset_failed_unit", {"unit": "migrate.service"},
            incident_id=about)) for about in (incidents["app.service"], None,
                                              incidents["migrate.service"]))
        state = sb.exec(["systemctl", "is-active", "migrate.service"]).stdout.strip()
    assert (other.state, other.risk) == ("pending", "high")
    assert "the incident is about app.service, not migrate.service" in other.reason
    assert (alone.state, alone.risk) == ("pending", "high")
    assert "no incident names this unit" in alone.reason
    assert state == "failed"  # nothing ran without a person
    # the incident's own one-off job: its reset alone is the fix, and it runs
    assert (own.risk, own.state) == ("low", "approved")
