"""The daemon as a user runs it: a real process, stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import BIN


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_checks_then_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('ai_name = "hal"\ncheck_interval = 3600\n')
    state = tmp_path / "state"
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config), "AI_SYSADMIN_STATE_DIR": str(state)}
    proc = subprocess.Popen([str(BIN), "run"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    log = state / "logs" / "orchestrator.jsonl"
    try:
        _wait_for(lambda: log.exists() and "checked" in log.read_text(), 30, "the first check")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "[hal] service info: hal stopped cleanly" in err
    record = json.loads(log.read_text().splitlines()[0])
    assert record["name"] == "hal" and record["msg"].startswith("checked ")
