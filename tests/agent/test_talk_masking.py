"""``hal-ask`` and ``hal-chat`` in a terminal mask what ``--json`` masks: a secret the model
repeats, or a server's error quotes, is shown ``[redacted]``; the rest of what was said stays."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.conftest import BIN
from tests.support.scripted_model import ScriptedModel, call, http_error, say

from .test_converse_cli import run

SECRET = "hunter2"
#: a token whose shape alone says what it is (no name before it)
TOKEN = "ghp_" + "A1b2C3d4E5" * 4


def _app_conf(tmp_path: Path) -> Path:
    """A file the model reads: its password reaches the model masked."""
    directory = tmp_path / "app"
    directory.mkdir()
    directory.chmod(0o755)
    conf = directory / "app.conf"
    conf.write_text(f"listen = 8080\ndb_password = {SECRET}\n")
    conf.chmod(0o644)
    return conf


def _repeating(conf: Path) -> list:
    """A model that reads the file, passes a token in a call, then repeats both secrets."""
    return [call("read_file", path=str(conf)),
            call("run_readonly", argv=["grep", "-c", TOKEN, str(conf)]),
            say(f"app.conf sets db_password={SECRET} and listens on 8080; the token "
                f"{TOKEN} is not in it. Move the password to a credentials file.")]


def test_ask_in_a_terminal_masks_the_answer_and_the_tool_lines(env, tmp_path: Path) -> None:
    conf = _app_conf(tmp_path)
    with ScriptedModel(_repeating(conf)) as model:
        env["AI_SYSADMIN_LLM__URL"] = model.url
        done = run([str(BIN), "ask", "what does app.conf set?"], env)
        sent = model.requests
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr
    assert SECRET not in said and TOKEN not in said
    # the answer is all there, its secrets masked
    assert ("app.conf sets db_password=[redacted] and listens on 8080; the token [redacted] "
            "is not in it. Move the password to a credentials file.") in done.stdout
    # each call is said, its arguments masked
    assert f"→ read_file {{\"path\": \"{conf}\"}}" in done.stderr
    assert "→ run_readonly" in done.stderr
    # what the tool read reached the model masked, as before
    assert "db_password = [redacted]" in str(sent[1]["messages"])


def test_chat_masks_a_servers_error_and_the_answer(env, tmp_path: Path) -> None:
    conf = _app_conf(tmp_path)
    # a proxy in front of the model refusing the first question, quoting what it was sent
    refusal = http_error(400, f'{{"error": "bad request: password={SECRET}"}}')
    with ScriptedModel([refusal, *_repeating(conf)]) as model:
        env["AI_SYSADMIN_LLM__URL"] = model.url
        done = run([str(BIN), "chat"], env, stdin="first?\nwhat does app.conf set?\n")
    said = done.stdout + done.stderr
    assert SECRET not in said and TOKEN not in said, said
    [error] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "bad request: password=[redacted]" in error
    assert "app.conf sets db_password=[redacted] and listens on 8080" in done.stdout
    assert done.returncode == 2  # the first question got no answer


def test_approve_discuss_masks_the_answer(env, tmp_path: Path) -> None:
    from ai_sysadmin.config import Settings
    from ai_sysadmin.executor import Executor
    from ai_sysadmin.hosts.transport import LocalTransport
    from ai_sysadmin.store import Database, IncidentStore

    conf = _app_conf(tmp_path)
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state")
    store = IncidentStore(Database(settings.db_path))
    action = asyncio.run(Executor(settings, store, {"h": LocalTransport("h")}).propose(
        "h", "restart_unit", {"unit": "app.service"}))
    with ScriptedModel(_repeating(conf)) as model:
        env["AI_SYSADMIN_LLM__URL"] = model.url
        done = run([str(BIN), "approve", "discuss", str(action.id), "-m", "why restart?"],
                   env)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr and TOKEN not in done.stdout + done.stderr
    assert "app.conf sets db_password=[redacted] and listens on 8080" in done.stdout


def test_a_key_a_proxy_quotes_at_the_cut_of_its_error_is_masked_whole(env) -> None:
    """The server's error is quoted to 200 characters: masked before the cut. Cut first, a
    key split by the cut no longer matched and its first ten characters were shown."""
    words = "the upstream refused key " + "." * 165 + TOKEN + " as revoked"
    assert words.index(TOKEN) == 190  # 10 characters of it before the cut
    with ScriptedModel([http_error(400, json.dumps({"error": words}))]) as model:
        env["AI_SYSADMIN_LLM__URL"] = model.url
        done = run([str(BIN), "ask", "why?"], env)
    assert done.returncode != 0
    assert "the upstream refused key" in done.stderr
    assert TOKEN[:10] not in done.stdout + done.stderr, done.stderr
