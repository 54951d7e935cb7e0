"""A caller that stops waiting leaves nothing behind for the LLM to answer, and a queue server
that hangs never holds the caller's event loop. Against SQLite and a real redis-server."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable

import pytest
import redis

from ai_sysadmin.llm.client import QueuedLLM
from ai_sysadmin.llm.queue import NoWorker, QueueTimeout, RequestLost, RequestQueue
from ai_sysadmin.llm.queue.base import QueueError, Request
from ai_sysadmin.llm.queue.redis_queue import RedisQueue
from ai_sysadmin.llm.queue.sqlite import SqliteQueue
from ai_sysadmin.llm.types import Message, Priority
from tests.support.polling import until

from .conftest import free_port, redis_server_process, serving

MakeQueue = Callable[..., RequestQueue]


def ask(text: str) -> list[Message]:
    return [Message("system", "you are hal"), Message("user", text)]


def states(queue: RequestQueue, ids: list[str]) -> list[str]:
    return [queue.get(request_id).state for request_id in ids]


def test_a_request_nobody_waits_for_any_more_leaves_the_queue(make_queue: MakeQueue) -> None:
    # no worker: the LLM is slow or busy, every attempt of an investigation times out
    queue = make_queue()
    calls = [QueuedLLM(queue, Priority.AUTONOMOUS, coalesce_key="incident:3", timeout=0.2)
             for _ in range(3)]

    async def attempts() -> list[str]:
        ids = []
        for number, call in enumerate(calls):
            with pytest.raises(QueueTimeout):
                await call(ask(f"attempt {number}"), [])
            ids += call.request_ids
        return ids

    ids = asyncio.run(attempts())
    assert states(queue, ids) == ["cancelled"] * 3
    assert queue.stats().depth == 0 and queue.pending_keyed("incident:3") == []


def test_a_request_no_worker_takes_is_told_apart_from_one_a_busy_worker_has_not_reached(
        make_queue: MakeQueue) -> None:
    """The daemon's worker runs apart (queue.embedded_worker = false): a request that times
    out queued because none serves the queue is NoWorker, which the daemon tells a person;
    one that waits behind a busy worker's answer is only slow."""
    queue = make_queue()

    async def go() -> tuple[QueueTimeout, QueueTimeout]:
        release = asyncio.Event()

        async def busy(request: Request) -> dict[str, object]:
            await release.wait()
            return {"message": {"role": "assistant", "content": "done at last"}}

        alone = QueuedLLM(queue, Priority.AUTONOMOUS, coalesce_key="incident:1", timeout=0.3)
        with pytest.raises(NoWorker) as unserved:
            await alone(ask("what failed?"), [])
        async with serving(queue, busy):
            first = asyncio.create_task(
                QueuedLLM(queue, Priority.INTERACTIVE, timeout=30)(ask("first"), []))
            await until(lambda: queue.stats().in_flight == 1, 10, "the worker to take it")
            behind = QueuedLLM(queue, Priority.AUTONOMOUS, coalesce_key="incident:2",
                               timeout=0.3)
            with pytest.raises(QueueTimeout) as slow:
                await behind(ask("what failed?"), [])
            release.set()
            assert (await first).message.content == "done at last"
        return unserved.value, slow.value

    unserved, slow = asyncio.run(go())
    assert "it is still queued" in str(unserved)
    assert "no worker serves the queue" in str(unserved)
    assert "is `ai-sysadmin worker`, the *-llm-worker unit, running?" in str(unserved)
    assert not isinstance(slow, NoWorker)
    assert "it is still queued" in str(slow) and "the LLM is slow or busy" in str(slow)
    assert "no worker" not in str(slow)


