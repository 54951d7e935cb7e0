"""``approve approve N --dry-run`` says what the real approve would do, also when that is
nothing: the rehearsal applies the same checks."""

from __future__ import annotations

import asyncio
import json
import socket

from ai_sysadmin.config import short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import ActionStore


def test_a_dry_run_approve_says_it_would_run_nothing_where_approve_runs_nothing(
        cli, config_file, settings, store) -> None:
    host = short_hostname()
    executor = Executor(settings, store, {host: LocalTransport(host)})
    waiting = asyncio.run(executor.propose(host, "vacuum_journal", {"max_size": "500M"}))
    rejected = asyncio.run(executor.propose(host, "vacuum_journal", {"max_size": "600M"}))
    executor.reject(rejected.id, "bob", "no")

    code, out, _ = cli("approve", "approve", str(rejected.id), "--dry-run")
    assert code == 1 and "would run:" not in out and "journalctl" not in out
    assert f"would not run: approve would run nothing: action {rejected.id} is rejected" in out

    config_file('autonomy_level = "observe"\n')
    code, out, _ = cli("approve", "approve", str(waiting.id), "--dry-run")
    assert code == 1 and "would run:" not in out
    assert "approve would refuse it: the autonomy level is observe" in out
    assert "nothing ran; it is still pending" in out
    assert ActionStore(store.db).get(waiting.id).state == "pending"

    config_file("")  # at suggest the same action would run: the rehearsal says exactly what
    code, out, _ = cli("approve", "approve", str(waiting.id), "--dry-run")
    assert code == 0 and "would run:" in out and "--vacuum-size=500M" in out


def test_a_dry_run_of_a_host_that_does_not_answer_says_approve_would_run_nothing(
        cli, settings, store) -> None:
    with socket.socket() as sock:  # a port nobody listens on: the connection is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert cli("systems", "add", f"root@127.0.0.1:{port}", "--name", "down")[0] == 0
    action = asyncio.run(Executor(settings, store, {}).propose(
        "down", "vacuum_journal", {"max_size": "500M"}))

    code, out, _ = cli("approve", "approve", str(action.id), "--dry-run")
    assert "would run:" not in out and "journalctl" not in out
    assert f"action {action.id} (vacuum_journal) on down would not run: approve would run " \
        "nothing: down: connection refused" in out
    assert "it would wait for approval again" in out and "it is still pending" in out
    # the real approve: nothing runs, it waits again, and the exit code is the same
    real, _, err = cli("approve", "approve", str(action.id))
    assert "did not run and waits for approval again" in err
    assert code == real == 2
    code, out, _ = cli("approve", "approve", str(action.id), "--dry-run", "--json")
    shown = json.loads(out)
    assert code == 2 and shown["would_run"] == [] and shown["waits_again"] is True
    assert "connection refused" in shown["would_not_run"]


def test_a_fix_the_policy_now_refuses_says_why_where_approve_prints_it(
        cli, config_file, settings, store) -> None:
    host = short_hostname()
    config_file('[safety]\nclean_paths = ["/var/cache"]\n')
    executor = Executor(settings.model_copy(update={"safety": settings.safety.model_copy(
        update={"clean_paths": ["/var/cache"]})}), store, {host: LocalTransport(host)})
    action = asyncio.run(executor.propose(host, "clean_directory",
                                          {"path": "/var/cache/nothere-xyz"}))
    assert action.state == "pending"
    config_file('[safety]\nclean_paths = ["/srv/cache"]\n')  # the operator narrowed them

    code, out, err = cli("approve", "approve", str(action.id))
    assert code == 1 and "state refused" in out
    # what it says now is the refusal, on stdout and in the one line on stderr; not the
    # verdict it was proposed with
    assert "why: refused on approval by the policy" in out and "outside the configured" in out
    assert "wait for a person" not in out
    assert err.startswith(f"error: action {action.id} is refused: refused on approval")
    code, out, _ = cli("approve", "list", "--all")
    assert "outside the" in out and "wait for a person" not in out


#: systemctl on the test's host: ``show`` describes app.service as the file ``show`` says,
#: ``list-units`` lists it failed; a restart, start or stop is noted in ``ran``
SYSTEMCTL = """#!/bin/sh
case "$1" in
show) cat {here}/show;;
list-units) echo '[{{"unit":"app.service","load":"loaded","active":"failed","sub":"failed"}}]';;
restart|start|stop) printf '%s\\n' "$*" >> {here}/ran;;
esac
"""


def test_a_dry_run_says_a_fix_whose_risk_rose_since_it_was_shown_would_wait_again(
        cli, config_file, settings, store, tmp_path) -> None:
    """Shown as a low-risk restart, app.service gained Conflicts=db.service before the yes:
    the real approve runs nothing and asks again; its dry run said "would run" (exit 0)."""
    here = tmp_path / "host"
    here.mkdir()
    systemctl = here / "systemctl"
    systemctl.write_text(SYSTEMCTL.format(here=here))
    systemctl.chmod(0o755)
    show = "Id=app.service\nNames=app.service\nLoadState=loaded\nActiveState=failed\n"
    (here / "show").write_text(show)
    config_file(f'[programs]\nsystemctl = "{systemctl}"\n')
    host = short_hostname()
    executor = Executor(settings.model_copy(update={"programs": settings.programs.model_copy(
        update={"systemctl": str(systemctl)})}), store, {host: LocalTransport(host)})
    failed = Finding(host, "failed_unit", "app.service", Severity.CRITICAL, "failed")
    incident_id = store.record_check(host, [failed], {"failed_unit"}).opened[0]
    action = asyncio.run(executor.propose(host, "restart_unit", {"unit": "app.service"},
                                          incident_id=incident_id))
    assert (action.state, action.risk) == ("pending", "low"), action.reason
    (here / "show").write_text(show + "Conflicts=db.service\n")

    code, out, _ = cli("approve", "approve", str(action.id), "--dry-run")
    assert "would run:" not in out
    assert "approve would run nothing: the host's facts now make it high risk, low when it " \
        "was shown" in out and "db.service" in out
    assert "it would wait for approval again" in out and "it is still pending" in out
    real, _, err = cli("approve", "approve", str(action.id))
    assert "did not run and waits for approval again" in err
    assert code == real == 2
    assert not (here / "ran").exists()  # neither ran anything
    assert ActionStore(store.db).get(action.id).risk == "high"
