"""A password or a key in ``llm.url`` (user:password, or a query such as ``?key=``) is masked in
every text a backend writes about its server, as ``config show`` masks it: errors (which the
queue stores and ``ask`` prints), the status probe; and a key in the query reaches the server
with every request. Real HTTP on 127.0.0.1, both wire protocols."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from ai_sysadmin.llm.types import LLMUnavailable, Message
from tests.conftest import BIN
from tests.support.scripted_model import ScriptedModel, say

SECRETS = ("PWSECRET", "QSECRET", "TOKSECRET")


def _with_secrets(url: str, path: str = "/") -> str:
    return (url.replace("http://", "http://bot:PWSECRET@")
            + f"{path}?key=QSECRET&access_token=TOKSECRET")


def _clean(*texts: str) -> None:
    for text in texts:
        assert not any(secret in text for secret in SECRETS), text


def test_an_unreachable_server_is_named_without_its_secrets(
        llm_settings, with_backend, dead_url: str) -> None:
    settings = llm_settings(_with_secrets(dead_url))

    async def ask(backend) -> str:
        with pytest.raises(LLMUnavailable) as failed:
            await backend.chat([Message("user", "hi")])
        return str(failed.value)

    said = with_backend(settings, ask)
    assert "refused or unreachable" in said
    _clean(said)
    # masked as `config show` masks it: the user name stays, each query value is hidden
    port = dead_url.rsplit(":", 1)[1]
    assert f"http://bot:****@127.0.0.1:{port}/?key=****&access_token=****" in said

    status = with_backend(settings, lambda backend: backend.status())
    assert not status.reachable and "refused or unreachable" in status.detail
    _clean(status.url, status.detail)
    assert status.url == f"http://bot:****@127.0.0.1:{port}/?key=****&access_token=****"


def test_a_key_in_the_query_goes_with_each_request_and_not_into_the_status(
        llm_settings, with_backend, backend_name: str) -> None:
    with ScriptedModel([say("hello")]) as model:
        path = "/v1" if backend_name == "openai" else "/"
        settings = llm_settings(_with_secrets(model.url, path))
        status = with_backend(settings, lambda backend: backend.status())
        answer = with_backend(settings, lambda b: b.chat([Message("user", "hi")]))
        hits = list(model.hits)
    assert status.reachable and status.model_present, status.detail
    _clean(status.url, status.detail)
    assert answer.message.content == "hello"
    listing, chat = (h.path for h in hits)
    assert listing.split("?") == [("/v1/models" if backend_name == "openai" else "/api/tags"),
                                  "key=QSECRET&access_token=TOKSECRET"]
    assert chat.split("?")[1] == "key=QSECRET&access_token=TOKSECRET"


@pytest.mark.parametrize("backend", ["ollama", "openai"])
def test_ask_prints_and_the_queue_stores_no_secret_of_llm_url(
        tmp_path: Path, dead_url: str, backend: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text('ai_name = "hal"\n')
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config),
           "AI_SYSADMIN_STATE_DIR": str(tmp_path / "state"),
           "AI_SYSADMIN_LLM__BACKEND": backend, "AI_SYSADMIN_LLM__URL": _with_secrets(dead_url)}
    asked = subprocess.run([str(BIN), "ask", "hello?"], capture_output=True, text=True,
                           env=env, timeout=60)
    assert asked.returncode == 2 and "refused or unreachable" in asked.stderr
    status = subprocess.run([str(BIN), "llm", "status", "--json"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert status.returncode == 1 and json.loads(status.stdout)["reachable"] is False
    with sqlite3.connect(tmp_path / "state" / "queue.db") as db:
        errors = [row[0] for row in db.execute("SELECT error FROM requests")]
    assert errors and all("refused or unreachable" in e for e in errors)
    _clean(asked.stdout, asked.stderr, status.stdout, status.stderr, *errors)


def test_a_password_in_a_bare_host_and_port_is_masked_by_ask_and_config_show(
        tmp_path: Path, dead_url: str) -> None:
    # Ollama's bare host:port form has no scheme for a URL parser to find the password by
    config = tmp_path / "config.toml"
    config.write_text('ai_name = "hal"\n')
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config),
           "AI_SYSADMIN_STATE_DIR": str(tmp_path / "state"),
           "AI_SYSADMIN_LLM__URL": dead_url.replace("http://", "bot:PWSECRET@")}
    asked = subprocess.run([str(BIN), "ask", "hello?"], capture_output=True, text=True,
                           env=env, timeout=60)
    as_json = subprocess.run([str(BIN), "ask", "--json", "hello?"], capture_output=True,
                             text=True, env=env, timeout=60)
    shown = subprocess.run([str(BIN), "config", "show"], capture_output=True, text=True,
                           env=env, timeout=60)
    assert asked.returncode == 2 and "refused or unreachable" in asked.stderr
    assert "bot:****@127.0.0.1:" in asked.stderr
    assert json.loads(as_json.stdout)["llm_url"].startswith("bot:****@127.0.0.1:")
    assert shown.returncode == 0 and "bot:****@127.0.0.1:" in shown.stdout
    _clean(asked.stdout, asked.stderr, as_json.stdout, as_json.stderr, shown.stdout)


@pytest.mark.parametrize("url", ["http://bot:PWSECRET@127.0.0.1:8080",
                                 "bot:PWSECRET@127.0.0.1:8080", "http://bot@127.0.0.1:8080"])
def test_a_user_in_llm_url_beside_an_api_key_file_is_refused_at_load(tmp_path: Path,
                                                                     url: str) -> None:
    """The HTTP client sends a URL's user:password as Basic authentication, and the key of
    llm.api_key_file never reached the server, unsaid: both given is a configuration error."""
    key = tmp_path / "llm.key"
    key.write_text("sk-KEYSECRET\n")
    key.chmod(0o600)
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\n[llm]\nurl = "{url}"\napi_key_file = "{key}"\n')
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config),
           "AI_SYSADMIN_STATE_DIR": str(tmp_path / "state")}
    for argv in (["config", "show"], ["ask", "hello?"], ["llm", "status"]):
        done = subprocess.run([str(BIN), *argv], capture_output=True, text=True, env=env,
                              timeout=60)
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        assert done.stderr == (
            f"error: {config}: key 'llm': llm.url carries a user name or password "
            "(user:password@host), which is sent as HTTP Basic authentication in place of the "
            "key of llm.api_key_file: set one of them, not both\n"), done.stderr
        _clean(done.stdout, done.stderr)
        assert "KEYSECRET" not in done.stdout + done.stderr
