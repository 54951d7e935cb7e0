"""A Redis queue's worker outlives the server: while Redis is down it says so and tries again;
once Redis is back it answers new requests without a restart of its own."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from ai_sysadmin.llm.queue import QueueError, Request
from ai_sysadmin.llm.queue.redis_queue import RedisQueue
from tests.support.polling import until

from .conftest import free_port, need_redis_server, redis_server_process, serving

pytestmark = pytest.mark.slow


def test_a_worker_serves_again_once_redis_is_back(caplog: pytest.LogCaptureFixture) -> None:
    need_redis_server()
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    async def handler(request: Request) -> dict[str, Any]:
        return {"n": request.payload["n"]}

    async def run() -> list[Request]:
        with redis_server_process(port):
            queue = RedisQueue(url, lease_seconds=2)
            async with serving(queue, handler):
                first = await queue.wait(queue.submit("chat", {"n": 1}, "batch").request_id, 10)
        with pytest.raises(QueueError, match="cannot add a request"):
            queue.submit("chat", {"n": 0}, "batch")
        stop = asyncio.Event()
        task = asyncio.create_task(queue.serve(handler, worker_name="w", stop=stop))
        await until(lambda: "tries again" in caplog.text, 10, "the worker to say so")
        with redis_server_process(port):  # empty: it keeps nothing on disk
            second = await queue.wait(queue.submit("chat", {"n": 2}, "batch").request_id, 30)
            stop.set()
            await asyncio.wait_for(task, 15)
        queue.close()
        return [first, second]

    with caplog.at_level(logging.WARNING, logger="ai_sysadmin.service"):
        answered = asyncio.run(run())
    assert [(r.state, r.result) for r in answered] == [("done", {"n": 1}), ("done", {"n": 2})]
