"""A worker whose Redis queue stays down (a week, a server nobody restarted) says so as it
begins, not at every try: tries come every 30 s at most, and each wrote its warning, 2,880 a
day. Once Redis is back it says so once and serves."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest

from ai_sysadmin.llm.queue import Request, leases
from ai_sysadmin.llm.queue.redis_queue import RedisQueue
from tests.support.polling import until
from tests.support.tcp import OneWayServer

from .conftest import free_port, need_redis_server, redis_server_process

pytestmark = pytest.mark.slow


class DroppingServer(OneWayServer):
    """A port whose server takes each connection and closes it at once (a Redis crashing at
    every start): counts the worker's tries."""

    def __init__(self, port: int) -> None:
        self.tries = 0
        super().__init__(port)

    def answer(self, conn: socket.socket) -> None:
        self.tries += 1


def test_a_worker_says_a_redis_that_stays_down_once_and_once_that_it_is_back(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    need_redis_server()
    # the 30 s between tries made shorter: the tries, not the wait, are what is said
    monkeypatch.setattr(leases, "MAX_BACKOFF_SECONDS", 0.2)
    port = free_port()

    async def handler(request: Request) -> dict[str, Any]:
        return {"n": request.payload["n"]}

    async def run() -> tuple[int, Request]:
        down = DroppingServer(port)
        queue = RedisQueue(f"redis://127.0.0.1:{port}/0", lease_seconds=2, reach_now=False)
        stop = asyncio.Event()
        task = asyncio.create_task(queue.serve(handler, worker_name="w", stop=stop))
        try:
            await until(lambda: down.tries >= 10, 30, "ten tries of the worker")
            tries = down.tries
            down.close()
            with redis_server_process(port):
                answered = await queue.wait(queue.submit("chat", {"n": 2}, "batch").request_id,
                                            30)
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
            queue.close()
        return tries, answered

    with caplog.at_level(logging.INFO, logger="ai_sysadmin.service"):
        tries, answered = asyncio.run(run())
    said = [r.getMessage() for r in caplog.records if "worker w" in r.getMessage()]
    warned = [m for m in said if "tries again" in m]
    # each error once (a connection closed, or reset, as the tries meet them)
    assert tries >= 10 and 1 <= len(warned) == len(set(warned)) <= 3, said
    assert said.count("worker w reaches the queue again") == 1
    assert (answered.state, answered.result) == ("done", {"n": 2})


def test_a_worker_that_leaves_the_requests_to_others_is_back_with_the_queue_too(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker whose LLM is down defers to another (``serve``'s ``defers``): it reaches
    the queue all the same, so once Redis is back it says so, and announces itself at its
    usual pace, not at the pause an outage grew (up to 30 s: unlisted between two, where a
    worker lasts 5 s, and a client then served its own requests with its own llm.url)."""
    need_redis_server()
    monkeypatch.setattr(leases, "MAX_BACKOFF_SECONDS", 0.2)
    port = free_port()

    async def handler(request: Request) -> dict[str, Any]:
        return {}

    def back() -> bool:
        return any(r.getMessage() == "worker w reaches the queue again" for r in caplog.records)

    async def run() -> int:
        down = DroppingServer(port)
        queue = RedisQueue(f"redis://127.0.0.1:{port}/0", lease_seconds=2, reach_now=False)
        stop = asyncio.Event()
        task = asyncio.create_task(queue.serve(handler, worker_name="w", stop=stop,
                                               defers=lambda: True))
        try:
            await until(lambda: down.tries >= 3, 30, "tries of the worker")
            down.close()
            with redis_server_process(port):
                await until(back, 30, "the worker to say the queue is back")
                await until(queue.live_workers, 5, "the worker to announce itself")
                return queue.live_workers()
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
            queue.close()

    with caplog.at_level(logging.INFO, logger="ai_sysadmin.service"):
        assert asyncio.run(run()) == 1
