"""Workers that say whether their LLM answers (llm/readiness.py) on one queue: one whose
server is down leaves the requests to one whose server answers, and takes them where none
does."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.llm.handlers import build_handler, chat_payload
from ai_sysadmin.llm.queue import RequestQueue
from ai_sysadmin.llm.readiness import Readiness, heard
from ai_sysadmin.llm.types import Message
from tests.support.scripted_model import ScriptedModel, say

MakeQueue = Callable[..., RequestQueue]
log = logging.getLogger("ai_sysadmin.test_worker_readiness")


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _settings(tmp_path: Path, url: str) -> Settings:
    return Settings(ai_name="hal", state_dir=tmp_path / "state",
                    llm={"backend": "openai", "url": url, "model": "scripted", "timeout": 10,
                         "connect_timeout": 1},
                    agent={"retry_backoff_seconds": 0.1})


async def _serve(queue: RequestQueue, settings: Settings, name: str,
                 stop: asyncio.Event) -> tuple[Readiness, asyncio.Task[None]]:
    readiness = Readiness(settings, log)

    async def run() -> None:
        async with readiness.watching():
            await queue.serve(build_handler(settings, readiness=readiness), concurrency=1,
                              worker_name=name, stop=stop, says=readiness.says,
                              defers=readiness.defers_to(queue.workers_say, name))

    task = asyncio.create_task(run())
    while readiness.now.ready is None:
        await asyncio.sleep(0.01)
    return readiness, task


def _ask(queue: RequestQueue, n: int) -> list[str]:
    return [queue.submit("chat", chat_payload([Message("user", f"question {k}")], []),
                         "autonomous").request_id for k in range(n)]


def test_a_worker_whose_llm_is_down_leaves_the_requests_to_one_whose_llm_answers(
        make_queue: MakeQueue, tmp_path: Path) -> None:
    queue = make_queue()
    with ScriptedModel([say(f"answer {k}") for k in range(6)]) as model:
        async def run() -> list[tuple[str, str | None]]:
            stop = asyncio.Event()
            down, down_task = await _serve(queue, _settings(tmp_path, _dead_url()), "down",
                                           stop)
            up, up_task = await _serve(queue, _settings(tmp_path, model.url), "up", stop)
            assert (down.now.ready, up.now.ready) == (False, True)
            # what the down worker reads: the up one's word as the queue holds it
            while (said := heard(queue.workers_say()).get("up")) is None or not said.ready:
                await asyncio.sleep(0.01)
            try:
                ids = _ask(queue, 6)
                done = [await queue.wait(i, 20) for i in ids]
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(down_task, up_task), 15)
            return [(r.state, r.worker) for r in done]

        answered = asyncio.run(run())
    assert answered == [("done", "up")] * 6


def test_where_no_workers_llm_answers_the_requests_fail_with_the_servers_error(
        make_queue: MakeQueue, tmp_path: Path) -> None:
    queue = make_queue()
    dead = _dead_url()

    async def run() -> list[tuple[str, str | None, str | None]]:
        stop = asyncio.Event()
        _, task = await _serve(queue, _settings(tmp_path, dead), "down", stop)
        try:
            done = [await queue.wait(i, 20) for i in _ask(queue, 2)]
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
        return [(r.state, r.worker, r.error) for r in done]

    for state, worker, error in asyncio.run(run()):
        assert (state, worker) == ("failed", "down")
        assert error is not None and "cannot connect" in error and dead in error
