"""Apprise itself, sending to a ``json://`` endpoint of ours; its URLs come from a file and are
shown only in Apprise's privacy form."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ai_sysadmin.errors import ConfigError
from ai_sysadmin.notify import Message, Notifier
from ai_sysadmin.store import Database, IncidentStore
from tests.conftest import BIN, run_program
from tests.notify.conftest import (
    APPRISE_PASSWORD,
    failed,
    make_settings,
    run_notifier,
    secret_file,
)
from tests.notify.servers import MisskeyServer


def test_apprise_delivers_with_the_credentials_of_its_url(tmp_path, endpoint) -> None:
    settings = make_settings(tmp_path, endpoint=endpoint)
    notifier = Notifier(settings, IncidentStore(Database(settings.db_path)).db)
    results = asyncio.run(notifier.send_now(Message("[hal] t", "body line", 8)))
    name = f"apprise:json://127.0.0.1:{endpoint.port}"  # no user, password nor path
    assert results == {name: None}
    (request,) = endpoint.requests
    assert request.path == "/hook"
    body = request.json()
    assert (body["title"], body["message"], body["type"]) == ("[hal] t", "body line", "failure")


def test_a_failing_endpoint_is_retried_and_its_reason_kept(tmp_path, endpoint) -> None:
    endpoint.then(500)
    settings = make_settings(tmp_path, endpoint=endpoint, retry_backoff_seconds=0.1)
    store = IncidentStore(Database(settings.db_path))
    store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
    notifier = Notifier(settings, store.db)
    run_notifier(notifier, lambda: notifier.outbox.deliveries(("delivered",)))
    (row,) = notifier.outbox.deliveries(("delivered",))
    assert row["attempts"] == 2
    assert endpoint.titles() == ["[hal] web1: nginx.service has failed"]
    with store.db.transaction() as conn:
        conn.execute("UPDATE notify_deliveries SET state='pending'")  # to read the error
    (again,) = notifier.outbox.deliveries(("pending",))
    assert again["last_error"] is None  # cleared once delivered


def test_the_reason_of_a_refusal_names_no_credential(tmp_path, endpoint) -> None:
    endpoint.then(500)
    settings = make_settings(tmp_path, endpoint=endpoint)
    notifier = Notifier(settings, IncidentStore(Database(settings.db_path)).db)
    (why,) = asyncio.run(notifier.send_now(Message("t", "m", 5))).values()
    assert why is not None and "error=500" in why
    assert APPRISE_PASSWORD not in why


def test_an_unknown_url_is_refused_by_its_line_never_shown(tmp_path, monkeypatch) -> None:
    urls = secret_file(tmp_path / "urls", "# mine\n\nnosuchservice://Sekr1t-value@host/x\n")
    settings = make_settings(tmp_path, apprise_urls_file=urls)
    with pytest.raises(ConfigError) as caught:
        _ = Notifier(settings, IncidentStore(Database(settings.db_path)).db).channels
    assert "line 3: not an Apprise URL" in str(caught.value) and str(urls) in str(caught.value)
    assert "Sekr1t" not in str(caught.value)
    config = tmp_path / "config.toml"
    config.write_text(f"[notify]\napprise_urls_file = {json.dumps(str(urls))}\n")
    monkeypatch.setenv("AI_SYSADMIN_CONFIG", str(config))
    done = run_program(str(BIN), "run")  # the daemon refuses to start, and says why
    assert done.returncode == 2 and "line 3" in done.stderr and "Sekr1t" not in done.stderr


def test_no_channel_configured(tmp_path: Path, cli, store) -> None:
    code, out, err = cli("notify", "t", "m")
    assert code == 1 and out == "" and "no channel configured" in err
    # what the daemon noted waits for a channel (a daemon running with none leaves it so:
    # test_no_channel), and status says which settings make one
    store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
    code, out, _ = cli("notify", "status")
    assert code == 0 and ("events not sent yet: 1 new (waiting for a channel: set gotify_url "
                          "and gotify_token_file, or notify.apprise_urls_file; what is still "
                          "true then is sent)") in out



LONG = "\n".join(f"web{n}: /var is 97% full ({n})" for n in range(40)) + "\nNext: hal-issues list"


@pytest.mark.parametrize("query", ["", "?overflow=upstream"])
def test_a_message_past_the_limit_apprise_knows_is_cut_not_refused(tmp_path, query) -> None:
    with MisskeyServer("MkTok-51c0aa9e") as misskey:
        urls = secret_file(tmp_path / "urls",
                           f"misskey://MkTok-51c0aa9e@127.0.0.1:{misskey.port}{query}\n")
        settings = make_settings(tmp_path, apprise_urls_file=urls)
        notifier = Notifier(settings, IncidentStore(Database(settings.db_path)).db)
        (why,) = asyncio.run(notifier.send_now(Message("[hal] 40 incidents", LONG, 8))).values()
        texts = [note["text"] for note in misskey.accepted]
    if query:  # a URL's own choice is kept: sent whole, the service refuses it
        assert why is not None and "error=400" in why and texts == []
        return
    assert why is None
    (text,) = texts  # one notification, within the service's limit, from its start
    assert len(text) <= MisskeyServer.LIMIT
    assert text.startswith("[hal] 40 incidents\r\nweb0: /var is 97% full (0)\nweb1: ")


@pytest.mark.parametrize(("make", "why"), [
    (lambda path: None, "No such file or directory"),
    (lambda path: (path.write_bytes(b"json://u:p\xe9@127.0.0.1:1/\n"), path.chmod(0o600)),
     "'utf-8' codec can't "
     "decode byte 0xe9 in position 10: invalid continuation byte"),
])
def test_status_says_why_the_apprise_url_file_cannot_be_read(tmp_path: Path, cli,
                                                             monkeypatch, make, why) -> None:
    """A daemon refuses to start on it, and one running sends to what it read at its start:
    `notify status` said nothing of it (while `notify` did)."""
    urls = tmp_path / "apprise.urls"
    make(urls)
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\n[notify]\napprise_urls_file = "{urls}"\n')
    monkeypatch.setenv("AI_SYSADMIN_CONFIG", str(config))
    line = f"notify.apprise_urls_file {urls}: cannot read: {why}"
    code, _, err = cli("notify", "status")
    assert (code, err) == (0, f"{line}\n")
    code, shown, _ = cli("notify", "status", "--json")
    assert json.loads(shown)["problems"] == [line]


@pytest.mark.parametrize("first", ["# ours\r\n", ""])
def test_a_urls_file_saved_with_a_bom_is_read_as_without(tmp_path, endpoint, first) -> None:
    # Notepad's and PowerShell's UTF-8 begin with a BOM: line 1 was refused as "not an
    # Apprise URL" (the daemon did not start), whether a comment or a good URL
    from tests.notify.conftest import apprise_url

    urls = tmp_path / "apprise.urls"
    urls.write_bytes(b"\xef\xbb\xbf" + f"{first}{apprise_url(endpoint)}\r\n".encode())
    urls.chmod(0o600)
    settings = make_settings(tmp_path, apprise_urls_file=urls)
    notifier = Notifier(settings, IncidentStore(Database(settings.db_path)).db)
    results = asyncio.run(notifier.send_now(Message("[hal] t", "body line", 8)))
    assert results == {f"apprise:json://127.0.0.1:{endpoint.port}": None}
    assert endpoint.titles() == ["[hal] t"]
