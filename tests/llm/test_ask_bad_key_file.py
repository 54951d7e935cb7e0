"""`ask` with an unusable llm.api_key_file (missing, or a directory) and no worker serving
the queue says so at once, in one line, exit 2: its own worker died building the LLM client
unseen, the question waited the whole queue.wait_timeout, a "Task exception was never
retrieved" traceback was printed, and the error blamed a missing worker. The real program in
a child process, the real SQLite queue, a scripted model over real HTTP."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN
from tests.support.scripted_model import ScriptedModel, say

#: far beyond how long `ask` takes to start: a question that waited for it is the bug
WAIT = 600


@pytest.mark.parametrize("key", ["missing", "directory"])
def test_ask_with_an_unusable_key_file_says_so_at_once(tmp_path: Path, key: str) -> None:
    key_file = tmp_path / "key"
    if key == "directory":
        key_file.mkdir()
    config = tmp_path / "config.toml"
    state = tmp_path / "state"
    with ScriptedModel(then=say("never asked")) as model:
        config.write_text(f'ai_name = "hal"\n[queue]\nwait_timeout = {WAIT}\n'
                          f'[llm]\nbackend = "openai"\nurl = "{model.url}"\n'
                          f'model = "scripted"\napi_key_file = "{key_file}"\n')
        env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config),
               "AI_SYSADMIN_STATE_DIR": str(state)}
        done = subprocess.run([str(BIN), "ask", "is nginx ok?"], env=env, capture_output=True,
                              text=True, timeout=WAIT / 2, check=False)
        assert model.requests == []
    assert done.returncode == 2, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and str(key_file) in lines[0], done.stderr
    assert "api_key_file" in lines[0], done.stderr
    assert "worker" not in done.stderr
    # nothing left behind for a worker to answer later
    if (state / "queue.db").exists():
        with sqlite3.connect(state / "queue.db") as db:
            assert db.execute("SELECT count(*) FROM requests").fetchone() == (0,)
