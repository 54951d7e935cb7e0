"""`llm status` with the queue unreachable says questions are not answered and exits 1: it
said "ready", `"answers": true` and exit 0 while `ask` failed, so a monitoring script that
trusted it reported healthy. The real program, a scripted model over real HTTP, a Redis URL
on a port nothing listens on."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN
from tests.support.scripted_model import ScriptedModel


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("as_json", [False, True])
def test_llm_status_with_the_queue_unreachable_is_not_ready(tmp_path: Path,
                                                            as_json: bool) -> None:
    config = tmp_path / "config.toml"
    with ScriptedModel(model="scripted") as model:
        config.write_text(f'ai_name = "hal"\n[queue]\nurl = "redis://127.0.0.1:'
                          f'{_closed_port()}/0"\n[llm]\nbackend = "openai"\n'
                          f'url = "{model.url}"\nmodel = "scripted"\n')
        env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config),
               "AI_SYSADMIN_STATE_DIR": str(tmp_path / "state")}
        done = subprocess.run([str(BIN), "llm", "status", *(["--json"] if as_json else [])],
                              env=env, capture_output=True, text=True, timeout=120,
                              check=False)
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr
    if as_json:
        said = json.loads(done.stdout)
        assert said["answers"] is False
        assert said["reachable"] is True  # the server itself answers: the queue is the cause
        assert "cannot reach the queue" in said["queue_error"]
    else:
        assert ("questions and investigations: not answered now: the queue they go through "
                "cannot be reached") in done.stdout, done.stdout
