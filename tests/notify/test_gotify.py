"""Gotify, through a server that keeps its message API's contract: the path, the token in the
``X-Gotify-Key`` header (never in the URL), the JSON body, 200, 401, 500 and a hang."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ai_sysadmin.notify import Notifier
from ai_sysadmin.store import Database, IncidentStore
from tests.notify.conftest import TOKEN, failed, make_settings, run_notifier, secret_file
from tests.notify.servers import GotifyServer


def config(tmp_path: Path, gotify: GotifyServer, token: str = TOKEN, **notify: object) -> Path:
    lines = ['ai_name = "hal"', f'gotify_url = "{gotify.url}"',
             f'gotify_token_file = "{secret_file(tmp_path / "token", token)}"', "[notify]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in notify.items()]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("argv0", "args", "priority"), [
    ("ai-sysadmin", ["notify", "backup done", "all 3 volumes", "high"], 8),
    ("/usr/local/bin/hal-notify", ["backup done", "all 3 volumes"], 5),
    ("hal-notify", ["send", "backup done", "all 3 volumes", "2"], 2),
])
def test_notify_sends_as_the_api_documents(tmp_path, gotify, cli, monkeypatch, argv0, args,
                                           priority) -> None:
    monkeypatch.setenv("AI_SYSADMIN_CONFIG", str(config(tmp_path, gotify)))
    code, out, err = cli(*args, argv0=argv0)
    assert (code, err) == (0, "")
    assert out == "gotify: accepted\n"
    (request,) = gotify.requests
    assert (request.method, request.path) == ("POST", "/message")
    assert request.headers["x-gotify-key"] == TOKEN
    assert request.json() == {"title": "[hal] backup done", "message": "all 3 volumes",
                              "priority": priority}


@pytest.mark.parametrize(("argv0", "args"), [
    ("ai-sysadmin", ["notify", "backup done", "all 3 volumes", "--json"]),
    ("ai-sysadmin", ["notify", "--json", "backup done", "all 3 volumes"]),
    ("ai-sysadmin", ["--json", "notify", "backup done", "all 3 volumes"]),
    ("hal-notify", ["backup done", "all 3 volumes", "--json"]),
    ("hal-notify", ["--json", "backup done", "all 3 volumes"]),
])
def test_the_shortcut_with_json_sends_as_notify_send_does(tmp_path, gotify, cli, monkeypatch,
                                                          argv0, args) -> None:
    # `notify TITLE MESSAGE --json` was "No such option: --json", exit 2, nothing sent
    monkeypatch.setenv("AI_SYSADMIN_CONFIG", str(config(tmp_path, gotify)))
    code, out, err = cli(*args, argv0=argv0)
    assert (code, err) == (0, "")
    assert json.loads(out) == {"gotify": {"accepted": True, "error": None}}
    (request,) = gotify.requests
    assert request.json() == {"title": "[hal] backup done", "message": "all 3 volumes",
                              "priority": 5}


def test_a_wrong_token_is_refused_and_said_without_any_token(tmp_path, gotify, cli,
                                                             monkeypatch) -> None:
    wrong = "WrongTok-0000aaaa"
    monkeypatch.setenv("AI_SYSADMIN_CONFIG", str(config(tmp_path, gotify, token=wrong)))
    code, out, _ = cli("notify", "t", "m")
    assert code == 1
    assert "Gotify refused the app token (HTTP 401): check gotify_token_file" in out
    code, status, _ = cli("notify", "status", "--json")
    (row,) = json.loads(status)["failed"]
    assert row["channel"] == "gotify" and "HTTP 401" in row["last_error"]
    assert wrong not in out + status and TOKEN not in out + status


def test_a_500_is_retried_with_growing_waits_until_delivered(tmp_path, gotify) -> None:
    gotify.then(500, 500)
    settings = make_settings(tmp_path, gotify, retry_backoff_seconds=0.3)
    store = IncidentStore(Database(settings.db_path))
    store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
    notifier = Notifier(settings, store.db)
    run_notifier(notifier, lambda: notifier.outbox.deliveries(("delivered",)))
    first, second, third = (r.at for r in gotify.requests)
    assert 0.3 <= second - first < 0.3 + 0.5  # the first wait ...
    assert 0.6 <= third - second < 0.6 + 0.5  # ... doubles
    (delivered,) = notifier.outbox.deliveries(("delivered",))
    assert delivered["attempts"] == 3
    assert gotify.titles() == ["[hal] web1: nginx.service has failed"]


def _two_failed(settings) -> Notifier:
    store = IncidentStore(Database(settings.db_path))
    store.record_check("web1", [failed("web1", "db.service")], {"failed_unit"})
    store.record_check("web2", [failed("web2", "nginx.service")], {"failed_unit"})
    return Notifier(settings, store.db)


def test_what_waits_out_a_long_outage_goes_in_order_once_the_channel_is_back(
        tmp_path, gotify) -> None:
    """Gotify down for more tries than max_attempts: the oldest message spent its attempts
    alone and was given up, and the one behind it went once Gotify was back: the person was
    told of web2 and never of web1 before it. While the channel takes none after it, a
    message that spent its attempts waits on, first in line."""
    gotify.then(*[500] * 1000)
    settings = make_settings(tmp_path, gotify, retry_backoff_seconds=0.02, max_attempts=2)
    notifier = _two_failed(settings)

    def long_out() -> bool:
        rows = notifier.outbox.deliveries(("pending",))
        return len(rows) == 2 and max(r["attempts"] for r in rows) >= 4

    run_notifier(notifier, long_out)
    tried = [r.json()["title"] for r in gotify.requests]
    with gotify._lock:  # Gotify is back
        gotify.script.clear()
    run_notifier(notifier, lambda: len(notifier.outbox.deliveries(("delivered",))) == 2)
    assert gotify.titles() == ["[hal] web1: db.service has failed",
                               "[hal] web2: nginx.service has failed"]
    assert not notifier.outbox.deliveries(("failed",))
    # past its attempts, each try of a down channel sent the first and one more (which
    # spent nothing), never the whole queue
    assert tried[:2] == ["[hal] web1: db.service has failed"] * 2
    assert tried[2:6] == ["[hal] web2: nginx.service has failed",
                          "[hal] web1: db.service has failed"] * 2


def test_a_message_the_server_cannot_take_is_given_up_once_a_later_one_goes(
        tmp_path, gotify) -> None:
    """A message that fails on every try while the channel takes the next one is the
    message's failure: given up at max_attempts, holding up the queue no longer."""
    gotify.then(500, 500)
    settings = make_settings(tmp_path, gotify, retry_backoff_seconds=0.05, max_attempts=2)
    notifier = _two_failed(settings)
    (row,) = run_notifier(notifier, lambda: notifier.outbox.deliveries(("failed",)))
    assert row["title"] == "[hal] web1: db.service has failed" and row["attempts"] == 2
    assert "Gotify answered HTTP 500" in row["last_error"]
    assert gotify.titles() == ["[hal] web2: nginx.service has failed"]


