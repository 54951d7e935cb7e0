"""An Apprise channel's name keys its stored deliveries and shows in logs and `notify status`:
it holds no part of a credential, nor where on the server a message goes (an ntfy topic, which
anyone may read who knows it; a webhook's path), so rotating the token in a URL keeps the name
and what was queued goes out with the new token. A pending delivery whose channel is gone from
the config is handed to the channel that replaced it, or given up saying so: never pending for
good."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.notify import Notifier
from ai_sysadmin.notify.channels import apprise_channels
from ai_sysadmin.store import Database, IncidentStore
from tests.notify.conftest import (
    APPRISE_PASSWORD,
    APPRISE_USER,
    apprise_url,
    failed,
    run_notifier,
    secret_file,
)
from tests.notify.servers import GotifyServer, JsonEndpoint

OLD = "OldRevokedTok1"
NEW = "ANewTokenZ9"


def _quick_notifier(tmp_path: Path, urls: Path) -> tuple[Settings, Database, Notifier]:
    """A notifier of these Apprise URLs that retries at once, and its database."""
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                        notify={"apprise_urls_file": urls, "retry_backoff_seconds": 0.05})
    db = IncidentStore(Database(settings.db_path)).db
    return settings, db, Notifier(settings, db)


def _status(cli, monkeypatch, tmp_path: Path, urls: Path, settings: Settings) -> str:
    config = tmp_path / "config.toml"
    config.write_text(f"state_dir = {json.dumps(str(settings.state_dir))}\n[notify]\n"
                      f"apprise_urls_file = {json.dumps(str(urls))}\n")
    monkeypatch.setenv("AI_SYSADMIN_CONFIG", str(config))
    code, shown, _ = cli("notify", "status", "--json")
    assert code == 0
    return shown


def _fragments(token: str) -> list[str]:
    """What Apprise's privacy form keeps of a token."""
    return [token, f"{token[0]}...{token[-1]}", f"...{token[-4:]}"]


@pytest.mark.timeout(60)
def test_a_rotated_token_in_an_apprise_url_delivers_what_was_queued(tmp_path, cli, monkeypatch,
                                                                    caplog) -> None:
    with GotifyServer(NEW) as gotify:
        urls = secret_file(tmp_path / "apprise.urls",
                           f"gotify://127.0.0.1:{gotify.port}/{OLD}\n")
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                            notify={"apprise_urls_file": urls, "retry_backoff_seconds": 0.05,
                                    "max_attempts": 50})
        store = IncidentStore(Database(settings.db_path))
        store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
        with caplog.at_level("INFO", logger="ai_sysadmin"):
            refused = Notifier(settings, store.db)
            run_notifier(refused, lambda: any(r["attempts"] >= 2 for r in
                                              refused.outbox.deliveries(("pending",))))
            secret_file(urls, f"gotify://127.0.0.1:{gotify.port}/{NEW}\n")  # rotated
            rotated = Notifier(settings, store.db)
            # until recorded, not merely accepted: a stop cuts a send off before its record
            run_notifier(rotated, lambda: rotated.outbox.deliveries(("delivered",)))
        assert gotify.titles() == ["[hal] web1: nginx.service has failed"]
        (delivered,) = rotated.outbox.deliveries(("delivered",))
        assert delivered["channel"] == f"apprise:gotify://127.0.0.1:{gotify.port}"
        status = _status(cli, monkeypatch, tmp_path, urls, settings)
        assert json.loads(status)["pending"] == []
        for piece in _fragments(OLD) + _fragments(NEW):
            assert piece not in caplog.text and piece not in status


@pytest.mark.timeout(60)
def test_deliveries_of_a_channel_no_longer_configured_are_handed_over_or_given_up(
        tmp_path, endpoint: JsonEndpoint, cli, monkeypatch) -> None:
    urls = secret_file(tmp_path / "apprise.urls", f"{apprise_url(endpoint)}\n")
    settings, db, notifier = _quick_notifier(tmp_path, urls)
    # queued by an earlier version, which named channels by Apprise's privacy form (the first
    # and last character of a secret), and for a channel since taken out of the file
    earlier = f"apprise:json://{APPRISE_USER}:****@127.0.0.1:{endpoint.port}/hook"
    removed = "apprise:gotify://127.0.0.1:9/G...x/"
    with db.transaction() as conn:
        notifier.outbox.add_message(conn, "opened", "[hal] queued before", "b", 8,
                                    [earlier, removed], time.time())

    def settled() -> bool:
        return not notifier.outbox.deliveries(("pending",))

    run_notifier(notifier, settled)
    assert endpoint.titles() == ["[hal] queued before"]
    (gone,) = notifier.outbox.deliveries(("failed",))
    assert gone["last_error"] == "channel no longer configured"
    status = _status(cli, monkeypatch, tmp_path, urls, settings)
    shown = json.loads(status)
    assert shown["pending"] == []
    for piece in ("G...x", "****", APPRISE_PASSWORD):
        assert piece not in status
    assert sorted(shown["channels"]) == ["apprise:gotify://127.0.0.1:9",
                                         f"apprise:json://127.0.0.1:{endpoint.port}"]


