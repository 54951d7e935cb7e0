"""`ai-sysadmin run` and `ai-sysadmin worker`, started by hand, say at once whether the LLM they
serve answers and has the model: a wrong `llm.url` or a model not pulled was unsaid until an
incident's investigation failed (or ten minutes later, in a notification)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN
from tests.support.polling import poll_until
from tests.support.scripted_model import ScriptedModel


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _started(tmp_path: Path, command: str, url: str, model: str) -> str:
    """What the command said on stderr by the time its LLM line came, then stopped."""
    tmp_path.mkdir(exist_ok=True)
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\ncheck_interval = 3600\n'
                      f'[llm]\nurl = "{url}"\nmodel = "{model}"\n')
    state = tmp_path / "state"
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config), "AI_SYSADMIN_STATE_DIR": str(state)}
    proc = subprocess.Popen([str(BIN), command], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    log = state / "logs" / "service.jsonl"
    try:
        poll_until(lambda: log.exists() and '"llm_' in log.read_text(), 30,
                   "the LLM's readiness in the service log")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return err


@pytest.mark.parametrize("command", ["run", "worker"])
def test_a_server_that_is_down_is_said_at_the_start(tmp_path: Path, command: str) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    err = _started(tmp_path, command, url, "qwen2.5:7b-instruct")
    assert (f"[hal] service warning: LLM ollama at {url}, model qwen2.5:7b-instruct: not "
            f"ready: cannot connect to Ollama at {url}") in err, err
    assert "`ai-sysadmin llm status` checks it" in err


def test_a_model_not_pulled_is_said_and_a_ready_one_too(tmp_path: Path) -> None:
    with ScriptedModel(model="scripted") as model:
        missing = _started(tmp_path / "missing", "run", model.url, "qwen2.5:7b-instruct")
        ready = _started(tmp_path / "ready", "run", model.url, "scripted")
    assert "model qwen2.5:7b-instruct: not ready" in missing, missing
    assert "ollama pull qwen2.5:7b-instruct" in missing
    assert f"[hal] service info: LLM ollama at {model.url}, model scripted: ready" in ready, ready
