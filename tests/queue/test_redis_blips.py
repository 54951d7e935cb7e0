"""A Redis queue through what a real server does: a restart in the middle of an answer, and
keys evicted under a maxmemory-policy that evicts.

- A caller waiting for its answer, and the worker storing it, wait out a server that restarts
  (its data kept on disk): the caller failed at once with "Connection refused", and the
  worker dropped the answer it could not store, the LLM asked again once its lease ran out.
- A request whose data the server evicted is dropped, said in the log, and its caller told
  it was lost: the worker crashed on it with a KeyError at every start, and `queue` too.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
import redis

from ai_sysadmin.llm.client import QueuedLLM
from ai_sysadmin.llm.queue import QueueUnreachable, Request, RequestLost
from ai_sysadmin.llm.queue.leases import Claim
from ai_sysadmin.llm.queue.redis_queue import RedisQueue
from ai_sysadmin.llm.queue.redis_scripts import COMPLETE, SUBMIT
from ai_sysadmin.llm.types import LLMError, Message, Priority
from tests.support.polling import until

from .conftest import free_port, need_redis_server, redis_server_process, serving

pytestmark = pytest.mark.slow


class CountingQueue(RedisQueue):
    """The worker's queue, counting its tries to store an answer."""

    stores = 0

    def complete(self, claim: Claim, result: dict[str, Any] | None = None,
                 error: str | None = None) -> bool:
        self.stores += 1
        return super().complete(claim, result, error)


def test_an_answer_made_while_redis_is_down_reaches_its_caller(tmp_path: Path) -> None:
    need_redis_server()
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    asked: list[int] = []

    async def run() -> tuple[Request, CountingQueue]:
        release = asyncio.Event()

        async def handler(request: Request) -> dict[str, Any]:
            asked.append(request.payload["n"])
            await release.wait()
            return {"answer": request.payload["n"] * 2}

        worker_queue = CountingQueue(url, lease_seconds=9, reach_now=False)
        caller = RedisQueue(url, lease_seconds=9, reach_now=False)
        stop = asyncio.Event()
        worker = asyncio.create_task(worker_queue.serve(handler, worker_name="w", stop=stop))
        try:
            with redis_server_process(port, keep_in=tmp_path):
                request_id = caller.submit("chat", {"n": 21}, "interactive").request_id
                await until(lambda: asked == [21], 10, "the worker to take the request")
                waiting = asyncio.create_task(caller.wait(request_id, 30))
                await asyncio.sleep(0)  # the caller is waiting
            # down: the answer is made now, and cannot be stored yet
            release.set()
            await until(lambda: worker_queue.stores >= 1, 10, "a try to store the answer")
            assert not waiting.done()
            with redis_server_process(port, keep_in=tmp_path):  # back, with its data
                answered = await asyncio.wait_for(waiting, 30)
                stop.set()
                await asyncio.wait_for(worker, 15)
        finally:
            stop.set()
            worker.cancel()
            worker_queue.close()
            caller.close()
        return answered, worker_queue

    answered, worker_queue = asyncio.run(run())
    assert (answered.state, answered.result) == ("done", {"answer": 42})
    assert asked == [21]  # the LLM was asked once
    assert answered.attempts == 1 and worker_queue.stores >= 2


