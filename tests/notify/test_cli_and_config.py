"""`notify status`, the `notify` settings, and what stays unimported and unread: Apprise is not
loaded by `check` or `--help`, and its URL file is one of the assistant's own secrets."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ai_sysadmin.agent.context import ToolContext
from ai_sysadmin.agent.tools import REGISTRY
from ai_sysadmin.config import load_settings
from ai_sysadmin.errors import ConfigError
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.notify import Message, Notifier
from ai_sysadmin.store import Database, IncidentStore
from tests.notify.conftest import APPRISE_PASSWORD, failed, make_settings, run_notifier


def test_status_shows_pending_failed_and_delivered(tmp_path, gotify, endpoint, cli,
                                                   monkeypatch) -> None:
    gotify.then(500)
    endpoint.then(500, 500)
    settings = make_settings(tmp_path, gotify, endpoint, retry_backoff_seconds=30)
    store = IncidentStore(Database(settings.db_path))
    store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
    notifier = Notifier(settings, store.db)
    # the daemon's first attempt fails on both channels: each waits 30 s for its next one
    run_notifier(notifier, lambda: [r["attempts"] for r in
                                    notifier.outbox.deliveries(("pending",))] == [1, 1])
    # a message by hand: Gotify takes it, Apprise answers 500 (never retried)
    asyncio.run(notifier.send_now(Message("[hal] by hand", "m", 5)))
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\nstate_dir = "{settings.state_dir}"\n'
                      f'gotify_url = "{gotify.url}"\ngotify_token_file = '
                      f'"{settings.gotify_token_file}"\n')
    monkeypatch.setenv("AI_SYSADMIN_CONFIG", str(config))
    monkeypatch.delenv("AI_SYSADMIN_STATE_DIR")
    code, out, _ = cli("notify", "status", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["configured"] == [f"gotify {gotify.url}"]
    assert shown["channels"]["gotify"] == {"pending": 1, "delivered": 1}
    apprise = next(c for c in shown["channels"] if c.startswith("apprise:"))
    assert shown["channels"][apprise] == {"pending": 1, "failed": 1}
    (waiting,) = [r for r in shown["pending"] if r["channel"] == "gotify"]
    assert waiting["attempts"] == 1 and "HTTP 500" in waiting["last_error"]
    code, text, _ = cli("notify", "status")
    assert "gotify: 1 pending, 1 delivered, 0 failed" in text
    assert f"{apprise}: 1 pending, 0 delivered, 1 failed" in text
    assert APPRISE_PASSWORD not in text + out


def test_a_bad_priority_is_a_usage_error(cli) -> None:
    code, _, err = cli("notify", "t", "m", "urgent")
    assert code == 2 and "low, normal, high or a number 0-10" in err


def test_check_and_help_load_neither_apprise_nor_httpx() -> None:
    probe = ("import sys; from ai_sysadmin.cli.main import main; main({args}); "
             "print(sorted(m for m in ('apprise', 'httpx', 'requests') if m in sys.modules))")
    for args in (["--help"], ["notify", "--help"], ["check", "--no-store", "--json"]):
        done = subprocess.run([sys.executable, "-c", probe.format(args=args)],
                              capture_output=True, text=True, timeout=120)
        assert done.stdout.strip().splitlines()[-1] == "[]", (args, done.stderr)


def test_gotify_url_needs_its_token_file_and_never_carries_the_token(tmp_path, store) -> None:
    config = tmp_path / "c.toml"
    config.write_text('gotify_url = "https://push.example/?token=Tok-inline-1234"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {})
    assert "without a query: the app token goes in gotify_token_file" in str(caught.value)
    assert "Tok-inline-1234" not in str(caught.value)
    config.write_text('gotify_url = "https://push.example"\n')
    settings = load_settings(config, {}).settings  # `config show` still reads it
    with pytest.raises(ConfigError, match="gotify_token_file': gotify_url is set"):
        _ = Notifier(settings, store.db).channels


def test_a_token_file_that_cannot_be_read_is_said_at_the_start(tmp_path, store,
                                                                caplog) -> None:
    config = tmp_path / "c.toml"
    missing = tmp_path / "missing-token"
    config.write_text(f'gotify_url = "https://push.example"\ngotify_token_file = "{missing}"\n')
    settings = load_settings(config, {}).settings
    with caplog.at_level("ERROR", logger="ai_sysadmin"):
        channels = Notifier(settings, store.db).channels
    assert [c.name for c in channels] == ["gotify"]  # monitoring goes on; sends will retry
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.getMessage().startswith(
        f"gotify_token_file {missing}: No such file or directory: notifications to Gotify wait")


def test_the_apprise_url_file_is_never_read_for_the_model(tmp_path: Path, settings) -> None:
    urls = tmp_path / "apprise.urls"
    urls.write_text(f"json://u:{APPRISE_PASSWORD}@127.0.0.1:1/\n")
    settings = settings.model_copy(update={"notify": settings.notify.model_copy(
        update={"apprise_urls_file": urls})})
    ctx = ToolContext(settings, {"testhost": LocalTransport("testhost")}, "testhost", None)
    result = asyncio.run(REGISTRY.call("read_file", {"path": str(urls)}, ctx))
    assert result.status == "refused" and "own secrets" in result.output
    assert APPRISE_PASSWORD not in result.output


def test_an_empty_message_is_a_usage_error(cli) -> None:
    code, _, err = cli("notify", "send", "backup", " ")
    assert code == 2 and "the message is empty" in err


def test_a_credential_file_every_user_can_read_is_said_at_the_command_line(
        tmp_path, endpoint, cli, monkeypatch) -> None:
    # the daemon logs it; a person who just wrote the file and tries `notify` reads no log
    settings = make_settings(tmp_path, endpoint=endpoint)
    urls = settings.notify.apprise_urls_file
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\nstate_dir = "{settings.state_dir}"\n'
                      f'[notify]\napprise_urls_file = "{urls}"\n')
    monkeypatch.setenv("AI_SYSADMIN_CONFIG", str(config))
    monkeypatch.delenv("AI_SYSADMIN_STATE_DIR")
    note = (f"note: notify.apprise_urls_file ({urls}) is readable by every user: "
            "chmod o-r it\n")
    code, _, err = cli("notify", "send", "backup done", "all 3 volumes", "low")
    assert code == 0 and err == ""
    urls.chmod(0o644)
    code, out, err = cli("notify", "send", "backup done", "all 3 volumes", "low")
    assert code == 0 and "accepted" in out and err == note  # said, not refused
    code, _, err = cli("notify", "status")
    assert code == 0 and err == note
    assert APPRISE_PASSWORD not in err
