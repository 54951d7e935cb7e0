"""An `approve approve` killed (SIGKILL, a crash) while its fix runs: what a person sees of it
next is that it was interrupted and that nobody knows whether its command ran, in `approve
show`, `approve list` and a late `approve reject`, which said it was still running (its
process long dead) and, once settled, that it had "ran and failed", with the reason it had
been approved for as its why."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.store import Database, IncidentStore
from tests.conftest import BIN
from tests.support.polling import poll_until

from .vacuum import pending_vacuum


def _a_vacuum_that_says_it_ran(tmp_path: Path, then: str, config_tail: str = ""
                               ) -> tuple[Path, Settings, dict[str, str]]:
    """A journalctl that writes its arguments to the file returned, then runs ``then``; the
    settings of a private state dir that run it, and the environment of a CLI that reads
    them (``config_tail`` added to its config file)."""
    ran, journalctl = tmp_path / "ran", tmp_path / "journalctl"
    journalctl.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {ran}\n{then}')
    journalctl.chmod(0o755)
    state, config = tmp_path / "state", tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\nstate_dir = "{state}"\n'
                      f'[programs]\njournalctl = "{journalctl}"\n{config_tail}')
    settings = Settings(ai_name="hal", state_dir=state, programs={"journalctl": str(journalctl)})
    return ran, settings, {**os.environ, "AI_SYSADMIN_CONFIG": str(config)}


def test_a_fix_whose_approve_was_killed_reads_interrupted(tmp_path: Path) -> None:
    # the fix: it says it started, then runs long enough to be killed in the middle
    ran, settings, env = _a_vacuum_that_says_it_ran(tmp_path, "exec sleep 60\n")
    action = pending_vacuum(settings)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=60,
                              env=env)

    approving = subprocess.Popen([str(BIN), "approve", "approve", str(action.id)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
    try:
        poll_until(lambda: ran.exists() or approving.poll() is not None, 60,
                   "the fix to start")
    finally:
        os.killpg(approving.pid, signal.SIGKILL)  # the command and its fix's process
        approving.wait(10)
    shown = cli("approve", "show", str(action.id))
    listed = cli("approve", "list", "--all")
    rejected = cli("approve", "reject", str(action.id))
    assert shown.returncode == 0, shown.stderr
    assert "failed" in shown.stdout and "interrupted" in shown.stdout
    assert "executing" not in shown.stdout.split("\n", 3)[0]
    assert "interrupted" in " ".join(listed.stdout.split())
    said = " ".join(rejected.stderr.split())
    assert rejected.returncode == 1
    assert "too late to reject" in said and "interrupted" in said
    assert "whether its command ran is not known" in said, said
    assert "running since" not in said and "it ran and failed" not in said


def test_a_fix_verified_before_its_process_died_succeeded(tmp_path: Path) -> None:
    """Its process died after the verification found it fixed and before it recorded the
    end: it succeeded, said so, and pages nobody (it ended failed, a person asked to check a
    fix that had worked)."""
    import time

    from ai_sysadmin.store import ActionStore

    settings = Settings(ai_name="hal", state_dir=tmp_path)
    store = IncidentStore(Database(settings.db_path))
    host = short_hostname()
    executor = Executor(settings, store, {host: LocalTransport(host)})
    action = asyncio.run(executor.propose(host, "vacuum_journal", {"max_size": "500M"}))
    actions = ActionStore(store.db)
    actions.move(action.id, "approved", "alice", "go")
    assert actions.claim(action.id, "alice") is not None
    actions.ran(action.id, [{"argv": ["journalctl", "--vacuum-size=500M"], "returncode": 0}],
                time.time())
    actions.verified(action.id, "the journal is 120M now")
    with store.db.transaction() as conn:  # alice's `approve` died right then
        conn.execute("UPDATE actions SET owner='gone 1 1' WHERE id=?", (action.id,))
    executor.recover()
    ended = actions.get(action.id)
    assert ended.state == "succeeded"
    assert ended.reason.startswith("the journal is 120M now (verified; ")
    told = [kind for (kind,) in store.db.conn.execute(
        "SELECT kind FROM notify_events WHERE action_id=? ORDER BY id", (action.id,))]
    assert told == ["approval", "fixed"]  # nothing failed, nothing escalated


def _told(store: IncidentStore, action_id: int) -> list[str]:
    return [kind for (kind,) in store.db.conn.execute(
        "SELECT kind FROM notify_events WHERE action_id=? ORDER BY id", (action_id,))]


def test_a_fix_whose_approve_was_killed_while_verifying_says_its_commands_ran(
        tmp_path: Path) -> None:
    """Its commands ran and were recorded (exit 0), then its `approve` was killed while the
    fix was verified: it read "whether its command ran is not known; a person must check"
    beside the command's recorded exit 0. Now it says that its commands ran and that its
    verification was cut off, and escalates to nobody; of no incident, nothing follows it,
    and a person is told to look."""
    import sqlite3

    from ai_sysadmin.store import ActionStore

    # a verification that lasts: the kill comes while it runs
    ran, settings, env = _a_vacuum_that_says_it_ran(
        tmp_path, "", "[safety]\nverify_settle_seconds = 60\nverify_timeout = 120\n")
    action = pending_vacuum(settings)

    def recorded_ran() -> bool:
        with sqlite3.connect(f"file:{settings.db_path}?mode=ro", uri=True) as db:
            row = db.execute("SELECT ran_at FROM actions WHERE id=?", (action.id,)).fetchone()
        return row is not None and row[0] is not None

    approving = subprocess.Popen([str(BIN), "approve", "approve", str(action.id)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
    try:
        poll_until(lambda: recorded_ran() or approving.poll() is not None, 60,
                   "the fix's commands to be recorded as ran")
    finally:
        os.killpg(approving.pid, signal.SIGKILL)
        approving.wait(10)
    assert ran.read_text().split() == ["--vacuum-size=500M"]
    shown = subprocess.run([str(BIN), "approve", "show", str(action.id)], capture_output=True,
                           text=True, timeout=60, env=env)
    rejected = subprocess.run([str(BIN), "approve", "reject", str(action.id)],
                              capture_output=True, text=True, timeout=60, env=env)
    said = " ".join(rejected.stderr.split())
    assert rejected.returncode == 1 and "too late to reject" in said, said
    assert "its commands ran" in said and "verification was cut off" in said, said
    assert "not known" not in said and "a person must check" not in said, said
    # a fix of no incident (a discussion's): no checks follow it, so a person is told
    assert "no incident's checks tell: a person must look" in said, said
    shown_said = " ".join(shown.stdout.split())
    assert "its commands ran" in shown_said and "not known" not in shown_said, shown_said
    store = IncidentStore(Database(settings.db_path))
    ended = ActionStore(store.db).get(action.id)
    assert ended.state == "failed" and ended.reason.startswith("its commands ran"), ended.reason
    assert (ended.result or {})["commands"][0]["returncode"] == 0
    assert str((ended.result or {})["verification"]).startswith("cut off")
    # told once, in its own words: nothing else follows a fix of no incident
    assert _told(store, action.id) == ["approval", "failed"]
    assert not [e for e in store.audit_log(100) if e["action"] == "escalated"]


def test_an_incidents_fix_killed_while_verifying_is_investigated_again(
        tmp_path: Path) -> None:
    """The same of a fix of an incident: no person is asked to check whether it ran; the
    incident is open and due for a new investigation at once, as one whose fix did not hold
    (it may have: then the next check resolves it), and the fix counts toward the flapping
    limit as one that ran."""
    import time

    from ai_sysadmin.monitor.findings import Finding, Severity
    from ai_sysadmin.store import ActionStore

    settings = Settings(ai_name="hal", state_dir=tmp_path)
    store = IncidentStore(Database(settings.db_path))
    host = short_hostname()
    finding = Finding(host, "disk_space", "/", Severity.WARNING, "full")
    (incident,) = store.record_check(host, [finding], {"disk_space"}).opened
    executor = Executor(settings, store, {host: LocalTransport(host)})
    action = asyncio.run(executor.propose(host, "vacuum_journal", {"max_size": "500M"},
                                          incident_id=incident))
    actions = ActionStore(store.db)
    if action.state == "pending":
        actions.move(action.id, "approved", "alice", "go")
    started = time.time()
    assert actions.claim(action.id, "alice") is not None
    store.transition(incident, "remediating", "executor", f"action {action.id} running")
    actions.ran(action.id, [{"argv": ["journalctl", "--vacuum-size=500M"], "returncode": 0}],
                time.time())
    with store.db.transaction() as conn:  # its process died while verifying
        conn.execute("UPDATE actions SET owner='gone 1 1' WHERE id=?", (action.id,))
    executor.recover()
    ended = actions.get(action.id)
    assert ended.state == "failed" and "verification was cut off" in ended.reason
    assert "a person must check" not in ended.reason
    assert store.get(incident, history=0).state == "open"
    assert [i.id for i in store.investigation_due()] == [incident]
    assert not [e for e in store.audit_log(100) if e["action"] == "escalated"]
    assert "failed" not in _told(store, action.id)
    assert actions.recent_attempts(host, "vacuum_journal", ended.subject, started - 1) == 1
    # it held: the next check resolves its incident, and the person paged of it hears so
    store.record_check(host, [], {"disk_space"})
    assert store.get(incident, history=0).state == "resolved"
