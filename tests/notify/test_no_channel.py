"""A daemon run before any channel is configured (installed and started first, Gotify added
later: a common order): what it noted waits for a channel, instead of being "told" to nobody.
Once one is configured, what is still true is told (an incident still open pages), what is
over is not, and an all-clear never claims a page nobody got."""

from __future__ import annotations

import json
from pathlib import Path

from ai_sysadmin.notify import Notifier
from ai_sysadmin.store import ActionStore, Database, IncidentStore
from tests.notify.conftest import failed, make_settings, run_notifier
from tests.notify.servers import GotifyServer, JsonEndpoint


def _states(store: IncidentStore) -> dict[str, tuple[str, str]]:
    """Each event's kind and subject: its state and note."""
    rows = store.db.conn.execute("SELECT kind, facts, state, note FROM notify_events")
    return {f"{r['kind']} {json.loads(r['facts'])['subject']}": (r["state"], r["note"])
            for r in rows}


def _quiet(store: IncidentStore) -> bool:
    """Nothing waits to be dispatched nor delivered."""
    return store.db.conn.execute(
        "SELECT 1 FROM notify_events WHERE state IN ('new','repeat','storm') UNION ALL "
        "SELECT 1 FROM notify_deliveries WHERE state='pending'").fetchone() is None


def test_what_waited_for_a_channel_is_told_once_one_is_configured(
        tmp_path: Path, gotify: GotifyServer, cli, monkeypatch) -> None:
    alone = make_settings(tmp_path)
    store = IncidentStore(Database(alone.db_path))
    store.record_check("web1", [failed("web1", "nginx.service"),
                                failed("web1", "php-fpm.service")], {"failed_unit"})
    store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
    # no channel: what is over is settled as ever, what is still true waits for a channel
    notifier = Notifier(alone, store.db)
    run_notifier(notifier, lambda: _states(store)["opened php-fpm.service"][0] == "suppressed")
    assert _states(store)["opened nginx.service"] == ("new", "")
    assert notifier.outbox.messages() == []
    monkeypatch.setenv("AI_SYSADMIN_STATE_DIR", str(alone.state_dir))
    code, out, _ = cli("notify", "status")
    assert code == 0 and ("events not sent yet: 1 new (waiting for a channel: set gotify_url "
                          "and gotify_token_file, or notify.apprise_urls_file; what is still "
                          "true then is sent)") in out

    # Gotify configured, the daemon restarted: the incident still open is told
    with_gotify = make_settings(tmp_path, gotify)
    notifier = Notifier(with_gotify, store.db)
    run_notifier(notifier, lambda: gotify.accepted and _quiet(store))
    assert gotify.titles() == ["[hal] web1: nginx.service has failed"]
    # it clears: the all-clear of a page the person got
    store.record_check("web1", [], {"failed_unit"})
    run_notifier(notifier, lambda: len(gotify.accepted) == 2 and _quiet(store))
    assert gotify.titles()[1].startswith("[hal] web1: resolved: nginx.service has failed "
                                         "(was critical, paged ")


def test_a_fix_of_an_incident_nobody_was_told_of_does_not_wait_for_a_channel(
        tmp_path: Path, gotify: GotifyServer) -> None:
    """Kept, each fix made before a channel was configured, months of them maybe, would be
    a message of its own about a problem the person never heard of."""
    alone = make_settings(tmp_path)
    store = IncidentStore(Database(alone.db_path))
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    (incident,) = store.incidents()
    actions = ActionStore(store.db)
    action = actions.create(incident_id=incident.id, proposal_id=None, host="web1",
                            kind="restart_unit", params={"unit": "a.service"},
                            subject="a.service", risk="low", plan={}, outcome="execute",
                            reason="auto-safe", state="approved").id
    actions.claim(action, "executor")
    actions.move(action, "succeeded", "executor", "finding gone for 5 s")
    store.record_check("web1", [], {"failed_unit"})
    run_notifier(Notifier(alone, store.db), lambda: _quiet(store))
    assert _states(store)["fixed a.service"] == (
        "skipped", "no channel configured, and nobody was told of what it fixed")
    # Gotify configured: what is true now is told, not what was fixed before
    store.record_check("db1", [failed("db1", "pg.service")], {"failed_unit"})
    run_notifier(Notifier(make_settings(tmp_path, gotify), store.db),
                 lambda: gotify.accepted and _quiet(store))
    assert gotify.titles() == ["[hal] db1: pg.service has failed"]


def test_no_all_clear_for_a_page_no_channel_delivered(tmp_path: Path, gotify: GotifyServer,
                                                      endpoint: JsonEndpoint) -> None:
    """Gotify failed the page, then was taken out of the configuration (its deliveries given
    up): when the incident clears, a channel configured later does not hear "resolved ...
    paged N min ago" of a page nobody got."""
    gotify.then(500)
    with_gotify = make_settings(tmp_path, gotify, retry_backoff_seconds=600)
    store = IncidentStore(Database(with_gotify.db_path))
    store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
    notifier = Notifier(with_gotify, store.db)
    run_notifier(notifier, lambda: [r["attempts"] for r in
                                    notifier.outbox.deliveries(("pending",))] == [1])
    alone = make_settings(tmp_path)
    notifier = Notifier(alone, store.db)
    run_notifier(notifier, lambda: notifier.outbox.deliveries(("failed",)))
    store.record_check("web1", [], {"failed_unit"})
    # Apprise configured: something true now is told, and nothing of the page
    store.record_check("db1", [failed("db1", "pg.service")], {"failed_unit"})
    run_notifier(Notifier(make_settings(tmp_path, endpoint=endpoint), store.db),
                 lambda: endpoint.accepted and _quiet(store))
    assert [a["title"] for a in endpoint.accepted] == ["[hal] db1: pg.service has failed"]