def test_requests_a_server_evicted_are_dropped_and_said(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    need_redis_server()
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    async def handler(request: Request) -> dict[str, Any]:
        return {"answer": request.payload["n"]}

    async def run() -> tuple[list[object], str]:
        queue = RedisQueue(url, lease_seconds=5)
        server = redis.Redis.from_url(url)
        # the memory policy of a cache, which evicts any key once memory is full
        server.config_set("maxmemory-policy", "allkeys-lru")
        ids = [queue.submit("chat", {"n": n}, "batch").request_id for n in range(3)]
        for request_id in ids[:2]:  # what eviction does: the key is gone
            server.delete(queue._rec(request_id))
        server.close()
        async with serving(queue, handler):
            outcomes: list[object] = []
            for request_id in ids:
                try:
                    outcomes.append((await queue.wait(request_id, 10)).result)
                except RequestLost as exc:
                    outcomes.append(type(exc).__name__)
        stats = queue.stats()  # what `queue` shows, without a traceback
        queue.close()
        return outcomes, f"{sum(stats.pending.values())} pending, {stats.in_flight} in flight"

    with caplog.at_level(logging.WARNING, logger="ai_sysadmin.service"), \
            redis_server_process(port):
        outcomes, shown = asyncio.run(run())
    assert outcomes == ["RequestLost", "RequestLost", {"answer": 2}]
    assert shown == "0 pending, 0 in flight"
    said = caplog.text
    assert "maxmemory-policy allkeys-lru" in said and "noeviction" in said
    assert said.count("lost, its data gone from the queue") == 2


def test_a_worker_whose_redis_is_down_waits_its_backoff() -> None:
    """While the server is down the worker says it tries again in 0.5 s, then 1, 2, 4 ...:
    it did, and its notice of new work, failing at once, had it knock 4 times a second."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    knocks: list[float] = []

    async def run() -> None:
        async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            knocks.append(asyncio.get_running_loop().time())
            writer.close()  # a server that takes the connection and is gone at once

        listener = await asyncio.start_server(refuse, "127.0.0.1", port)
        queue = RedisQueue(url, lease_seconds=5, reach_now=False)
        stop = asyncio.Event()

        async def handler(request: Request) -> dict[str, Any]:
            return {}

        worker = asyncio.create_task(queue.serve(handler, worker_name="w", stop=stop))
        await asyncio.sleep(4)  # the span measured: the worker's tries within it are counted
        stop.set()
        await asyncio.wait_for(worker, 15)
        listener.close()
        queue.close()

    asyncio.run(run())
    # tries at 0, 0.5, 1.5, 3.5 s (each of a few connections: the claim, its retries by the
    # client library), never the 16 a notice every 0.25 s made
    assert len(knocks) <= 12, len(knocks)


def test_a_wait_that_ends_with_redis_down_takes_its_request_out_once_redis_is_back(
        tmp_path: Path) -> None:
    """A caller's wait that ran out while the server was down left its request queued: once
    the server was back, a worker asked the LLM for an answer nobody would read."""
    need_redis_server()
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    async def run() -> tuple[type[BaseException], str]:
        caller = RedisQueue(url, lease_seconds=9, reach_now=False)
        llm = QueuedLLM(caller, Priority.BATCH, timeout=2)
        try:
            with redis_server_process(port, keep_in=tmp_path):  # no worker runs
                asking = asyncio.create_task(llm([Message("user", "hello")], []))
                await until(lambda: bool(llm.request_ids), 10, "the request to be queued")
            # down for longer than the caller waits
            try:
                await asyncio.wait_for(asking, 30)
            except LLMError as exc:
                failure: type[BaseException] = type(exc)
            with redis_server_process(port, keep_in=tmp_path):  # back, with its data
                (request_id,) = llm.request_ids
                looker = RedisQueue(url, lease_seconds=9)

                def state() -> str:
                    return looker.get(request_id).state

                await until(lambda: state() != "pending", 30,
                            "the request to be taken out of the queue")
                gone = state()
                looker.close()
        finally:
            caller.close()
        return failure, gone

    failure, gone = asyncio.run(run())
    assert failure is QueueUnreachable
    assert gone == "cancelled"


class ReplyCutter:
    """A TCP hop to a real Redis that passes everything, except that the reply to the
    command carrying ``marker`` never reaches the client: its connection is cut once the
    server has run it (a network that drops it, a proxy that restarts)."""

    def __init__(self, port: int, marker: bytes) -> None:
        self.redis_port = port
        self.marker = marker
        self.cut = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, client_r: asyncio.StreamReader,
                     client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.redis_port)
        armed = asyncio.Event()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if self.marker in data and not self.cut:
                    armed.set()
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if armed.is_set():  # run by the server; its reply is lost
                    self.cut += 1
                    break
                client_w.write(data)
                await client_w.drain()

        pumps = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass  # the hop closes with its test
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            client_w.close()
            server_w.close()


def test_an_answer_stored_whose_reply_was_lost_is_no_lease_lost(
        caplog: pytest.LogCaptureFixture) -> None:
    """The worker's store of an answer ran on the server, and the reply was lost: the try
    again was refused by the fence (the request done), and the worker logged "lease lost;
    its late answer was refused" of an answer its caller had."""
    need_redis_server()
    port = free_port()

    async def run(cutter: ReplyCutter) -> tuple[Request, list[int]]:
        asked: list[int] = []

        async def handler(request: Request) -> dict[str, Any]:
            asked.append(request.payload["n"])
            return {"answer": "forty-two-6x7"}

        # the script the store runs is known to the server already (as once any worker
        # stored an answer): the reply lost is its run's, not a "NOSCRIPT" asking for it
        loader = redis.Redis(port=port)
        loader.script_load(COMPLETE)
        loader.close()
        hop = await cutter.start()
        # reach_now=False: its first look would block this loop, which the hop runs on
        worker_queue = RedisQueue(f"redis://127.0.0.1:{hop}/0", lease_seconds=9,
                                  reach_now=False)
        caller = RedisQueue(f"redis://127.0.0.1:{port}/0", lease_seconds=9)
        try:
            async with serving(worker_queue, handler):
                request_id = caller.submit("chat", {"n": 21}, "interactive").request_id
                answered = await caller.wait(request_id, 30)
        finally:
            worker_queue.close()
            caller.close()
            cutter.server.close()
        return answered, asked

    with caplog.at_level(logging.WARNING, logger="ai_sysadmin.service"), \
            redis_server_process(port):
        cutter = ReplyCutter(port, b"forty-two-6x7")
        answered, asked = asyncio.run(run(cutter))
    assert cutter.cut == 1  # the store's reply was lost
    assert (answered.state, answered.result) == ("done", {"answer": "forty-two-6x7"})
    assert asked == [21]
    assert "lease lost" not in caplog.text, caplog.text


def test_a_question_whose_submit_reply_was_lost_is_taken_out_not_answered_for_nobody() -> None:
    """The server took a person's question and the reply was lost: `ask` failed (the queue
    unreachable) and the question stayed queued at a person's priority, ahead of the
    daemon's investigations, for a worker to answer for nobody."""
    need_redis_server()
    port = free_port()

    async def run(cutter: ReplyCutter) -> tuple[type[BaseException], list[str]]:
        loader = redis.Redis(port=port)
        loader.script_load(SUBMIT)  # known to the server: the reply lost is its run's
        loader.close()
        hop = await cutter.start()
        queue = RedisQueue(f"redis://127.0.0.1:{hop}/0", lease_seconds=9, reach_now=False)
        try:
            llm = QueuedLLM(queue, Priority.INTERACTIVE, timeout=5)
            try:
                await llm([Message("user", "is nginx up? q-marker-7x9")], [])
            except LLMError as exc:
                failure: type[BaseException] = type(exc)
            direct = redis.Redis(port=port, decode_responses=True)
            ids = await asyncio.to_thread(direct.keys, "ai-sysadmin:request:*")
            states = [await asyncio.to_thread(direct.hget, key, "state") for key in ids]
            direct.close()
        finally:
            queue.close()
            cutter.server.close()
        return failure, states

    with redis_server_process(port):
        cutter = ReplyCutter(port, b"q-marker-7x9")
        failure, states = asyncio.run(run(cutter))
    assert cutter.cut == 1
    assert failure is QueueUnreachable
    assert states == ["cancelled"]

