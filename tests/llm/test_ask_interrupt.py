"""Ctrl-C on ``ask`` or ``chat`` while the LLM takes its time: the command ends at once, says so,
exits 130, and its request leaves the queue instead of being answered for nobody. The real
program in a child process, a scripted model over real HTTP that holds its answer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import BIN
from tests.support.scripted_model import ScriptedModel, delay, say

#: what "at once" allows on a loaded test machine; the lease renewal it used to wait for
#: comes queue.lease_seconds / 3 = 20 s after the request started
PROMPT_EXIT = 5.0


def _requests(state: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(state / "queue.db") as db:
        return db.execute("SELECT state, result FROM requests").fetchall()


def _poll(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)
    return value


@pytest.mark.parametrize("command", ["ask", "chat"])
def test_ctrl_c_while_the_llm_is_slow_ends_at_once_and_cancels_the_request(
        tmp_path: Path, command: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text('ai_name = "hal"\n')
    state = tmp_path / "state"
    with ScriptedModel([delay(120, say("far too late"))]) as model:
        env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config),
               "AI_SYSADMIN_STATE_DIR": str(state), "AI_SYSADMIN_LLM__URL": model.url,
               "AI_SYSADMIN_LLM__BACKEND": "openai", "AI_SYSADMIN_LLM__MODEL": "scripted"}
        argv = [str(BIN), "ask", "is nginx ok?"] if command == "ask" else [str(BIN), "chat"]
        # as a terminal starts it: a test run in the background ignores SIGINT, and a child
        # inherits that
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            assert proc.stdin is not None
            if command == "chat":
                proc.stdin.write("is nginx ok?\n")  # stdin stays open: the chat goes on
                proc.stdin.flush()
            _poll(lambda: model.requests, 60, "the question to reach the model")
            proc.send_signal(signal.SIGINT)
            interrupted = time.monotonic()
            _poll(lambda: proc.poll() is not None, 30, f"{command} to exit")
            took = time.monotonic() - interrupted
            _, stderr = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert took < PROMPT_EXIT, f"{command} took {took:.1f} s to stop"
        assert proc.returncode == 130
        assert stderr.splitlines()[-1:] == ["interrupted"], stderr
        assert "Traceback" not in stderr
        # withdrawn, not left to be answered later
        assert _requests(state) == [("cancelled", None)]
