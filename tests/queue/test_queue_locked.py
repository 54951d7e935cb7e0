"""`ai-sysadmin queue` while another process holds the queue file's write lock (a backup, a
sqlite3 shell, a stopped process) shows the queue at once: opening the queue ran a clean-up
write, which waited the busy timeout (30 s) and then failed "cannot clean up", where the
reads alone would have done; each `ask` and `chat` turn did the same. The real program, the
real SQLite file, the lock held by another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ai_sysadmin.llm.queue.sqlite import SqliteQueue
from ai_sysadmin.llm.types import Priority
from tests.conftest import BIN

#: holds BEGIN IMMEDIATE on the file until its stdin closes
HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""


def test_the_queue_is_shown_while_another_process_holds_its_write_lock(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    made = SqliteQueue(state / "queue.db")
    made.submit("chat", {"messages": []}, Priority.INTERACTIVE)
    made.close()
    config = tmp_path / "config.toml"
    config.write_text('ai_name = "hal"\n')
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config), "AI_SYSADMIN_STATE_DIR": str(state)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(state / "queue.db")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        shown = subprocess.run([str(BIN), "queue", "--json"], env=env, capture_output=True,
                               text=True, timeout=120, check=False)
        # the lock was held all along: what was shown was read beside it
        assert holder.poll() is None
    finally:
        holder.communicate(timeout=30)
    assert shown.returncode == 0, shown
    assert json.loads(shown.stdout)["pending"]["interactive"] == 1
    assert "clean up" not in shown.stderr
