"""`approve list` and `approve show` only show what is stored: their tidy (expiring what
nobody answered, settling what a dead process left) took the write lock, so while another
process held it (a backup, a sqlite3 shell) they waited the 30 s busy timeout and failed as
a write ("cannot be written ... nothing of this change was stored"), and a damaged actions
table read as a refused write. The tidy is left to the daemon then; what is stored is shown."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from ai_sysadmin.config import Settings
from tests.conftest import BIN, run_program
from tests.support.polling import poll_until

from .vacuum import pending_vacuum

#: a backup or a sqlite3 shell: the state database's write lock held until told (a minute at
#: most)
_HOLD_WRITE_LOCK = """
import pathlib, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
work = pathlib.Path(sys.argv[2])
(work / "held").touch()
deadline = time.monotonic() + 60
while not (work / "done").exists() and time.monotonic() < deadline:
    time.sleep(0.02)
conn.execute("ROLLBACK")
"""


def test_approve_list_and_show_answer_while_another_process_holds_the_write_lock(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    action = pending_vacuum(Settings(ai_name="hal", state_dir=state))
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_WRITE_LOCK, str(state / "state.db"),
                               str(tmp_path)], stderr=subprocess.PIPE, text=True)
    try:
        poll_until(lambda: (tmp_path / "held").exists() or holder.poll() is not None, 60,
                   "the write lock to be held")
        assert holder.poll() is None, holder.communicate()[1]
        listed = run_program(str(BIN), "approve", "list")
        shown = run_program(str(BIN), "approve", "show", str(action.id))
        still_held = holder.poll() is None
    finally:
        (tmp_path / "done").touch()
        holder.wait(60)
    assert still_held  # both answered while it held the lock
    assert listed.returncode == 0, listed.stderr
    assert "1 action(s) waiting for approval" in listed.stdout
    assert "vacuum_journal" in listed.stdout and "pending" in listed.stdout
    assert shown.returncode == 0, shown.stderr
    assert f"action {action.id} vacuum_journal" in shown.stdout
    assert "state pending" in shown.stdout


def test_approve_list_of_a_damaged_actions_table_says_it_cannot_be_read(tmp_path: Path) -> None:
    state_db = tmp_path / "state" / "state.db"
    pending_vacuum(Settings(ai_name="hal", state_dir=state_db.parent))
    conn = sqlite3.connect(state_db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='actions'").fetchone()
    (size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with state_db.open("r+b") as file:
        file.seek((root - 1) * size)
        file.write(b"\xff" * 200)
    done = run_program(str(BIN), "approve", "list")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: the state database {state_db} cannot be read: "
                                  "the file is damaged"), done.stderr
