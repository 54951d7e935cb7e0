"""A message the far end refuses for good (HTTP 400: too long for the service, a body it will
not take) holds up no other: those behind it go at once, and it is given up, saying why, as
soon as the channel has taken a later one. A 4xx that says the channel is wrong (404: no such
endpoint) still pauses the channel, in order, as any failure does."""

from __future__ import annotations

import pytest

from ai_sysadmin.notify import Notifier
from ai_sysadmin.store import Database, IncidentStore
from tests.notify.conftest import failed, make_settings, run_notifier
from tests.notify.servers import GotifyServer, JsonEndpoint

NGINX = "[hal] web1: nginx.service has failed"
POSTGRES = "[hal] db1: postgresql.service has failed"


def queued(tmp_path, gotify: GotifyServer, *hosts: tuple[str, str],
           **notify: object) -> Notifier:
    settings = make_settings(tmp_path, gotify, **notify)
    store = IncidentStore(Database(settings.db_path))
    for host, unit in hosts:  # one check each: their messages go in this order
        store.record_check(host, [failed(host, unit)], {"failed_unit"})
    return Notifier(settings, store.db)


@pytest.mark.timeout(60)
def test_a_refused_message_is_given_up_and_the_next_goes_at_once(tmp_path, gotify) -> None:
    gotify.then(400)
    # a failure of the channel would pause it for two minutes
    notifier = queued(tmp_path, gotify, ("web1", "nginx.service"), ("db1", "postgresql.service"),
                      retry_backoff_seconds=120, max_attempts=5)
    run_notifier(notifier, lambda: notifier.outbox.deliveries(("failed",)) and
                 notifier.outbox.deliveries(("delivered",)))
    assert gotify.titles() == [POSTGRES]
    (refused,) = notifier.outbox.deliveries(("failed",))
    assert refused["title"] == NGINX and refused["attempts"] == 1
    assert "Gotify answered HTTP 400" in refused["last_error"]
    assert [r.json()["title"] for r in gotify.requests] == [NGINX, POSTGRES]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("status", [403, 413])
def test_a_refusal_with_a_big_page_is_the_message_s_not_the_channel_s(tmp_path, gotify,
                                                                      status) -> None:
    """A WAF or a proxy in front of Gotify refuses with a block page far over the 64 KiB
    read of an answer: judged by its status, it is that message's refusal; taken for a
    failure of the channel it held every later message behind it."""
    page = "<html><title>Request blocked by WAF</title>" + " " * (200 << 10) + "</html>"
    gotify.then((status, page))
    notifier = queued(tmp_path, gotify, ("web1", "nginx.service"), ("db1", "postgresql.service"),
                      retry_backoff_seconds=120, max_attempts=5)
    run_notifier(notifier, lambda: notifier.outbox.deliveries(("failed",)) and
                 notifier.outbox.deliveries(("delivered",)))
    assert gotify.titles() == [POSTGRES]
    (refused,) = notifier.outbox.deliveries(("failed",))
    assert refused["title"] == NGINX and refused["attempts"] == 1
    # what the page begins with says who refused it
    assert refused["last_error"].startswith(
        f"Gotify answered HTTP {status}: <html><title>Request blocked by WAF")


@pytest.mark.timeout(60)
def test_a_refused_message_waits_alone_and_later_ones_go(tmp_path, gotify) -> None:
    gotify.then(400)
    notifier = queued(tmp_path, gotify, ("web1", "nginx.service"),
                      retry_backoff_seconds=120, max_attempts=5)
    store = IncidentStore(notifier.outbox.db)

    def later_one_delivered() -> object:
        # refused, and nothing after it yet: it may be the channel's fault, so it is kept
        refused = [r for r in notifier.outbox.deliveries(("pending",)) if r["attempts"] == 1]
        if refused and not store.incidents(host="db1"):
            store.record_check("db1", [failed("db1", "postgresql.service")], {"failed_unit"})
        return notifier.outbox.deliveries(("delivered",))

    # one run: a restart would try the refused one again at once
    run_notifier(notifier, later_one_delivered)
    assert gotify.titles() == [POSTGRES]
    (waiting,) = notifier.outbox.deliveries(("pending",))
    assert waiting["title"] == NGINX and waiting["attempts"] == 1
    assert "Gotify answered HTTP 400" in waiting["last_error"]


@pytest.mark.timeout(60)
def test_a_404_holds_the_queue_in_order(tmp_path, gotify) -> None:
    gotify.then(404, 404)
    notifier = queued(tmp_path, gotify, ("web1", "nginx.service"), ("db1", "postgresql.service"),
                      retry_backoff_seconds=0.05, max_attempts=3)
    run_notifier(notifier, lambda: len(notifier.outbox.deliveries(("delivered",))) == 2)
    # the one behind waited, spending no attempt, while the channel answered 404
    assert [r.json()["title"] for r in gotify.requests] == [NGINX, NGINX, NGINX, POSTGRES]
    assert [(r["title"], r["attempts"]) for r in notifier.outbox.deliveries(("delivered",))
            ] == [(POSTGRES, 1), (NGINX, 3)]


def queued_apprise(tmp_path, endpoint: JsonEndpoint, **notify: object) -> Notifier:
    settings = make_settings(tmp_path, endpoint=endpoint, **notify)
    store = IncidentStore(Database(settings.db_path))
    for host, unit in (("web1", "nginx.service"), ("db1", "postgresql.service")):
        store.record_check(host, [failed(host, unit)], {"failed_unit"})
    return Notifier(settings, store.db)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("status", [413, 403])
def test_a_message_an_apprise_target_refuses_holds_up_no_page(tmp_path, endpoint,
                                                              status) -> None:
    endpoint.then(status)  # a body-size limit, a WAF's rule on a quoted log line
    notifier = queued_apprise(tmp_path, endpoint, retry_backoff_seconds=120, max_attempts=5)
    run_notifier(notifier, lambda: notifier.outbox.deliveries(("failed",)) and
                 notifier.outbox.deliveries(("delivered",)))
    assert endpoint.titles() == [POSTGRES]
    (refused,) = notifier.outbox.deliveries(("failed",))
    assert refused["title"] == NGINX and refused["attempts"] == 1
    assert f"error={status}" in refused["last_error"]
    assert [r.json()["title"] for r in endpoint.requests] == [NGINX, POSTGRES]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("status", [404, 429])
def test_an_apprise_answer_about_the_channel_holds_the_queue_in_order(tmp_path, endpoint,
                                                                     status) -> None:
    endpoint.then(status, status)
    notifier = queued_apprise(tmp_path, endpoint, retry_backoff_seconds=0.05, max_attempts=3)
    run_notifier(notifier, lambda: len(notifier.outbox.deliveries(("delivered",))) == 2)
    assert [r.json()["title"] for r in endpoint.requests] == [NGINX, NGINX, NGINX, POSTGRES]
    assert [(r["title"], r["attempts"]) for r in notifier.outbox.deliveries(("delivered",))
            ] == [(POSTGRES, 1), (NGINX, 3)]
