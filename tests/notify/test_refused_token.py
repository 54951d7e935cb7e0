"""A token file that gives a token Gotify refuses (revoked or rotated on the server, a typo):
like an unreadable token file, the channel cannot send anything, so the queued notifications
wait without spending attempts (critical alerts are not given up while the token is fixed),
the refusal is said once, and mending the file delivers everything, with no restart."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.notify import Notifier
from ai_sysadmin.store import Database, IncidentStore
from tests.notify.conftest import TOKEN, failed, make_settings, run_notifier, secret_file
from tests.notify.servers import GotifyServer, Request

REVOKED = "Revoked-77b1e0c4aa"


@pytest.mark.timeout(60)
def test_a_refused_token_waits_for_the_mended_file_and_is_said_once(tmp_path, gotify: GotifyServer,
                                                                   caplog) -> None:
    settings = make_settings(tmp_path, gotify, token=REVOKED, retry_backoff_seconds=0.05,
                             max_attempts=2)
    token_file = settings.gotify_token_file
    assert token_file is not None
    store = IncidentStore(Database(settings.db_path))
    store.record_check("web1", [failed("web1", "nginx.service"),
                                failed("web1", "postgresql.service")], {"failed_unit"})
    notifier = Notifier(settings, store.db)
    mended: list[float] = []

    def mend_after_many_retries() -> object:
        if not mended and gotify.requests and time.monotonic() - gotify.requests[0].at > 1.0:
            # twenty backoffs past max_attempts since Gotify first refused: all still wait
            assert notifier.outbox.deliveries(("failed",)) == []
            waiting = notifier.outbox.deliveries(("pending",))
            assert [r["attempts"] for r in waiting] == [0, 0], waiting
            assert gotify.accepted == []
            secret_file(token_file, TOKEN + "\n")
            mended.append(time.monotonic())
        return len(notifier.outbox.deliveries(("delivered",))) == 2

    with caplog.at_level("INFO", logger="ai_sysadmin"):
        run_notifier(notifier, mend_after_many_retries)
    assert sorted(gotify.titles()) == ["[hal] web1: nginx.service has failed",
                                       "[hal] web1: postgresql.service has failed"]
    # a refused token is not tried at every backoff: guards such as fail2ban ban for less
    refused = [r for r in gotify.requests if r.headers.get("x-gotify-key") == REVOKED]
    assert len(refused) == 1
    said = [r.getMessage() for r in caplog.records if r.levelname in ("ERROR", "WARNING")]
    assert said == [f"Gotify refused the app token (HTTP 401): check gotify_token_file "
                    f"{token_file}: notifications to Gotify wait in the outbox until it is "
                    "mended"]
    assert any("gives a token again" in r.getMessage() for r in caplog.records)
    assert REVOKED not in caplog.text and TOKEN not in caplog.text


@pytest.mark.timeout(60)
def test_status_shows_why_deliveries_wait_on_a_refused_token(tmp_path, gotify: GotifyServer,
                                                            cli, monkeypatch) -> None:
    settings = make_settings(tmp_path, gotify, token=REVOKED, retry_backoff_seconds=0.05,
                             max_attempts=1)
    store = IncidentStore(Database(settings.db_path))
    store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
    notifier = Notifier(settings, store.db)
    run_notifier(notifier, lambda: any(r["last_error"] for r in
                                       notifier.outbox.deliveries(("pending", "failed"))))
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\ngotify_url = "{gotify.url}"\n'
                      f"gotify_token_file = {json.dumps(str(settings.gotify_token_file))}\n"
                      f'state_dir = {json.dumps(str(settings.state_dir))}\n')
    monkeypatch.setenv("AI_SYSADMIN_CONFIG", str(config))
    code, shown, _ = cli("notify", "status", "--json")
    assert code == 0
    status = json.loads(shown)
    assert status["failed"] == []
    (row,) = status["pending"]
    assert row["attempts"] == 0 and "Gotify refused the app token (HTTP 401)" in row["last_error"]
    assert REVOKED not in shown


class Waf(GotifyServer):
    """Gotify behind a reverse proxy whose WAF answers 403 to a body quoting an attack."""

    def check(self, request: Request) -> tuple[int, dict[str, Any]] | None:
        if b"/etc/passwd" in request.body:
            return 403, {"error": "Forbidden"}
        return super().check(request)


@pytest.mark.timeout(60)
def test_a_403_fails_that_message_not_the_token(tmp_path, caplog) -> None:
    with Waf(TOKEN) as waf:
        settings = make_settings(tmp_path, waf, retry_backoff_seconds=0.05, max_attempts=2)
        store = IncidentStore(Database(settings.db_path))
        attack = Finding("web1", "failed_unit", "nginx.service", Severity.CRITICAL,
                         "nginx.service has failed",
                         ("203.0.113.9 - GET /cgi-bin/../../etc/passwd HTTP/1.1 400",))
        store.record_check("web1", [attack], {"failed_unit"})
        store.record_check("db1", [failed("db1", "postgresql.service")], {"failed_unit"})
        notifier = Notifier(settings, store.db)
        with caplog.at_level("INFO", logger="ai_sysadmin"):
            run_notifier(notifier, lambda: notifier.outbox.deliveries(("delivered",)) and
                         notifier.outbox.deliveries(("failed",)))
        assert waf.titles() == ["[hal] db1: postgresql.service has failed"]
    (given_up,) = notifier.outbox.deliveries(("failed",))
    assert given_up["title"] == "[hal] web1: nginx.service has failed"
    assert "Gotify answered HTTP 403" in given_up["last_error"]
    assert "refused the app token" not in caplog.text
