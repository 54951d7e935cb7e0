"""A daemon started again runs the fix the policy approved for the one before it, which ended
(a crash, a kill) before running it. It ran it at once, on facts from before that end, maybe
hours old: a disk that had room again got its journal vacuumed for nothing, and the fix was
learned as one that works. Now it looks at the host first: the finding gone, the fix is not
needed and nothing runs. A real daemon, this machine, a stand-in journalctl that records a
vacuum."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import BIN
from tests.support.polling import poll_until

JOURNALCTL = """#!/bin/sh
case "$*" in
*--vacuum-size=*) printf '%s\\n' "$*" >> {ran}; exit 0 ;;
esac
exec /usr/bin/journalctl "$@"
"""

#: a daemon's check that found every file system with anything on it "full", and the policy's
#: decision (auto-safe) to vacuum the journal for /: then that daemon ended
DECIDED = """
import asyncio
from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.orchestrator.checker import HostChecker
from ai_sysadmin.store import Database, IncidentStore
settings = Settings(ai_name="hal", state_dir={state!r}, autonomy_level="auto-safe",
                    programs={{"journalctl": {journalctl!r}}},
                    thresholds={{"disk_warn_percent": 0.001, "disk_critical_percent": 100,
                                "clear_margin_percent": 0}})
store = IncidentStore(Database(settings.db_path))
host = short_hostname()
asyncio.run(HostChecker(LocalTransport(host), settings, store).check("seed"))
(incident,) = [i for i in store.incidents() if i.rule == "disk_space" and i.subject == "/"]
action = asyncio.run(Executor(settings, store, {{host: LocalTransport(host)}}).propose(
    host, "vacuum_journal", {{"max_size": "500M"}}, incident_id=incident.id))
print(action.id, action.state)
"""


def test_a_fix_a_daemon_left_approved_is_not_run_where_its_finding_is_gone(
        tmp_path: Path) -> None:
    state, ran, journalctl = tmp_path / "state", tmp_path / "ran", tmp_path / "journalctl"
    journalctl.write_text(JOURNALCTL.format(ran=ran))
    journalctl.chmod(0o755)
    done = subprocess.run([sys.executable, "-c", DECIDED.format(
        state=str(state), journalctl=str(journalctl))], capture_output=True, text=True,
        timeout=120)
    assert done.returncode == 0, done.stderr
    action_id, decided = done.stdout.split()
    assert decided == "approved"
    # the next daemon, with the thresholds as they are: / is not full
    (tmp_path / "config.toml").write_text(
        f'ai_name = "hal"\nautonomy_level = "auto-safe"\njournal_follow = false\n'
        f'[programs]\njournalctl = "{journalctl}"\n[llm]\nurl = "http://127.0.0.1:9"\n'
        "[knowledge]\nenabled = false\n")
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(tmp_path / "config.toml"),
           "AI_SYSADMIN_STATE_DIR": str(state)}
    daemon = subprocess.Popen([str(BIN), "run"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        def action() -> tuple[str, str]:
            with sqlite3.connect(state / "state.db") as db:
                return db.execute("SELECT state, reason FROM actions WHERE id = ?",
                                  (int(action_id),)).fetchone()

        settled = poll_until(lambda: (now := action())[0] != "approved" and now,
                             what="the next daemon settling the fix")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=60)
    # (its first interval check, beside it, may have resolved the incident by then)
    assert settled[0] == "not_needed", settled
    assert not ran.exists()  # the journal was never vacuumed
