"""An Apprise channel's name keys its stored deliveries and shows in logs and `notify status`:
it holds no part of a credential, so rotating the token in a URL keeps the name and what was
queued goes out with the new token. A pending delivery whose channel is gone from the config is
handed to the channel that replaced it, or given up saying so: never pending for good."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.notify import Notifier
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
            run_notifier(rotated, lambda: gotify.accepted)
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
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                        notify={"apprise_urls_file": urls, "retry_backoff_seconds": 0.05})
    db = IncidentStore(Database(settings.db_path)).db
    notifier = Notifier(settings, db)
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
                                         f"apprise:json://127.0.0.1:{endpoint.port}/hook"]
