"""What every queue backend promises, run against SQLite and a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from ai_sysadmin.llm.queue import NoWorker, QueueTimeout, Request, RequestQueue
from ai_sysadmin.llm.types import Priority

from .conftest import serving

MakeQueue = Callable[..., RequestQueue]


def test_priority_first_then_arrival_order(make_queue: MakeQueue) -> None:
    queue = make_queue()
    submitted = [
        ("batch-1", "batch"), ("autonomous-1", "autonomous"), ("interactive-1", "interactive"),
        ("batch-2", Priority.BATCH), ("autonomous-2", Priority.AUTONOMOUS),
        ("interactive-2", Priority.INTERACTIVE),
    ]
    ids = [queue.submit("chat", {"name": name}, prio).request_id for name, prio in submitted]
    served: list[str] = []

    async def handler(request: Request) -> dict[str, Any]:
        served.append(request.payload["name"])
        return {"name": request.payload["name"]}

    async def run() -> list[Request]:
        async with serving(queue, handler):
            return [await queue.wait(i, 10) for i in ids]

    answers = asyncio.run(run())
    assert served == ["interactive-1", "interactive-2", "autonomous-1", "autonomous-2",
                      "batch-1", "batch-2"]
    assert [a.result for a in answers] == [{"name": n} for n, _ in submitted]
    assert all(a.state == "done" and a.attempts == 1 for a in answers)


def test_concurrency_limit_is_respected(make_queue: MakeQueue) -> None:
    queue = make_queue()
    ids = [queue.submit("chat", {"n": n}, "batch").request_id for n in range(6)]
    active = 0
    peak = 0

    async def run() -> None:
        both_busy = asyncio.Event()

        async def handler(request: Request) -> dict[str, Any]:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            if active == 2:
                both_busy.set()
            await asyncio.wait_for(both_busy.wait(), 10)
            await asyncio.sleep(0.01)
            active -= 1
            return {}

        async with serving(queue, handler, concurrency=2):
            for request_id in ids:
                assert (await queue.wait(request_id, 15)).state == "done"

    asyncio.run(run())
    assert peak == 2


def test_a_request_survives_reopening_the_queue(make_queue: MakeQueue) -> None:
    first = make_queue()
    request_id = first.submit("chat", {"question": "why?"}, "autonomous").request_id
    first.close()

    reopened = make_queue()
    request = reopened.get(request_id)
    assert (request.state, request.payload, request.priority) == (
        "pending", {"question": "why?"}, Priority.AUTONOMOUS)

    async def handler(request: Request) -> dict[str, Any]:
        return {"answer": "because"}

    async def run() -> Request:
        async with serving(reopened, handler):
            return await reopened.wait(request_id, 10)

    assert asyncio.run(run()).result == {"answer": "because"}


def test_a_client_that_times_out_is_told_clearly(
    make_queue: MakeQueue,
) -> None:
    queue = make_queue()
    ahead = queue.submit("chat", {}, "interactive").request_id
    request_id = queue.submit("chat", {"q": "disk?"}, "interactive").request_id

    with pytest.raises(QueueTimeout) as caught:
        asyncio.run(queue.wait(request_id, 0.05))
    message = str(caught.value)
    assert request_id in message
    assert "still queued with 1 request(s) ahead of it" in message
    # no worker serves the queue: that, not a slow LLM, is why it waits
    assert isinstance(caught.value, NoWorker)
    assert "no worker serves the queue" in message
    assert "ai-sysadmin queue" in message
    assert caught.value.request_id == request_id
    assert queue.get(request_id).state == "pending"

    async def handler(request: Request) -> dict[str, Any]:
        return {"a": request.payload.get("q")}

    async def run() -> Request:
        async with serving(queue, handler):
            await queue.wait(ahead, 10)
            return await queue.wait(request_id, 10)

    assert asyncio.run(run()).result == {"a": "disk?"}
    assert queue.get(request_id).state == "done"


def test_a_handler_error_fails_the_request_with_its_text(make_queue: MakeQueue) -> None:
    queue = make_queue()

    async def handler(request: Request) -> dict[str, Any]:
        if request.payload.get("bad"):
            raise RuntimeError("the model server said 500")
        return {"fine": True}

    async def run() -> tuple[Request, Request]:
        async with serving(queue, handler):
            bad = queue.submit("chat", {"bad": True}, "batch").request_id
            good = queue.submit("chat", {}, "interactive").request_id
            return await queue.wait(bad, 10), await queue.wait(good, 10)

    failed, ok = asyncio.run(run())
    assert failed.state == "failed"
    assert failed.error == "RuntimeError: the model server said 500"
    assert failed.result is None
    assert (ok.state, ok.result) == ("done", {"fine": True})
    stats = queue.stats()
    assert (stats.done_last_hour, stats.failed_last_hour) == (1, 1)


def test_stats_show_depth_in_flight_and_waits(make_queue: MakeQueue) -> None:
    queue = make_queue()
    empty = queue.stats()
    assert (empty.depth, empty.in_flight, empty.oldest_pending_age) == (0, 0, None)
    for prio in ("batch", "batch", "autonomous", "interactive"):
        queue.submit("chat", {}, prio)
    before = queue.stats()
    assert before.pending == {"interactive": 1, "autonomous": 1, "batch": 2}
    assert before.oldest_pending_age is not None and before.oldest_pending_age >= 0

    async def run() -> Any:
        release = asyncio.Event()
        started = asyncio.Event()

        async def handler(request: Request) -> dict[str, Any]:
            started.set()
            await asyncio.wait_for(release.wait(), 10)
            return {}

        async with serving(queue, handler, name="stats-worker"):
            await asyncio.wait_for(started.wait(), 10)
            during = queue.stats()
            release.set()
        return during

    during = asyncio.run(run())
    assert during.in_flight == 1
    assert during.pending == {"interactive": 0, "autonomous": 1, "batch": 2}
    [running] = during.in_flight_requests
    assert running.priority == Priority.INTERACTIVE and running.worker == "stats-worker"
    after = queue.stats()
    assert after.in_flight == 0 and after.done_last_hour >= 1
    assert after.mean_wait_last_hour is not None and after.mean_wait_last_hour >= 0


def test_a_cancelled_request_is_never_served(make_queue: MakeQueue) -> None:
    queue = make_queue()
    dropped = queue.submit("chat", {"n": 1}, "batch", coalesce_key="k").request_id
    kept = queue.submit("chat", {"n": 2}, "batch").request_id
    assert queue.cancel(dropped)
    assert not queue.cancel(dropped)
    served: list[int] = []

    async def handler(request: Request) -> dict[str, Any]:
        served.append(request.payload["n"])
        return {}

    async def run() -> None:
        async with serving(queue, handler):
            await queue.wait(kept, 10)

    asyncio.run(run())
    assert served == [2]
    assert queue.get(dropped).state == "cancelled"
    assert not queue.submit("chat", {}, "batch", coalesce_key="k").coalesced


def test_an_unknown_request_is_not_found(make_queue: MakeQueue) -> None:
    from ai_sysadmin.errors import NotFoundError

    with pytest.raises(NotFoundError, match="no LLM request 'q-nope'"):
        make_queue().get("q-nope")


def test_a_worker_cancelled_mid_request_gives_it_back(make_queue: MakeQueue) -> None:
    queue = make_queue()
    request_id = queue.submit("chat", {}, "interactive").request_id

    async def run() -> None:
        started = asyncio.Event()

        async def handler(request: Request) -> dict[str, Any]:
            started.set()
            await asyncio.sleep(3600)
            return {}

        stop = asyncio.Event()
        task = asyncio.create_task(queue.serve(handler, worker_name="hard", stop=stop))
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)

    asyncio.run(run())
    request = queue.get(request_id)
    assert (request.state, request.attempts) == ("pending", 0)

    async def answer() -> Request:
        async def handler(request: Request) -> dict[str, Any]:
            return {"second": True}

        async with serving(queue, handler):
            return await queue.wait(request_id, 10)

    assert asyncio.run(answer()).result == {"second": True}


def test_serving_workers_are_visible_to_clients(make_queue: MakeQueue) -> None:
    queue = make_queue()
    assert queue.live_workers() == 0

    async def handler(request: Request) -> dict[str, Any]:
        return {}

    async def run() -> int:
        async with serving(queue, handler):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while queue.live_workers() == 0 and loop.time() < deadline:
                await asyncio.sleep(0.02)
            return queue.live_workers()

    assert asyncio.run(run()) >= 1
    assert queue.live_workers() == 0  # a worker that stopped says so


def test_what_a_worker_says_of_itself_is_read_back_as_it_changes_until_it_stops(
        make_queue: MakeQueue) -> None:
    """``serve``'s ``says``: read back by every client (``workers_say``), told again as it
    changes, gone with the worker; one that says nothing is not listed."""
    queue = make_queue()
    word = ["ollama at gpu1: not ready"]

    async def handler(request: Request) -> dict[str, Any]:
        return {}

    async def until(wanted: dict[str, str]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while queue.workers_say() != wanted and loop.time() < deadline:
            await asyncio.sleep(0.02)
        assert queue.workers_say() == wanted

    async def run() -> None:
        stop = asyncio.Event()
        says = asyncio.create_task(queue.serve(handler, concurrency=1, worker_name="w-says",
                                               stop=stop, says=lambda: word[0]))
        quiet = asyncio.create_task(queue.serve(handler, concurrency=1, worker_name="w-quiet",
                                                stop=stop))
        try:
            await until({"w-says": "ollama at gpu1: not ready"})
            word[0] = "ollama at gpu1: ready"
            await until({"w-says": "ollama at gpu1: ready"})
            assert queue.live_workers() == 2
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(says, quiet), 15)

    asyncio.run(run())
    assert queue.workers_say() == {}  # a worker that stopped says nothing more


def test_a_private_worker_answers_its_callers_requests_alone_and_counts_as_none(
        make_queue: MakeQueue) -> None:
    """`ask` with no worker running serves its own requests (``only``): in priority order,
    including those it submits once serving, never another caller's, and never announced,
    so a caller waiting for the queue's worker still hears that none serves it."""
    queue = make_queue()
    others = [queue.submit("chat", {"name": f"daemon-{n}"}, "interactive").request_id
              for n in range(2)]
    mine: list[str] = []
    for name, prio in (("batch", "batch"), ("autonomous", "autonomous")):
        queue.submit("chat", {"name": name}, prio, record=mine)
    served: list[str] = []

    async def handler(request: Request) -> dict[str, Any]:
        served.append(request.payload["name"])
        return {}

    async def run() -> tuple[int, NoWorker]:
        stop = asyncio.Event()
        task = asyncio.create_task(queue.serve(handler, concurrency=1, worker_name="ask-1",
                                               stop=stop, only=mine))
        try:
            answered = [await queue.wait(i, 10) for i in list(mine)]
            late = queue.submit("chat", {"name": "later"}, "batch", record=mine).request_id
            answered.append(await queue.wait(late, 10))
            assert all(r.state == "done" for r in answered)
            workers = queue.live_workers()
            with pytest.raises(NoWorker) as unserved:
                await queue.wait(others[0], 0.3)
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
        return workers, unserved.value

    workers, _ = asyncio.run(run())
    assert served == ["autonomous", "batch", "later"]
    assert workers == 0
    assert [queue.get(i).state for i in others] == ["pending", "pending"]
    assert [queue.get(i).attempts for i in others] == [0, 0]


