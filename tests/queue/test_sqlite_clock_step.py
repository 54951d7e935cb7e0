"""The machine's clock steps while the SQLite queue serves (a VM resumed from suspend, NTP or
chrony setting a wrong clock right at boot, `date -s`): a request is answered once, by the worker
that holds it, and a dead worker's request is not kept from the others until the clock catches
up.

This process's clock is stepped (``time.time``), as libfaketime would step a daemon's; the
machine's stays as it is, and so does its monotonic clock, as it does when the wall clock
steps."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ai_sysadmin.errors import NotFoundError
from ai_sysadmin.llm.queue.sqlite import SqliteQueue
from tests.support.polling import poll_until

HOUR = 3600.0
YEAR = 365 * 86400.0


def step_clock(monkeypatch: pytest.MonkeyPatch, by: float) -> None:
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + by)


def test_a_clock_stepped_forward_takes_no_request_from_the_worker_answering_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = SqliteQueue(tmp_path / "queue.db", lease_seconds=60)
    other = SqliteQueue(tmp_path / "queue.db", lease_seconds=60)  # another process's worker
    try:
        request_id = queue.submit("chat", {"n": 1}, "autonomous",
                                  coalesce_key="incident:1").request_id
        claim = queue.claim("daemon")
        assert claim is not None
        step_clock(monkeypatch, HOUR)  # a VM resumed after an hour

        # a second investigation's request, and an idle worker elsewhere: neither takes it
        assert queue.submit("chat", {"n": 1}, "autonomous",
                            coalesce_key="incident:1").coalesced
        assert other.claim("worker") is None
        shown = other.get(request_id)
        assert (shown.state, shown.worker) == ("in_flight", "daemon")
        assert shown.lease_until is not None and 0 < shown.lease_until - time.time() <= 60
        # the worker answering it keeps it, and its answer is the one stored
        assert queue.renew(claim)
        assert queue.complete(claim, {"answer": "from the one worker"})
        done = other.get(request_id)
        assert (done.state, done.attempts, done.result) == (
            "done", 1, {"answer": "from the one worker"})
    finally:
        queue.close()
        other.close()


def test_a_dead_workers_request_is_served_within_its_lease_after_the_clock_is_set_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock ran a year ahead; a daemon died holding a request; NTP sets the clock back:
    another worker answers the request once its lease is over, not a year later. A
    conversation started meanwhile does not wait for the dead daemon's worker either."""
    queue = SqliteQueue(tmp_path / "queue.db", lease_seconds=0.5)
    try:
        with monkeypatch.context() as ahead:
            step_clock(ahead, YEAR)
            queue.announce("daemon", True)
            request_id = queue.submit("chat", {"n": 1}, "autonomous").request_id
            assert queue.claim("daemon") is not None  # and the daemon dies: no renewal
        assert queue.live_workers() == 1  # announced a moment ago
        claim = poll_until(lambda: queue.claim("worker"), 10, "the dead worker's lease to end")
        assert (claim.request.id, claim.attempt) == (request_id, 2)
        assert queue.complete(claim, {"answer": "ok"})
        poll_until(lambda: queue.live_workers() == 0, 30,
                   "the dead daemon's worker to count as gone")
    finally:
        queue.close()


def test_answers_kept_while_the_clock_ran_a_year_ahead_are_not_kept_a_year_after_it_is_set_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each finished request keeps its whole conversation for `queue show` during the
    retention (a week); one stamped a year ahead is not kept until the clock catches up."""
    with monkeypatch.context() as ahead:
        step_clock(ahead, YEAR)
        queue = SqliteQueue(tmp_path / "queue.db")
        old = queue.submit("chat", {"n": 1}, "batch").request_id
        claim = queue.claim("worker")
        assert claim is not None and queue.complete(claim, {"answer": "a year ahead"})
        queue.close()
    queue = SqliteQueue(tmp_path / "queue.db")  # the daemon started again, on the right clock
    try:
        new = queue.submit("chat", {"n": 2}, "batch").request_id
        claim = queue.claim("worker")
        assert claim is not None and queue.complete(claim, {"answer": "now"})
        assert queue.get(new).result == {"answer": "now"}
        with pytest.raises(NotFoundError):
            queue.get(old)
    finally:
        queue.close()