def test_a_request_another_caller_joined_outlives_its_submitter(make_queue: MakeQueue) -> None:
    queue = make_queue()
    # the owner's wait has room for the joiner to join (a Redis queue submits from a thread)
    owner = QueuedLLM(queue, Priority.INTERACTIVE, coalesce_key="ask", timeout=2)
    joiner = QueuedLLM(queue, Priority.INTERACTIVE, coalesce_key="ask", timeout=30)

    async def go() -> None:
        first = asyncio.create_task(owner(ask("same"), []))
        await until(lambda: owner.request_ids, 10, "the owner to submit")
        second = asyncio.create_task(joiner(ask("same"), []))
        await until(lambda: joiner.request_ids, 10, "the joiner to join")
        assert not first.done(), "the owner stopped waiting before the joiner joined"
        with pytest.raises(QueueTimeout):
            await first  # the submitter gives up first
        assert states(queue, owner.request_ids) == ["pending"]  # still the joiner's
        assert not second.done()
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)

    asyncio.run(go())
    assert joiner.request_ids == owner.request_ids


def test_a_redis_that_hangs_never_stops_the_event_loop() -> None:
    port = free_port()
    with redis_server_process(port) as server:
        queue = RedisQueue(f"redis://127.0.0.1:{port}/0")
        try:
            call = QueuedLLM(queue, Priority.AUTONOMOUS, timeout=60)

            async def go() -> tuple[float, BaseException | None]:
                gaps: list[float] = []

                async def beat() -> None:  # stands for the daemon's checks and followers
                    last = time.monotonic()
                    while True:
                        await asyncio.sleep(0.05)
                        now = time.monotonic()
                        gaps.append(now - last)
                        last = now

                beating = asyncio.create_task(beat())
                waiting = asyncio.create_task(call(ask("hello"), []))
                await until(lambda: call.request_ids, 10, "the request to be submitted")
                os.kill(server.pid, signal.SIGSTOP)  # the server hangs mid-wait
                try:
                    done, _ = await asyncio.wait([waiting], timeout=3)
                    assert not done  # still waiting on the server, on a thread
                    assert max(gaps) < 1.0, f"the event loop stood still {max(gaps):.1f} s"
                finally:
                    os.kill(server.pid, signal.SIGCONT)
                waiting.cancel()
                result = (await asyncio.gather(waiting, return_exceptions=True))[0]
                beating.cancel()
                return max(gaps), result if isinstance(result, BaseException) else None

            longest, ended = asyncio.run(go())
            assert longest < 1.0
            assert isinstance(ended, (asyncio.CancelledError, QueueError))
        finally:
            queue.close()


def test_a_request_in_flight_when_its_caller_stops_is_not_answered_again_for_nobody(
        make_queue: MakeQueue) -> None:
    """The daemon stops while its worker answers an investigation's turn: the caller's
    request is cancelled, not given back, so the restarted worker's first answer is for the
    live conversation, not the dead one."""
    queue = make_queue()
    served: list[str] = []

    async def slow(request: Request) -> dict[str, object]:
        served.append(request.payload["messages"][-1]["content"])
        await asyncio.sleep(60)  # the model thinks; the daemon stops meanwhile
        return {"message": {"role": "assistant", "content": "late"}}

    async def stopped_daemon() -> str:
        stop = asyncio.Event()
        worker = asyncio.create_task(queue.serve(slow, worker_name="d1", stop=stop))
        llm = QueuedLLM(queue, Priority.AUTONOMOUS, coalesce_key="incident:1", timeout=60)
        turn = asyncio.create_task(llm(ask("conversation A"), []))
        await until(lambda: served, 10, "the worker to take the turn")
        stop.set()  # Daemon.run's end: the investigations, then the worker, are cancelled
        turn.cancel()
        await asyncio.gather(turn, return_exceptions=True)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        return llm.request_ids[0]

    request_id = asyncio.run(stopped_daemon())
    assert queue.get(request_id).state == "cancelled"
    assert queue.stats().depth == 0