def test_a_persons_next_turn_goes_before_the_daemons_work_that_waited(
        make_queue: MakeQueue) -> None:
    """A question's turns go before the daemon's investigation steps, each turn by its
    priority; but between two turns, while the conversation's tools ran on a host, the
    worker took the next investigation step, and the person's next turn waited for all of
    it (13.7 s for a question of two turns, against the daemon's 8 s steps). After a
    person's answer the worker now waits a moment for the next turn (LINGER_SECONDS)."""
    worker, person = make_queue(), make_queue()  # two processes' handles on one queue
    served: list[str] = []

    async def handler(request: Request) -> dict[str, Any]:
        served.append(request.payload["name"])
        return {}

    async def run() -> None:
        step = person.submit("chat", {"name": "investigation step"}, "autonomous").request_id
        first = person.submit("chat", {"name": "turn 1"}, "interactive").request_id
        async with serving(worker, handler):
            await person.wait(first, 10)
            await asyncio.sleep(0.3)  # the model's tool runs on a host (not a wait for sync)
            second = person.submit("chat", {"name": "turn 2"}, "interactive").request_id
            await person.wait(second, 10)
            await person.wait(step, 10)

    asyncio.run(run())
    assert served == ["turn 1", "turn 2", "investigation step"]


def test_a_request_behind_a_busy_worker_counts_what_it_answers_as_ahead(
    make_queue: MakeQueue,
) -> None:
    """The only worker answering another request (an investigation's): a question that
    waited out its time was "still queued with 0 request(s) ahead of it", as if nothing was
    in its way."""
    queue = make_queue()
    busy = asyncio.Event()
    release = asyncio.Event()

    async def handler(request: Request) -> dict[str, Any]:
        busy.set()
        await release.wait()
        return {}

    async def run() -> QueueTimeout:
        async with serving(queue, handler, concurrency=1):
            first = queue.submit("chat", {"q": "investigate"}, "autonomous").request_id
            await busy.wait()
            waiting = queue.submit("chat", {"q": "disk?"}, "interactive").request_id
            try:
                await queue.wait(waiting, 0.05)
            except QueueTimeout as exc:
                return exc
            finally:
                release.set()
                await queue.wait(first, 10)
        raise AssertionError("answered by a worker that was busy")

    caught = asyncio.run(run())
    message = str(caught)
    assert "still queued with 1 request(s) ahead of it (1 being answered)" in message, message
    assert not isinstance(caught, NoWorker)