def test_a_200_that_is_not_gotifys_answer_is_not_taken_for_a_delivery(tmp_path, gotify,
                                                                        cli, monkeypatch) -> None:
    """Something else answering at gotify_url (a proxy's login page, a web site) took the
    message with 200 and it counted as delivered: it reached nobody, and nothing was kept."""
    gotify.then("portal", "portal")
    monkeypatch.setenv("AI_SYSADMIN_CONFIG", str(config(tmp_path, gotify)))
    code, out, _ = cli("notify", "backup done", "all 3 volumes")
    said = (f"gotify: not accepted: {gotify.url} answered HTTP 200, but not as Gotify does "
            "(text/html: '<html><head><title>Sign in</title></head><body>Sign in to "
            "continue</body></html>'): is gotify_url the Gotify server?\n")
    assert (code, out) == (1, said)
    # the daemon keeps what it could not deliver so, and delivers it once Gotify answers
    settings = make_settings(tmp_path, gotify, retry_backoff_seconds=0.05)
    store = IncidentStore(Database(settings.db_path))
    store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
    notifier = Notifier(settings, store.db)
    run_notifier(notifier, lambda: notifier.outbox.deliveries(("delivered",)))
    assert gotify.titles() == ["[hal] web1: nginx.service has failed"]
    assert [r.path for r in gotify.requests] == ["/message"] * 3


def test_a_connection_closed_without_an_answer_says_so(tmp_path, gotify, cli,
                                                       monkeypatch) -> None:
    gotify.then("close")
    monkeypatch.setenv("AI_SYSADMIN_CONFIG", str(config(tmp_path, gotify)))
    code, out, _ = cli("notify", "backup done", "all 3 volumes")
    # it was 'cannot reach Gotify at URL: RemoteProtocolError', and nothing more
    assert (code, out) == (1, f"gotify: not accepted: cannot reach Gotify at {gotify.url}: "
                              "the connection was closed without an answer "
                              "(RemoteProtocolError)\n")
    code, shown, _ = cli("notify", "status", "--json")
    (row,) = json.loads(shown)["failed"]
    assert row["last_error"] == out.removeprefix("gotify: not accepted: ").rstrip("\n")


def test_the_token_a_proxy_quotes_at_the_cut_of_its_answer_is_hidden_whole(
        tmp_path, gotify, cli, monkeypatch) -> None:
    """A far end's answer is cut to 200 characters in the error: the app token it quotes is
    hidden before the cut. Cut first, a token split by the cut was no longer the token and its
    first ten characters were said and stored."""
    page = "upstream refused the request with key " + "." * 152 + TOKEN + " (try again)"
    assert page.index(TOKEN) == 190
    gotify.then((502, page))
    monkeypatch.setenv("AI_SYSADMIN_CONFIG", str(config(tmp_path, gotify)))
    code, out, _ = cli("notify", "t", "m")
    assert code == 1 and "Gotify answered HTTP 502: upstream refused" in out
    code, status, _ = cli("notify", "status", "--json")
    assert TOKEN[:10] not in out + status and "****" in out


def test_what_a_far_end_answers_cannot_steer_the_terminal(tmp_path, gotify, cli,
                                                          monkeypatch) -> None:
    """A proxy's error page is shown as the delivery's error, when sending and in `notify
    status`: an escape in it (a clipboard write, a cleared screen, a link) is not printed."""
    gotify.then((502, "bad gateway\x1b]52;c;cm0gLXJmIH4K\x07\x1b[2J\x9b2J \u202eyrter ok\x08\x08"
                  f"OK {TOKEN[:6]}\x00{TOKEN[6:]}"))
    monkeypatch.setenv("AI_SYSADMIN_CONFIG", str(config(tmp_path, gotify)))
    code, out, err = cli("notify", "t", "m")
    assert code == 1 and "Gotify answered HTTP 502: bad gateway" in out
    _, status, _ = cli("notify", "status")
    _, as_json, _ = cli("notify", "status", "--json")
    (row,) = json.loads(as_json)["failed"]
    for shown in (out + err, status, row["last_error"]):
        assert not any(c in shown for c in "\x1b\x07\x9b\u202e\x08\x00"), ascii(shown)
        # the app token it quotes, split by a character that shows as nothing, is hidden
        assert TOKEN[6:] not in shown and "****" in shown
