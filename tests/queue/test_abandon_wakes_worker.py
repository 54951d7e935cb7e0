"""A caller in the worker's own process that gives up on a request (`ask` stopped by Ctrl-C) frees
the worker at once, not at its next lease renewal; other changes to the queue do not stop the
answers in flight. SQLite and a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ai_sysadmin.llm.queue import Request, RequestQueue
from tests.support.polling import until

from .conftest import serving

MakeQueue = Callable[..., RequestQueue]
#: renewals every 20 s: anything a test sees sooner came from the wake-up
LEASE = 60.0


def test_an_abandoned_request_stops_its_handler_at_once(make_queue: MakeQueue) -> None:
    queue = make_queue(lease_seconds=LEASE)
    slow = queue.submit("chat", {"n": 1}, "interactive").request_id
    stopped: list[int] = []
    served: list[int] = []

    async def handler(request: Request) -> dict[str, Any]:
        served.append(request.payload["n"])
        try:
            if request.payload["n"] == 1:
                await asyncio.sleep(3600)
        except asyncio.CancelledError:
            stopped.append(request.payload["n"])
            raise
        return {"n": request.payload["n"]}

    async def run() -> dict[str, Any] | None:
        async with serving(queue, handler, concurrency=1):
            await until(lambda: served == [1], 10, "the slow request to start")
            assert queue.abandon(slow)
            await until(lambda: stopped == [1], 3, "the abandoned handler to stop")
            # the one slot is free again: the next request is answered now
            after = queue.submit("chat", {"n": 2}, "interactive").request_id
            return (await queue.wait(after, 3)).result

    assert asyncio.run(run()) == {"n": 2}
    request = queue.get(slow)
    assert (request.state, request.result) == ("cancelled", None)  # never answered later


def test_other_changes_to_the_queue_leave_answers_in_flight_alone(
        make_queue: MakeQueue) -> None:
    queue = make_queue(lease_seconds=LEASE)
    first = queue.submit("chat", {"n": 1}, "interactive").request_id
    release = asyncio.Event()
    started: list[int] = []

    async def handler(request: Request) -> dict[str, Any]:
        started.append(request.payload["n"])
        if request.payload["n"] == 1:
            await release.wait()
        return {"n": request.payload["n"]}

    async def run() -> tuple[Request, Request]:
        async with serving(queue, handler, concurrency=2):
            await until(lambda: started == [1], 10, "the first request to start")
            # submitted, answered, another cancelled: each wakes the worker in flight
            second = queue.submit("chat", {"n": 2}, "interactive").request_id
            answered = await queue.wait(second, 5)
            queue.cancel(queue.submit("chat", {"n": 3}, "batch").request_id)
            release.set()
            return answered, await queue.wait(first, 5)

    answered, kept = asyncio.run(run())
    assert (answered.state, answered.result) == ("done", {"n": 2})
    assert (kept.state, kept.result, kept.attempts) == ("done", {"n": 1}, 1)
