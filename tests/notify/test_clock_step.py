"""The machine's clock set back while the daemon runs (NTP or chrony correcting a clock that ran
a year ahead, a VM resumed from an old snapshot): nobody goes without messages until the clock
catches up with the times stamped before the step.

This process's clock is stepped (``time.time``), as libfaketime would step a daemon's; the
machine's stays as it is."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ai_sysadmin.notify import Notifier
from ai_sysadmin.notify.storm import DIGEST_GATHER_SECONDS
from ai_sysadmin.store import Database, IncidentStore
from ai_sysadmin.store.outbox import Outbox
from tests.notify.conftest import failed, make_settings, unsent
from tests.notify.servers import GotifyServer
from tests.support.polling import until

YEAR = 365 * 86400.0


def step_clock(monkeypatch: pytest.MonkeyPatch, by: float) -> None:
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + by)


def titles(notifier: Notifier, after: float = 0.0) -> list[str]:
    """What a pass ``after`` seconds from now makes."""
    made = set(notifier.dispatcher.dispatch(time.time() + after))
    return [m["title"] for m in notifier.outbox.messages() if m["id"] in made]


def test_a_failure_after_the_clock_is_set_back_is_told_though_a_digest_went_out_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(tmp_path, digest_threshold=2)
    store = IncidentStore(Database(settings.db_path))
    notifier = Notifier(settings, store.db, channels=unsent(tmp_path))
    with monkeypatch.context() as ahead:
        step_clock(ahead, YEAR)  # the clock runs a year ahead for a while
        store.record_check("db1", [failed("db1", "pg.service")], {"failed_unit"})
        assert titles(notifier) == ["[hal] db1: pg.service has failed"]
        for _ in range(2):  # it fails again within the repeat window: held, a repeat
            store.record_check("db1", [], {"failed_unit"})
            store.record_check("db1", [failed("db1", "pg.service")], {"failed_unit"})
            assert titles(notifier) == []
        for n in range(4):
            store.record_check(f"web{n}", [failed(f"web{n}", "nginx.service")], {"failed_unit"})
        assert titles(notifier) == []  # a digest waits for the rest of its storm
        (digest,) = titles(notifier, DIGEST_GATHER_SECONDS)
        assert "4" in digest, digest
    # NTP sets it right: a year back. A unit failing now is news at once, and the repeats
    # held on the wrong clock go out summed up, their window over
    store.record_check("web9", [failed("web9", "mysql.service")], {"failed_unit"})
    assert titles(notifier) == ["[hal] web9: mysql.service has failed",
                                "[hal] db1: pg.service has failed (2 more times in 30 min)"]
    # the storm control works on the clock as it is now: a repeat within the window is held
    store.record_check("db1", [], {"failed_unit"})
    store.record_check("db1", [failed("db1", "pg.service")], {"failed_unit"})
    assert titles(notifier) == []


@pytest.mark.timeout(90)
def test_a_channel_that_failed_just_before_the_clock_is_set_back_delivers_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gotify: GotifyServer) -> None:
    """Gotify is down for a moment at boot, when NTP sets back a clock that ran a year ahead
    (an RTC kept in local time): the waiting message and every one after it arrive once it
    answers, not a year later."""
    gotify.then(503)
    settings = make_settings(tmp_path, gotify, retry_backoff_seconds=2)
    store = IncidentStore(Database(settings.db_path))
    outbox = Outbox(store.db)
    notifier = Notifier(settings, store.db)

    async def go() -> None:
        stop = asyncio.Event()
        loops = asyncio.create_task(notifier.run(stop))
        try:
            store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
            await until(lambda: [d for d in outbox.deliveries(("pending",))
                                 if d["attempts"] == 1], 30, "the failed attempt")
            step_clock(monkeypatch, -YEAR)
            store.record_check("web2", [failed("web2", "redis.service")], {"failed_unit"})
            await until(lambda: len(gotify.titles()) == 2 or loops.done(), 30,
                        "both messages at Gotify")
            assert not loops.done(), loops.exception()
        finally:
            stop.set()
            await asyncio.wait_for(loops, 15)

    asyncio.run(go())
    assert sorted(gotify.titles()) == ["[hal] web1: nginx.service has failed",
                                       "[hal] web2: redis.service has failed"]
