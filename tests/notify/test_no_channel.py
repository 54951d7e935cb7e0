"""A daemon run before any channel is configured (installed and started first, Gotify added
later: a common order): what it noted waits for a channel, instead of being "told" to nobody.
Once one is configured, what is still true is told (an incident still open pages), what is
over is not, and an all-clear never claims a page nobody got."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ai_sysadmin.monitor.findings import Finding, Severity
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


def _disk(host: str, critical: bool) -> Finding:
    return Finding(host, "disk_space", "/", Severity.CRITICAL if critical else Severity.WARNING,
                   f"/ is {97 if critical else 91}% full", ("/dev/sda1 on /",))


def _waiting(store: IncidentStore) -> list[tuple[str, str]]:
    """The kind and host of each event that waits for a channel."""
    return [(r["kind"], r["host"]) for r in store.db.conn.execute(
        "SELECT kind, host FROM notify_events WHERE state='new' ORDER BY id")]


def _newest(store: IncidentStore) -> int:
    return int(store.db.conn.execute("SELECT MAX(id) FROM notify_events").fetchone()[0])


def test_a_flapping_incident_leaves_one_event_waiting_and_the_channel_hears_it_once(
        tmp_path: Path, gotify: GotifyServer) -> None:
    """A disk flapping between warning and critical for a month before Gotify was added
    left thousands of events waiting, each read every second; only the latest of each
    thing is news to a channel configured later."""
    alone = make_settings(tmp_path)
    store = IncidentStore(Database(alone.db_path))
    dispatcher = Notifier(alone, store.db).dispatcher
    for flip in range(40):  # the daemon's checks, its dispatch passes between them
        for host in ("web1", "web2"):
            store.record_check(host, [_disk(host, flip % 2 == 1)], {"disk_space"})
        dispatcher.dispatch()
    assert _waiting(store) == [("worse", "web1"), ("worse", "web2")]
    # Gotify configured: each disk is told once, as it is now
    notifier = Notifier(make_settings(tmp_path, gotify), store.db)
    run_notifier(notifier, lambda: len(gotify.accepted) == 2 and _quiet(store))
    assert sorted(gotify.titles()) == [f"[hal] {host}: / is 97% full (now critical)"
                                       for host in ("web1", "web2")]


def test_a_pass_with_nothing_new_reads_nothing_of_what_waits(tmp_path: Path) -> None:
    alone = make_settings(tmp_path)
    store = IncidentStore(Database(alone.db_path))
    dispatcher = Notifier(alone, store.db).dispatcher
    hosts = [f"web{n}" for n in range(5)]
    for host in hosts:
        store.record_check(host, [_disk(host, True)], {"disk_space"})
    dispatcher.dispatch()
    assert len(_waiting(store)) == 5
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    try:
        for _ in range(3):  # the daemon's passes, one a second
            statements.clear()
            dispatcher.dispatch()
            # one look, whether anything was written since: none of what waits is read
            assert len(statements) <= 1, statements
        # something new: looked at, and what it overtook no longer waits
        store.record_check("web0", [_disk("web0", False)], {"disk_space"})
        store.record_check("web0", [_disk("web0", True)], {"disk_space"})
        dispatcher.dispatch()
    finally:
        store.db.conn.set_trace_callback(None)
    assert _waiting(store) == [*(("opened", h) for h in hosts[1:]), ("worse", "web0")]


def test_what_waited_a_month_for_a_channel_is_pruned_once_it_is_no_news(tmp_path: Path) -> None:
    store = IncidentStore(Database(make_settings(tmp_path).db_path))
    notifier = Notifier(make_settings(tmp_path), store.db)
    store.record_check("web1", [_disk("web1", True)], {"disk_space"})
    store.record_check("web1", [], {"disk_space"})  # cleared: nobody was paged, no event
    store.record_check("web2", [_disk("web2", True)], {"disk_space"})
    newest = _newest(store)
    notifier.outbox.prune(time.time() + 1)  # a month later
    # the incident still open waits on; the one long over is no news
    assert _waiting(store) == [("opened", "web2")]
    store.record_check("web2", [], {"disk_space"})
    notifier.outbox.prune(time.time() + 1)
    # a new event is told by its id alone: none is used twice
    store.record_check("web3", [_disk("web3", True)], {"disk_space"})
    assert _newest(store) > newest
    notifier.dispatcher.dispatch()
    assert _waiting(store) == [("opened", "web3")]
