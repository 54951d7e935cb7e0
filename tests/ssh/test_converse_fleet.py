"""``hal-ask`` and ``hal-approve discuss`` reach the managed remote hosts, over real SSH."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.store import ActionStore, Database
from tests.conftest import BIN
from tests.support.scripted_model import ScriptedModel, call, say

from .conftest import Hosts


def _env(tmp_path: Path, ssh_hosts: Hosts, known_hosts: Path, url: str) -> dict[str, str]:
    alpha = ssh_hosts.alpha
    alpha.write_known_hosts(known_hosts)
    config = tmp_path / "config.toml"
    config.write_text(
        'ai_name = "hal"\n'
        f'remote_systems = [{{host = "{alpha.address}", name = "alpha", user = "root", '
        f'key_file = "{alpha.client.private}"}}]\n'
        f'[ssh]\nknown_hosts = "{known_hosts}"\nuse_ssh_config = false\n')
    return {**os.environ, "AI_SYSADMIN_CONFIG": str(config),
            "AI_SYSADMIN_STATE_DIR": str(tmp_path / "state"),
            "AI_SYSADMIN_LLM__BACKEND": "openai", "AI_SYSADMIN_LLM__MODEL": "scripted",
            "AI_SYSADMIN_LLM__URL": url, "AI_SYSADMIN_LLM__TIMEOUT": "10",
            "AI_SYSADMIN_QUEUE__WAIT_TIMEOUT": "30"}


def _tool_outputs(request: dict) -> str:
    return "\n".join(m["content"] for m in request["messages"] if m["role"] == "tool")


def test_ask_looks_at_a_managed_remote_host(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    script = [call("run_readonly", argv=["ip", "-o", "addr", "show"], host="alpha"),
              say("alpha has its own address.")]
    with ScriptedModel(script) as model:
        env = _env(tmp_path, ssh_hosts, known_hosts, model.url)
        done = subprocess.run([str(BIN), "ask", "--json", "what address has alpha?"],
                              capture_output=True, text=True, env=env, timeout=60)
        first, second = model.requests[:2]
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["answer"] == "alpha has its own address."
    # the system prompt names the managed host, the command ran in alpha's network namespace
    assert "You also manage alpha" in first["messages"][0]["content"]
    assert f"inet {ssh_hosts.alpha.address}/" in _tool_outputs(second)


def test_discussing_an_action_looks_at_the_action_host_by_default(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    script = [call("run_readonly", argv=["ip", "-o", "addr", "show"]), say("Looked.")]
    with ScriptedModel(script) as model:
        env = _env(tmp_path, ssh_hosts, known_hosts, model.url)
        actions = ActionStore(Database(Settings(ai_name="hal",
                                                state_dir=tmp_path / "state").db_path))
        action = actions.create(
            incident_id=None, proposal_id=None, host="alpha", kind="restart_unit",
            params={"unit": "nginx.service"}, subject="nginx.service", risk="medium", plan={},
            outcome="needs_approval", reason="medium risk at suggest", state="pending")
        done = subprocess.run([str(BIN), "approve", "discuss", str(action.id), "-m", "look"],
                              capture_output=True, text=True, env=env, timeout=60)
        second = model.requests[1]
    assert done.returncode == 0, done.stderr
    assert "Looked." in done.stdout
    assert f"inet {ssh_hosts.alpha.address}/" in _tool_outputs(second)
