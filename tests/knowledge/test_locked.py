"""An embedded knowledge base another process holds locked (a long `knowledge import`, a
sqlite3 shell, a backup) is said after knowledge.timeout, exit 2: ChromaDB's own connections
wait 1000 s for the lock, so the command hung for up to 17 minutes without a word. Once the
lock is gone, the same command works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import BIN

#: opening a knowledge base (ChromaDB, the embedding model) costs seconds
pytestmark = pytest.mark.slow

#: a writer that holds the store's database locked until its stdin closes
_HOLD = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
"""


def _knowledge(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AI_SYSADMIN_STATE_DIR": str(tmp_path / "state"),
           "AI_SYSADMIN_KNOWLEDGE__SEED": "false", "AI_SYSADMIN_KNOWLEDGE__TIMEOUT": "1"}
    return subprocess.run([str(BIN), "knowledge", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_a_knowledge_base_another_process_holds_locked_is_said_not_waited_on(
        tmp_path: Path) -> None:
    made = _knowledge(tmp_path, "list")
    assert made.returncode == 0, made.stderr
    store = tmp_path / "state" / "knowledge"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(store / "chroma.sqlite3")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        started = time.monotonic()
        refused = _knowledge(tmp_path, "add", "--topic", "db1 backups",
                             "--text", "db1 is backed up at 02:00: its load then is expected")
        took = time.monotonic() - started
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(30)
    assert (refused.returncode, refused.stderr) == (
        2, f"error: knowledge base {store} is locked by another process (a `knowledge "
        "import`, a sqlite3 shell, a backup?), still after 1 s (knowledge.timeout): try "
        "again once it is done\n")
    assert took < 60, took  # its start and a second's wait, not ChromaDB's 1000 s
    again = _knowledge(tmp_path, "add", "--topic", "db1 backups",
                       "--text", "db1 is backed up at 02:00: its load then is expected")
    assert again.returncode == 0, again.stderr
    listed = _knowledge(tmp_path, "list", "--json")
    assert [e["topic"] for e in json.loads(listed.stdout)] == ["db1 backups"]