def test_an_answer_being_written_when_the_wait_runs_out_is_waited_for(
        make_queue: MakeQueue) -> None:
    """The worker took the request late (others were ahead of it) and is answering when the
    caller's wait runs out: the caller waits once more and gets the answer, rather than
    throwing it away and asking again later."""
    queue = make_queue()

    async def late(request: Request) -> dict[str, object]:
        await asyncio.sleep(3.0)  # the model writes; the caller's wait (2 s) runs out
        return {"message": {"role": "assistant", "content": "the answer"}}

    async def go() -> str:
        llm = QueuedLLM(queue, Priority.AUTONOMOUS, coalesce_key="incident:5", timeout=2.0)
        turn = asyncio.create_task(llm(ask("what failed?"), []))
        await until(lambda: llm.request_ids, 10, "the request to be submitted")
        async with serving(queue, late):  # the worker comes only now
            result = await turn
        return result.message.content

    assert asyncio.run(go()) == "the answer"


def test_an_answer_stored_as_the_wait_runs_out_is_the_callers(tmp_path) -> None:
    """The worker stored its answer between the caller's last look and the end of its wait:
    the caller was told "no answer ... it is still queued", and the answer was thrown away."""

    class AnsweredAtTheDeadline(SqliteQueue):
        def _finished(self, request_id: str) -> bool:
            finished = super()._finished(request_id)
            if not finished and (taken := self.claim("worker-1")) is not None:
                self.complete(taken, {"message": {"role": "assistant", "content": "42"}})
            return finished

    queue = AnsweredAtTheDeadline(tmp_path / "queue.db")
    try:
        llm = QueuedLLM(queue, Priority.INTERACTIVE, timeout=0.0)
        assert asyncio.run(llm(ask("what failed?"), [])).message.content == "42"
    finally:
        queue.close()


def test_a_request_the_queue_lost_while_waited_for_is_said_at_once(redis_url: str) -> None:
    """A Redis that loses its data (restarted without persistence, flushed, evicting) while
    an investigation waits: the caller is told so at once, as an LLM error. It polled a
    request that no longer existed for its whole wait (5 minutes by default), then said
    "no LLM request ... (finished requests are kept 7 days)", an error no caller handled."""
    queue = RedisQueue(redis_url)
    call = QueuedLLM(queue, Priority.AUTONOMOUS, coalesce_key="incident:4", timeout=30)

    async def go() -> None:
        waiting = asyncio.ensure_future(call(ask("why did nginx fail?"), []))
        await until(lambda: bool(call.request_ids), what="the request submitted")
        redis.Redis.from_url(redis_url).flushall()
        with pytest.raises(RequestLost, match="no longer in the queue while it was waited"):
            await waiting

    try:
        asyncio.run(go())
    finally:
        queue.close()


def test_a_call_stopped_while_its_submit_waits_on_redis_takes_the_request_out_once_in() -> None:
    """An investigation stopped (a daemon's stop, an incident resolved) while its request's
    submit still waits on a slow Redis: the submit goes on, on its thread, and the request
    it puts in is taken out again; a worker answered it for nobody."""
    port = free_port()
    with redis_server_process(port) as server:
        queue = RedisQueue(f"redis://127.0.0.1:{port}/0")
        call = QueuedLLM(queue, Priority.AUTONOMOUS, coalesce_key="incident:5", timeout=60)
        try:
            async def go() -> None:
                queue.stats()  # connected before the server stops
                os.kill(server.pid, signal.SIGSTOP)
                try:
                    waiting = asyncio.create_task(call(ask("hello"), []))
                    done, _ = await asyncio.wait([waiting], timeout=0.5)
                    assert not done  # the submit waits on the stopped server
                    waiting.cancel()
                finally:
                    os.kill(server.pid, signal.SIGCONT)
                with pytest.raises(asyncio.CancelledError):
                    await waiting
                await until(lambda: call.request_ids, 10, "the submit to end")
                await until(lambda: states(queue, call.request_ids) == ["cancelled"], 10,
                            "the request taken out")

            asyncio.run(go())
            assert queue.stats().depth == 0
        finally:
            queue.close()
