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


def test_a_fix_whose_approve_was_killed_reads_interrupted(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    # the fix: it says it started, then runs long enough to be killed in the middle
    journalctl = tmp_path / "journalctl"
    journalctl.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {ran}\nexec sleep 60\n')
    journalctl.chmod(0o755)
    state = tmp_path / "state"
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\nstate_dir = "{state}"\n'
                      f'[programs]\njournalctl = "{journalctl}"\n')
    action = pending_vacuum(Settings(ai_name="hal", state_dir=state,
                                     programs={"journalctl": str(journalctl)}))
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config)}

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