def test_no_ntfy_topic_nor_webhook_path_is_in_a_channel_name(tmp_path) -> None:
    """Built only: nothing is sent (these URLs name servers on the internet)."""
    urls = secret_file(tmp_path / "apprise.urls", "\n".join([
        "ntfys://ntfy.sh/SecretTopicA1", "ntfys://ntfy.sh/SecretTopicB2",
        "ntfy://CloudTopicC3",  # ntfy.sh's topic, in the place of a host
        "ntfys://tk_TokenE5xyz@ntfy.example.net:8443/SecretTopicF6",
        "json://127.0.0.1:9/api/webhook/WebhookSecretD4", "gotify://127.0.0.1:9/GotifyTokG7",
    ]) + "\n")
    channels = apprise_channels(urls, 5.0)
    assert [c.name for c in channels] == [
        "apprise:ntfys://ntfy.sh", "apprise:ntfys://ntfy.sh#2", "apprise:ntfys://",
        "apprise:ntfys://ntfy.example.net:8443", "apprise:json://127.0.0.1:9",
        "apprise:gotify://127.0.0.1:9"]
    # a restart names them alike: what each queued is its own
    assert [c.name for c in apprise_channels(urls, 5.0)] == [c.name for c in channels]
    shown = " ".join(c.name + c.shown for c in channels)
    for secret in ("SecretTopic", "CloudTopic", "TokenE5", "WebhookSecret", "GotifyTok"):
        assert secret not in shown


@pytest.mark.timeout(60)
def test_what_was_queued_under_a_name_with_its_topic_goes_to_that_topic(
        tmp_path, endpoint: JsonEndpoint, cli, monkeypatch, caplog) -> None:
    """Two topics on one ntfy server (ours, on 127.0.0.1); the previous version named each
    channel with its topic: a message it queued reaches the topic it was meant for, and what it
    delivered is kept under the channel's new name (the topic leaves the database)."""
    endpoint.then(500)
    server = f"ntfy://{APPRISE_USER}:{APPRISE_PASSWORD}@127.0.0.1:{endpoint.port}"
    urls = secret_file(tmp_path / "apprise.urls", f"{server}/TopicAlpha1\n{server}/TopicBravo2\n")
    settings, db, notifier = _quick_notifier(tmp_path, urls)
    previous = f"apprise:ntfy://127.0.0.1:{endpoint.port}/Topic"
    with db.transaction() as conn:  # one it delivered, one it queued
        sent = notifier.outbox.add_message(conn, "opened", "[hal] sent before", "b", 8,
                                           [previous + "Alpha1"], time.time())
        notifier.outbox.add_message(conn, "opened", "[hal] queued before", "b", 8,
                                    [previous + "Bravo2"], time.time())
    notifier.outbox.delivered(sent, previous + "Alpha1")
    with caplog.at_level("INFO", logger="ai_sysadmin"):
        run_notifier(notifier, lambda: len(notifier.outbox.deliveries(("delivered",))) == 2)
    # ours: Apprise's own records reach no log of the daemon (pytest's capture reads them)
    said = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("ai_sysadmin"))
    assert [(a["topic"], a["title"]) for a in endpoint.accepted] == [
        ("TopicBravo2", "[hal] queued before")]
    delivered = {(r["title"], r["channel"], r["attempts"])
                 for r in notifier.outbox.deliveries(("delivered",))}
    assert delivered == {("[hal] sent before", f"apprise:ntfy://127.0.0.1:{endpoint.port}", 1),
                         ("[hal] queued before", f"apprise:ntfy://127.0.0.1:{endpoint.port}#2", 2)}
    status = _status(cli, monkeypatch, tmp_path, urls, settings)
    dump = "\n".join(sqlite3.connect(settings.db_path).iterdump())
    for topic in ("TopicAlpha1", "TopicBravo2"):
        assert topic not in said and topic not in status and topic not in dump
    assert "did not accept it" in said  # the failed attempt was said, its reason scrubbed
