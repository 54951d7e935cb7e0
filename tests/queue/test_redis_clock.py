"""The Redis queue judges what it reads by the Redis server's clock, which stamped it: a
machine whose clock is off the server's (a worker, a laptop running `queue show`) still sees a
request in flight as in flight and a request just submitted as just submitted.

The real redis-server keeps its own (true) clock; this process's clock is set two hours ahead,
as on a machine whose clock drifted or whose NTP is broken."""

from __future__ import annotations

import time

import pytest

from ai_sysadmin.llm.queue.redis_queue import RedisQueue
from ai_sysadmin.llm.types import Priority
from tests.queue.test_cli_queue import invoke

SKEW = 2 * 3600.0


def test_a_machine_whose_clock_is_off_reads_the_queue_by_the_servers_clock(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = RedisQueue(redis_url, lease_seconds=30)
    try:
        answered = queue.submit("chat", {"n": 1}, Priority.INTERACTIVE).request_id
        claim = queue.claim("worker-a")
        assert claim is not None and claim.request.id == answered
        queue.complete(claim, {"answer": "ok"})
        running = queue.submit("chat", {"n": 2}, Priority.INTERACTIVE).request_id
        assert queue.claim("worker-a") is not None
        queue.submit("chat", {"n": 3}, Priority.BATCH)

        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + SKEW)
        shown = queue.get(running)
        stats = queue.stats()
        # its lease (30 s) is not over: the worker is still answering it
        assert (shown.state, shown.worker) == ("in_flight", "worker-a")
        assert shown.lease_until is not None
        assert (stats.in_flight, stats.depth) == (1, 1)
        assert stats.oldest_pending_age is not None and stats.oldest_pending_age < 60
        assert (stats.done_last_hour, stats.failed_last_hour) == (1, 0)
        # what a caller compares a request's times with
        assert abs(queue.now() - real()) < 60
    finally:
        queue.close()


def test_queue_show_reads_waits_by_the_servers_clock(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`queue show ID` on a machine whose clock is two hours ahead: a request submitted a
    moment ago has waited a moment, not two hours."""
    monkeypatch.setenv("AI_SYSADMIN_QUEUE__URL", redis_url)
    queue = RedisQueue(redis_url, lease_seconds=30)
    try:
        request_id = queue.submit("chat", {"n": 1}, Priority.BATCH).request_id
    finally:
        queue.close()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + SKEW)

    result = invoke("queue", "show", request_id)

    assert result.exit_code == 0, result.output
    waited = next(line for line in result.output.splitlines() if "waited:" in line)
    assert waited.split(":", 1)[1].strip().endswith(("ms", " s")), waited
