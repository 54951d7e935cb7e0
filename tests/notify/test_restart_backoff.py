"""A restart tries pending deliveries at once: the operator mended the channel (its URL, its
token file) and restarted the daemon to see it work, not to wait out a backoff of up to an
hour. A channel that still fails is tried once, then backs off again."""

from __future__ import annotations

import time

import pytest

from ai_sysadmin.notify import Notifier
from ai_sysadmin.store import Database, IncidentStore
from ai_sysadmin.store.outbox import Outbox
from tests.notify.conftest import failed, make_settings, run_notifier
from tests.notify.servers import JsonEndpoint

TITLE = "[hal] web1: nginx.service has failed"


@pytest.mark.timeout(90)
def test_a_restart_tries_pending_deliveries_at_once_then_backs_off_again(
        tmp_path, endpoint: JsonEndpoint) -> None:
    endpoint.then(500, 500)
    # a failed delivery waits an hour before its next attempt
    settings = make_settings(tmp_path, endpoint=endpoint, retry_backoff_seconds=3600)
    store = IncidentStore(Database(settings.db_path))
    store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
    outbox = Outbox(store.db)

    def pending(attempts: int) -> list[dict]:
        return [r for r in outbox.deliveries(("pending",)) if r["attempts"] == attempts]

    first = Notifier(settings, store.db)
    run_notifier(first, lambda: pending(1))
    # restarted while the endpoint still fails: one attempt at once, then an hour again
    still_failing = Notifier(settings, store.db)
    (row,) = run_notifier(still_failing, lambda: pending(2), timeout=15)
    assert len(endpoint.requests) == 2
    assert row["next_at"] > time.time() + 3000
    # mended, restarted: delivered at once
    mended = Notifier(settings, store.db)
    # until the outbox says so, not until the endpoint has it: a stop in between is a
    # delivery sent again after the next start, as documented
    (delivered,) = run_notifier(mended, lambda: outbox.deliveries(("delivered",)), timeout=15)
    assert endpoint.titles() == [TITLE]
    assert delivered["attempts"] == 3 and delivered["last_error"] is None
