"""The autonomy table, the catalog's plans, approvals and the policy/approve commands."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from ai_sysadmin.cli.approve import _when
from ai_sysadmin.config import ExecutorSettings
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.redact import redact
from ai_sysadmin.safety.actions import ACTION_KINDS
from ai_sysadmin.safety.autonomy import decide
from ai_sysadmin.safety.catalog import CATALOG, PlanContext, plan_action
from ai_sysadmin.safety.unit_facts import UnitFacts
from ai_sysadmin.store import ActionStore


@pytest.mark.parametrize(("level", "risk", "outcome"), [
    ("observe", "low", "record"), ("observe", "high", "record"),
    ("suggest", "low", "approval"), ("suggest", "medium", "approval"),
    ("suggest", "high", "approval"),
    ("auto-safe", "low", "execute"), ("auto-safe", "medium", "approval"),
    ("auto-safe", "high", "approval"),
    ("auto-full", "low", "execute"), ("auto-full", "medium", "execute"),
    ("auto-full", "high", "approval"),
])
def test_autonomy_table(level, risk, outcome) -> None:
    decision = decide(level, risk)
    assert decision.outcome == outcome and level in decision.reason


def test_refused_is_refused_at_every_level() -> None:
    for level in ("observe", "suggest", "auto-safe", "auto-full"):
        assert decide(level, "low", "protected").outcome == "refuse"


def test_every_proposable_kind_has_a_plan() -> None:
    assert set(CATALOG) == set(ACTION_KINDS)


def _on_host(*units: str, incident: str | None = None, **show: str) -> PlanContext:
    """A context as the executor builds it: each unit read on the host, as a plain service."""
    facts = {u: UnitFacts(u, (u,), {"LoadState": ("loaded",), **{
        k: tuple(v.split()) for k, v in show.items()}}) for u in units}
    return PlanContext(facts_read=True, units=facts, incident_unit=incident)


@pytest.mark.parametrize(("kind", "params", "ctx", "allowed", "risk", "why"), [
    ("restart_unit", {"unit": "nginx"}, _on_host("nginx.service", incident="nginx.service"),
     True, "low", "restart of nginx.service"),
    ("restart_unit", {"unit": "nginx"}, PlanContext(), True, "high", "no host was asked"),
    ("restart_unit", {"unit": "nginx"}, _on_host("nginx.service"), True, "high",
     "no incident names this unit"),
    ("restart_unit", {"unit": "nginx"}, _on_host("nginx.service", incident="app.service"),
     True, "high", "the incident is about app.service"),
    ("start_unit", {"unit": "r"}, _on_host("r.service", incident="r.service",
                                           SuccessAction="reboot"), False, "high", "reboot"),
    # unread, it may be needed running: its reset starts it, judged as that start
    ("reset_failed_unit", {"unit": "nginx"}, PlanContext(), True, "high", "no host was asked"),
    ("reset_failed_unit", {"unit": "job"}, _on_host("job.service", incident="job.service",
                                                    Restart="no"), True, "low",
     "reset-failed of job.service"),
    # a reset erases a failure: only the incident's, as only its unit is started
    ("reset_failed_unit", {"unit": "job"}, _on_host("job.service", Restart="no"), True, "high",
     "no incident names this unit: an automatic reset-failed touches only"),
    ("reset_failed_unit", {"unit": "job"}, _on_host("job.service", incident="app.service",
                                                    Restart="no"), True, "high",
     "the incident is about app.service, not job.service"),
    # a connection's instance of an Accept=yes socket ended with it: a start has none to serve
    ("reset_failed_unit", {"unit": "echo@3-10.0.0.1:7-10.0.0.2:4242.service"},
     _on_host("echo@3-10.0.0.1:7-10.0.0.2:4242.service", TriggeredBy="echo.socket",
              incident="echo@3-10.0.0.1:7-10.0.0.2:4242.service"), True, "low",
     "reset-failed of echo@3-10.0.0.1:7-10.0.0.2:4242.service"),
    ("restart_unit", {"unit": "ssh"}, PlanContext(), True, "high", "needs a person"),
    ("restart_unit", {"unit": "sshd@3-10.0.0.1:22.service"}, PlanContext(), True, "high",
     "needs a person"),
    ("restart_unit", {"unit": "db"}, PlanContext(protected=("db.service",)), True, "high",
     "needs a person"),
    ("restart_unit", {"unit": "a;b"}, PlanContext(), False, "high", "not a valid"),
    ("kill_process", {"pid": 1}, PlanContext(), False, "high", "pid"),
    ("kill_process", {"pid": 4242}, PlanContext(), True, "high", "whom it belongs to is unknown"),
    ("kill_process", {"pid": 4242}, PlanContext(facts_read=True), False, "high",
     "no process 4242"),
    ("kill_process", {"pid": 4242}, PlanContext(facts_problem="ps failed (1): no /proc"), True,
     "high", "the host could not tell: ps failed (1): no /proc"),
    ("clean_directory", {"path": "/etc"}, PlanContext(clean_paths=("/var/cache",)), False,
     "high", "outside the configured"),
    ("clean_directory", {"path": "/var/cache/../../etc"}, PlanContext(clean_paths=("/var/cache",)),
     False, "high", "not a plain absolute path"),
    ("clean_directory", {"path": "/var/cache/apt"}, PlanContext(
        clean_paths=("/var/cache",), path_mount="/var", incident_rule="disk_space",
        incident_subject="/var"), True, "medium", "neither modified nor read for 7 days"),
    ("nix_gc", {"older_than": "14d"}, PlanContext(os_id="debian"), False, "high", "NixOS"),
    ("nix_gc", {"older_than": "14d"}, PlanContext(os_id="nixos"), True, "low", "14d"),
    ("update_packages", {}, PlanContext(os_id="ubuntu"), True, "high", "apt-get"),
    ("update_packages", {}, PlanContext(os_id="rocky", os_like=("rhel", "fedora")), True,
     "high", "dnf"),
    ("update_packages", {}, PlanContext(os_id="gentoo"), False, "high", "no package update"),
    ("update_packages", {}, PlanContext(facts_problem="web1: no answer"), False, "high",
     "which package manager the host (its OS unknown) has could not be read: web1: no answer"),
    ("update_packages", {}, PlanContext(os_id="amzn", os_like=("centos", "rhel", "fedora"),
                                        package_programs=frozenset({"yum"})), True, "high",
     "install pending updates (yum)"),
    ("update_packages", {}, PlanContext(os_id="fedora", package_programs=frozenset(
        {"rpm-ostree", "dnf"}), ostree_booted=True), True, "high",
     "applied only at the next boot"),
    ("update_packages", {}, PlanContext(os_id="fedora", package_programs=frozenset({"dnf"}),
                                        ostree_booted=True), False, "high",
     "no package update command is known for fedora: the host booted an ostree deployment"),
    ("update_packages", {}, PlanContext(os_id="debian", package_programs=frozenset()), False,
     "high", "no package update command is known for debian: the host has none of the"),
    ("nix_gc", {"older_than": "3d"}, PlanContext(os_id="nixos"), True, "high",
     "only the generations of the last 3d are left to roll back to"),
    ("reboot", {}, PlanContext(), True, "high", "reboot"),
    ("run_command", {"argv": ["rm", "-rf", "/"]}, PlanContext(), False, "high", ""),
    ("run_command", {"argv": ["systemctl", "stop", "sshd"]}, PlanContext(), False, "high",
     "protected"),
    ("vacuum_journal", {"max_size": "1G; reboot"}, PlanContext(), False, "high", "max_size"),
    ("format_disk", {}, PlanContext(), False, "high", "unknown action"),
])
def test_plans(kind, params, ctx, allowed, risk, why) -> None:
    plan = plan_action(kind, params, ctx)
    assert (plan.allowed, plan.risk) == (allowed, risk), plan
    assert why in plan.reason


def _incident(store, host: str) -> int:
    finding = Finding(host, "failed_unit", "app.service", Severity.CRITICAL, "app failed")
    return store.record_check(host, [finding], {"failed_unit"}).opened[0]


def test_observe_records_and_suggest_waits(settings, store) -> None:
    host = "testhost"
    for level, state in (("observe", "recorded"), ("suggest", "pending"),
                         ("auto-safe", "approved")):
        executor = Executor(settings.model_copy(update={"autonomy_level": level}), store,
                            {host: LocalTransport(host)})
        action = asyncio.run(executor.propose(host, "vacuum_journal", {"max_size": "500M"}))
        assert action.state == state
    refused = asyncio.run(executor.propose(host, "run_command", {"argv": ["bash", "-c", "id"]}))
    assert refused.state == "refused" and "refused at every level" in refused.reason
    assert refused.reason.count("not on the remediation allow-list") == 1  # said once


def test_a_unit_whose_properties_cannot_be_read_waits_for_a_person(settings, store) -> None:
    host = "testhost"  # no systemd runs here: `systemctl show` cannot answer
    executor = Executor(settings.model_copy(update={"autonomy_level": "auto-full"}), store,
                        {host: LocalTransport(host)})
    action = asyncio.run(executor.propose(host, "restart_unit", {"unit": "app.service"},
                                          incident_id=_incident(store, host)))
    assert action.state == "pending" and "could not be read on the host" in action.reason


def test_approving_when_the_finding_is_gone_closes_it_as_not_needed(settings, store) -> None:
    host = "testhost"  # no systemd here: a fresh check judges failed_unit and finds nothing
    incident_id = _incident(store, host)
    executor = Executor(settings, store, {host: LocalTransport(host)})
    action = asyncio.run(executor.propose(host, "restart_unit", {"unit": "app.service"},
                                          incident_id=incident_id))
    assert store.get(incident_id).state == "awaiting_approval"
    done = asyncio.run(executor.approve(action.id, "alice"))
    assert done.state == "not_needed" and done.started_at is None
    with pytest.raises(Exception, match="not pending"):
        asyncio.run(executor.approve(action.id, "alice"))


def test_a_pending_action_and_its_incidents_wait_are_seen_together(
    settings, store, monkeypatch
) -> None:
    """Another reader (a person's listing, a restarted daemon) sees both or neither: the
    action waiting for approval and its incident waiting for it."""
    host = "testhost"
    incident_id = _incident(store, host)
    executor = Executor(settings, store, {host: LocalTransport(host)})
    seen: list[tuple[list[str], str]] = []
    create = ActionStore.create

    def create_and_look(self, **kwargs):  # type: ignore[no-untyped-def]
        action = create(self, **kwargs)
        other = sqlite3.connect(store.db.path)  # a reader of its own, as another process is
        try:
            seen.append(([state for (state,) in other.execute("SELECT state FROM actions")],
                         other.execute("SELECT state FROM incidents WHERE id=?",
                                       (incident_id,)).fetchone()[0]))
        finally:
            other.close()
        return action

    monkeypatch.setattr(ActionStore, "create", create_and_look)
    asyncio.run(executor.propose(host, "restart_unit", {"unit": "app.service"},
                                 incident_id=incident_id))
    assert seen == [([], "open")]  # nothing yet where the action is written
    assert store.get(incident_id).state == "awaiting_approval"


def test_approve_commands(cli, settings, store, monkeypatch) -> None:
    from ai_sysadmin.config import short_hostname

    host = short_hostname()
    executor = Executor(settings, store, {host: LocalTransport(host)})
    first = asyncio.run(executor.propose(host, "restart_unit", {"unit": "app.service"}))
    second = asyncio.run(executor.propose(host, "vacuum_journal", {"max_size": "200M"}))
    code, out, _ = cli("approve", "list", "--json")
    assert code == 0 and [a["id"] for a in json.loads(out)] == [first.id, second.id]
    code, out, _ = cli("approve", "show", str(second.id))
    assert "journalctl" in out and "--vacuum-size=200M" in out
    code, out, _ = cli("approve", "reject", str(first.id), "--reason", "not now")
    assert code == 0 and "rejected" in out
    code, out, _ = cli("approve", "list", "--json")
    assert [a["id"] for a in json.loads(out)] == [second.id]  # ids are stable, not positions
    code, _, err = cli("approve", "approve", str(first.id))
    # final: exit 1, as its dry run says; 2 is for one that waits for approval again
    assert code == 1 and "rejected, not pending" in err
    assert cli("approve", "approve", str(first.id), "--dry-run")[0] == 1
    code, _, err = cli("approve", "reject", str(first.id))
    assert code == 1 and f"action {first.id} is rejected, too late to reject" in err
    code, out, _ = cli("approve", "list", "--all", "--json")
    states = {a["id"]: a["state"] for a in json.loads(out)}
    assert states[first.id] == "rejected"
    audit = [e for e in store.audit_log(100) if e["subject"] == f"action:{first.id}"]
    assert [e["action"] for e in audit] == ["action.pending", "action.rejected"]
    assert audit[-1]["detail"] == "not now"


def test_an_approval_whose_expiry_no_clock_can_show_is_listed_and_shown(
        cli, settings, store) -> None:
    # an earlier release took approval_ttl_hours = 1e300: its rows expire at 3.6e303, and
    # `approve list` and `approve show` were a traceback (time.localtime overflowed)
    from ai_sysadmin.config import short_hostname

    host = short_hostname()
    executor = Executor(settings, store, {host: LocalTransport(host)})
    action = asyncio.run(executor.propose(host, "vacuum_journal", {"max_size": "200M"}))
    with store.db.transaction() as conn:
        conn.execute("UPDATE actions SET expires_at=? WHERE id=?", (1e300 * 3600, action.id))
    assert _when(1e300 * 3600) == "?"  # where a row is printed unsettled
    # show and list settle what expired, and give such a row the TTL configured now
    code, out, err = cli("approve", "show", str(action.id))
    assert (code, err) == (0, ""), err
    assert re.search(r"expires \d{4}-\d\d-\d\d \d\d:\d\d", out), out
    code, out, err = cli("approve", "list")
    assert (code, err) == (0, ""), err
    (row,) = [line for line in out.splitlines() if "vacuum_journal" in line]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", row), row


def test_policy_check_explains_decisions(cli, config_file, tmp_path) -> None:
    # this machine's systemd, as the policy reads it: sshd.service is there (a host that
    # cannot say leaves a stop to a person: test_policy_check_cli.py)
    systemctl = tmp_path / "systemctl"
    systemctl.write_text("#!/bin/sh\nprintf 'Id=sshd.service\\nNames=sshd.service "
                         "ssh.service\\nLoadState=loaded\\nActiveState=active\\n'\n")
    systemctl.chmod(0o755)
    config_file(f'[programs]\nsystemctl = "{systemctl}"\n')
    code, out, _ = cli("policy", "check", "--json",
                       '{"kind": "restart_unit", "parameters": {"unit": "sshd"}}')
    decision = json.loads(out)
    assert code == 0 and decision["risk"] == "high" and decision["autonomy"] == "approval"
    assert "protected" in decision["reason"]
    code, out, _ = cli("policy", "check", "--json", "--command", "--", "systemctl", "stop",
                       "sshd")
    decision = json.loads(out)
    assert code == 1
    assert decision["investigate"]["allowed"] is False
    assert decision["remediate"]["allowed"] is False and "protected" in decision["remediate"][
        "reason"]
    code, out, _ = cli("policy", "check", "--json", "--command", "--", "systemctl", "status",
                       "--no-pager", "nginx")
    assert code == 0 and json.loads(out)["investigate"]["allowed"] is True
    code, _, err = cli("policy", "check", "not json")
    assert code == 2 and "not valid JSON" in err


def test_policy_sudoers_prints_lines_visudo_accepts(cli, tmp_path) -> None:
    code, out, _ = cli("policy", "sudoers", "--user", "root")
    assert code == 0 and "/usr/bin/systemctl ^(restart|start|reset-failed) -- " in out
    assert "ai-sysadmin-clean /var/cache /var/tmp /tmp -- *" in out  # the configured paths
    rules = tmp_path / "sudoers"
    rules.write_text(out)
    checked = subprocess.run(["visudo", "-c", "-f", str(rules)], capture_output=True,
                             text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


class ChattyHost(LocalTransport):
    """A host whose fix prints credentials, as a failing service's error output may: every
    command really runs, as this shell script."""

    def __init__(self, code: int) -> None:
        super().__init__("testhost")
        self.code = code

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        if argv == ("true",):
            return argv  # the executor's "does the host answer" before it claims the action
        return ("sh", "-c", 'echo "connecting with token=tok-abc123secretvalue"; '
                'echo "DB_PASSWORD=hunter2hunter2 rejected" >&2; exit "$1"', "sh",
                str(self.code))


@pytest.mark.parametrize("code", [0, 1])
def test_what_a_fix_prints_is_stored_and_logged_masked(settings, store, code) -> None:
    from ai_sysadmin import logs

    logs.configure(settings.log_dir, settings.ai_name, mask=redact)
    settings = settings.model_copy(update={
        "autonomy_level": "auto-safe", "safety": settings.safety.model_copy(
            update={"verify_settle_seconds": 0, "verify_timeout": 5})})
    executor = Executor(settings, store, {"testhost": ChattyHost(code)})
    action = asyncio.run(executor.propose("testhost", "vacuum_journal", {"max_size": "500M"}))
    done = asyncio.run(executor.run(action.id))
    assert done.state == ("succeeded" if code == 0 else "failed"), done
    stored = json.dumps(done.to_dict()) + json.dumps(store.audit_log(100))
    logged = "".join(p.read_text() for p in settings.log_dir.glob("*.jsonl"))
    for text in (stored, logged):
        assert "hunter2hunter2" not in text and "tok-abc123secretvalue" not in text
    assert "[redacted]" in stored
    if code:
        assert "DB_PASSWORD=[redacted] rejected" in (done.result or {}).get("error", "")


def test_a_dry_run_prints_the_exact_command_and_runs_nothing(cli, settings, store,
                                                             monkeypatch) -> None:
    from ai_sysadmin.config import short_hostname

    monkeypatch.setenv("AI_SYSADMIN_PROGRAMS__JOURNALCTL", "/opt/systemd/bin/journalctl")
    host = short_hostname()
    action = asyncio.run(Executor(settings, store, {host: LocalTransport(host)}).propose(
        host, "vacuum_journal", {"max_size": "300M"}))
    code, out, _ = cli("approve", "approve", str(action.id), "--dry-run", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["dry_run"] is True and shown["state"] == "pending"
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n", "--"]
    assert shown["would_run"] == [[*sudo, "/opt/systemd/bin/journalctl",
                                   "--vacuum-size=300M"]]
    assert ActionStore(store.db).get(action.id).state == "pending"


def test_executor_dry_run_records_what_would_run(settings, store) -> None:
    """Exactly what would run: the configured program's path, behind sudo where the daemon
    is not root, as ``approve --dry-run`` prints it; not the policy's bare name."""
    settings = settings.model_copy(update={
        "autonomy_level": "auto-safe", "programs": settings.programs.model_copy(
            update={"journalctl": "/opt/systemd/bin/journalctl"})})
    dry = settings.model_copy(update={"executor": ExecutorSettings(dry_run=True)})
    host = "testhost"
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n", "--"]
    action = asyncio.run(Executor(dry, store, {host: LocalTransport(host)}).propose(
        host, "vacuum_journal", {"max_size": "500M"}))
    assert action.state == "recorded" and action.started_at is None
    assert f"would run {[[*sudo, '/opt/systemd/bin/journalctl', '--vacuum-size=500M']]}; " \
        in action.reason, action.reason
    # approved by a daemon that ran for real, then run by one started dry: the same
    approved = asyncio.run(Executor(settings, store, {host: LocalTransport(host)}).propose(
        host, "vacuum_journal", {"max_size": "600M"}))
    assert approved.state == "approved"
    done = asyncio.run(Executor(dry, store, {host: LocalTransport(host)}).run(approved.id))
    assert done.state == "recorded" and done.started_at is None
    assert f"would run {[[*sudo, '/opt/systemd/bin/journalctl', '--vacuum-size=600M']]}; " \
        "not run" in done.reason, done.reason


@pytest.mark.parametrize(("show", "needed"), [
    ({"WantedBy": "multi-user.target", "UnitFileState": "enabled"}, "wanted by multi-user"),
    ({"RequiredBy": "app.target", "UnitFileState": "static"}, "wanted by app.target"),
    ({"UnitFileState": "enabled"}, "app.service is enabled"),
    ({"UnitFileState": "disabled"}, None),
    ({"UnitFileState": "static", "Type": "oneshot"}, None),
    # wanted by nothing, but systemd itself kept it running until it gave up
    ({"Restart": "on-failure", "Result": "start-limit-hit"},
     "Restart=on-failure and hit its start limit"),
    ({"Restart": "always", "NRestarts": "5", "Result": "exit-code"}, "restarted 5 times"),
    ({"Restart": "on-failure", "ActiveEnterTimestampMonotonic": "123"}, "was running"),
    ({"Restart": "no", "NRestarts": "0", "ActiveEnterTimestampMonotonic": "123"}, None),
    ({"Restart": "on-failure", "NRestarts": "0", "ActiveEnterTimestampMonotonic": "0"}, None),
    # its timer, path unit or socket starts it again: only a run that works fixes it
    ({"UnitFileState": "static", "TriggeredBy": "app.timer"}, "started by app.timer"),
    ({"UnitFileState": "static", "TriggeredBy": "app.path"}, "started by app.path"),
])
def test_a_reset_failed_counts_as_a_fix_only_once_a_unit_the_host_needs_runs(
        show: dict[str, str], needed: str | None) -> None:
    plan = plan_action("reset_failed_unit", {"unit": "app.service"},
                       _on_host("app.service", incident="app.service", **show))
    assert plan.allowed and plan.risk == "low"
    if needed is None:
        assert plan.verify_unit_active is None and "start" not in plan.reason
        assert plan.commands == (("systemctl", "reset-failed", "--", "app.service"),)
    else:
        # what an admin types: systemctl reset-failed U && systemctl start U
        assert plan.commands == (("systemctl", "reset-failed", "--", "app.service"),
                                 ("systemctl", "start", "--", "app.service"))
        assert plan.verify_unit_active == "app.service"
        assert needed in plan.reason and "a reset-failed starts nothing" in plan.reason


@pytest.mark.parametrize(("ctx", "refused"), [
    (_on_host("db.service", incident="db.service", WantedBy="multi-user.target"), False),
    # protected by the operator's list, by its name, or not the incident's unit
    (dataclasses.replace(_on_host("db.service", incident="db.service",
                                  WantedBy="multi-user.target"), protected=("db.service",)),
     False),
    (_on_host("db.service", incident="app.service", WantedBy="multi-user.target"), False),
    (_on_host("db.service", WantedBy="multi-user.target"), False),
    (_on_host("db.service", incident="db.service", WantedBy="multi-user.target",
              SuccessAction="reboot"), True),
])
def test_a_reset_failed_that_starts_its_unit_is_judged_as_that_start(ctx, refused) -> None:
    reset = plan_action("reset_failed_unit", {"unit": "db.service"}, ctx)
    start = plan_action("start_unit", {"unit": "db.service"}, ctx)
    assert reset.allowed is not refused and start.allowed is not refused
    assert reset.risk == start.risk
    if refused:
        assert "that start is refused: " + start.reason in reset.reason
        return
    _, _, person = start.reason.partition("; needs a person: ")
    assert reset.reason.endswith(f"; needs a person: {person}" if person else ")")
    assert reset.commands[1:] == start.commands


@pytest.mark.parametrize("kind", ["restart_unit", "start_unit", "reset_failed_unit"])
def test_a_fix_of_a_oneshot_job_is_verified_by_its_run_not_by_active(kind: str) -> None:
    plan = plan_action(kind, {"unit": "app.service"}, _on_host(
        "app.service", incident="app.service", WantedBy="multi-user.target", Type="oneshot",
        RemainAfterExit="no"))
    assert plan.allowed and plan.risk == "low"
    assert (plan.verify_unit_active, plan.verify_unit_ran) == (None, "app.service")
    remains = plan_action(kind, {"unit": "app.service"}, _on_host(
        "app.service", incident="app.service", WantedBy="multi-user.target", Type="oneshot",
        RemainAfterExit="yes"))
    assert (remains.verify_unit_active, remains.verify_unit_ran) == ("app.service", None)


def test_a_reset_failed_of_a_unit_not_read_on_the_host_must_leave_it_active() -> None:
    plan = plan_action("reset_failed_unit", {"unit": "app.service"}, PlanContext())
    assert plan.verify_unit_active == "app.service"


class KeyPrintingHost(LocalTransport):
    """A host whose fix prints what two real files hold: the end of a private key on stdout,
    tokens on stderr, each where the executor's cut of what it keeps falls."""

    def __init__(self, out: Path, err: Path, code: int) -> None:
        super().__init__("testhost")
        self.out, self.err, self.code = out, err, code

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        if argv == ("true",):
            return argv  # the executor's "does the host answer" before it claims the action
        return ("sh", "-c", 'cat -- "$1"; cat -- "$2" >&2; exit "$3"', "sh", str(self.out),
                str(self.err), str(self.code))


@pytest.mark.parametrize("code", [0, 1])
def test_a_secret_at_the_cut_of_what_a_fix_printed_is_masked_whole(settings, store, tmp_path,
                                                                      code) -> None:
    """The executor keeps the last 2000 characters of each stream of a fix that ran and says
    the last 300 of stderr in a failed one's error: masked first, then cut. Cut first, a
    private key whose header fell before the cut was stored in clear, and a token cut in two
    showed its end."""
    body = "\n".join(base64.b64encode(os.urandom(48)).decode() for _ in range(25))
    key = f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"
    after = ("removed 3 files\n" * 40)[:2000 - (len(key) - 12)]
    out_text = "ok\n" * 400 + key + after
    assert out_text[-2000:] == key[12:] + after  # the kept end begins inside the header
    (tmp_path / "out.txt").write_text(out_text)
    near_2000, near_300 = "ghp_" + "A1b2C3d4" * 4 + "zz", "ghp_" + "Q9w8E7r6" * 4 + "yy"
    err_text = ("x" * 500 + " " + near_2000 + " " + "y" * 1660 + " " + near_300 + " "
                + "z" * 271)
    # each token begins 10 characters before a cut that keeps the text's end
    assert err_text.index(near_2000) == len(err_text) - 2010
    assert err_text.index(near_300) == len(err_text) - 310
    (tmp_path / "err.txt").write_text(err_text)
    settings = settings.model_copy(update={
        "autonomy_level": "auto-safe", "safety": settings.safety.model_copy(
            update={"verify_settle_seconds": 0, "verify_timeout": 5})})
    host = KeyPrintingHost(tmp_path / "out.txt", tmp_path / "err.txt", code)
    executor = Executor(settings, store, {"testhost": host})
    action = asyncio.run(executor.propose("testhost", "vacuum_journal", {"max_size": "500M"}))
    done = asyncio.run(executor.run(action.id))
    assert done.state == ("succeeded" if code == 0 else "failed"), done
    stored = json.dumps(done.to_dict()) + json.dumps(store.audit_log(100))
    for line in body.splitlines():
        assert line not in stored
    for token in (near_2000, near_300):
        assert token[-26:] not in stored
    if code == 0:
        (output,) = (done.result or {})["commands"]
        assert "[redacted private key]\nremoved 3 files" in output["stdout"]
        assert " [redacted] yyy" in output["stderr"]
    else:
        assert (done.result or {})["error"].endswith("yyy [redacted] " + "z" * 271)


def test_approve_says_why_an_action_waits_again_masked(cli, settings, store, monkeypatch,
                                                       tmp_path) -> None:
    """``approve approve N`` (and its --dry-run) that leaves the action waiting says why, from
    the store: masked, as approve show and --json are (here the host's ps, which could read
    the process when the kill was proposed, quotes a password when it is approved)."""
    from ai_sysadmin.config import short_hostname

    host = short_hostname()
    with subprocess.Popen(["sleep", "300"]) as target:
        try:
            executor = Executor(settings, store, {host: LocalTransport(host)})
            action = asyncio.run(executor.propose(host, "kill_process", {"pid": target.pid},
                                                  incident_id=_incident(store, host)))
            assert action.state == "pending", action
            ps = tmp_path / "ps"
            ps.write_text("#!/bin/sh\necho 'ps: cannot read /proc: DB_PASSWORD=hunter2x "
                          "refused' >&2\nexit 1\n")
            ps.chmod(0o755)
            monkeypatch.setenv("AI_SYSADMIN_PROGRAMS__PS", str(ps))
            code, out, err = cli("approve", "approve", str(action.id), "--dry-run")
            assert code == 2, (out, err)
            assert "hunter2x" not in out + err
            assert "would wait for approval again" in out and "DB_PASSWORD=[redacted]" in out
            code, out, err = cli("approve", "approve", str(action.id))
            assert code == 2, (out, err)
            assert "hunter2x" not in out + err
            assert "waits for approval again" in err and "DB_PASSWORD=[redacted]" in err
            assert target.poll() is None  # nothing ran
        finally:
            target.kill()
