"""What the LLM request queue costs, and how long an interactive request waits behind a backlog.

1. Overhead per request: submit + worker claim + a handler that returns at once + wait, against
   calling that handler directly (the no-queue baseline, measured in the same run).
2. An interactive request behind 50 autonomous ones, concurrency 1, each answered by a scripted
   model over HTTP in 200 ms (tests/support/scripted_model.py, through the real handler and
   Ollama backend; a plain 200 ms sleep when it is not there): its wait until it starts and its
   total latency, in units of one model call timed directly in the same run.

For SQLite, and for Redis when a redis-server binary is on PATH (one is started on 127.0.0.1).

    .venv/bin/python bench/queue_latency.py [--requests 200]

Target: the interactive request waits at most about one request already in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis

from ai_sysadmin.config import LLMSettings, Settings
from ai_sysadmin.llm.handlers import build_handler, chat_payload
from ai_sysadmin.llm.queue import Handler, Request, RequestQueue
from ai_sysadmin.llm.queue.redis_queue import RedisQueue
from ai_sysadmin.llm.queue.sqlite import SqliteQueue
from ai_sysadmin.llm.types import Message, Priority

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
try:
    from tests.support.scripted_model import ScriptedModel, delay, say
except ImportError:  # the bench also runs without the test tree
    ScriptedModel = None  # type: ignore[assignment,misc]

MODEL_SECONDS = 0.2
BACKLOG = 50


async def instant(request: Request) -> dict[str, Any]:
    return {"ok": True}


def probe(payload: dict[str, Any]) -> Request:
    return Request(id="q-probe", kind="chat", priority=Priority.INTERACTIVE, payload=payload,
                   state="in_flight", created_at=time.time())


async def direct_seconds(handler: Handler, count: int, payload: dict[str, Any] | None = None
                         ) -> float:
    request = probe(payload or {})
    started = time.perf_counter()
    for _ in range(count):
        await handler(request)
    return (time.perf_counter() - started) / count


async def queued_seconds(queue: RequestQueue, count: int) -> float:
    stop = asyncio.Event()
    serving = asyncio.create_task(
        queue.serve(instant, concurrency=1, worker_name="bench", stop=stop))
    for _ in range(10):  # warm up
        await queue.wait(queue.submit("chat", {}, "interactive").request_id, 30)
    started = time.perf_counter()
    for _ in range(count):
        await queue.wait(queue.submit("chat", {}, "interactive").request_id, 30)
    elapsed = (time.perf_counter() - started) / count
    stop.set()
    await serving
    return elapsed


async def interactive_behind_backlog(
    queue: RequestQueue, handler: Handler, payload: dict[str, Any]
) -> tuple[float, float]:
    """(wait until started, total latency) of one interactive request submitted while the
    first of ``BACKLOG`` autonomous ones is in flight."""
    backlog = [queue.submit("chat", payload, "autonomous").request_id for _ in range(BACKLOG)]
    stop = asyncio.Event()
    serving = asyncio.create_task(
        queue.serve(handler, concurrency=1, worker_name="bench", stop=stop))
    deadline = time.monotonic() + 30
    while queue.get(backlog[0]).state != "in_flight":
        if time.monotonic() > deadline:
            raise SystemExit("the first autonomous request never started")
        await asyncio.sleep(0.002)
    submitted = time.time()
    request = await queue.wait(queue.submit("chat", payload, "interactive").request_id, 60)
    total = time.time() - submitted
    stop.set()
    await serving  # finishes the request in flight; the rest of the backlog stays queued
    assert request.state == "done" and request.started_at is not None, request
    return request.started_at - request.created_at, total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    if shutil.which("redis-server") is None:
        yield None
        return
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("redis-server did not start") from None
                time.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def model_handler(state: Path) -> Iterator[tuple[Handler, dict[str, Any], str]]:
    """The handler of the backlog test, the payload it expects, and what it is."""
    if ScriptedModel is None:
        async def sleeper(request: Request) -> dict[str, Any]:
            await asyncio.sleep(MODEL_SECONDS)
            return {}

        yield sleeper, {}, f"asyncio.sleep({MODEL_SECONDS})"
        return
    with ScriptedModel([delay(MODEL_SECONDS, say("ok"))] * (4 * BACKLOG)) as model:
        settings = Settings(ai_name="bench", state_dir=state,
                            llm=LLMSettings(url=model.url, model="scripted", timeout=30))
        payload = chat_payload([Message("user", "status?")], [])
        yield (build_handler(settings), payload,
               f"scripted model over HTTP (Ollama protocol), {MODEL_SECONDS * 1000:.0f} ms a call")


async def main_async(count: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="queue-bench-"))
    with redis_server() as redis_url:
        backends: list[tuple[str, Callable[[], RequestQueue]]] = [
            ("sqlite", lambda: SqliteQueue(tmp / f"q{time.monotonic_ns()}.db")),
        ]
        if redis_url:
            def fresh_redis() -> RequestQueue:
                redis.Redis.from_url(redis_url).flushall()
                return RedisQueue(redis_url)

            backends.append(("redis", fresh_redis))
        else:
            print("(no redis-server on PATH: Redis skipped)")

        with model_handler(tmp / "state") as (handler, payload, what):
            calls = [await direct_seconds(handler, 1, payload) for _ in range(5)]
            unit = statistics.median(calls)
            direct = await direct_seconds(instant, count)
            print(f"baseline, called directly: a handler that returns at once "
                  f"{direct * 1e6:.1f} µs; one model call {unit * 1e3:.1f} ms (median of 5)")
            print(f"  model: {what}")
            print(f"\n1. queue overhead: {count} sequential requests, handler returns at once")
            for name, make in backends:
                queue = make()
                per = await queued_seconds(queue, count)
                queue.close()
                print(f"   {name:<7} {per * 1e3:6.2f} ms/request = {per / direct:,.0f}x the "
                      f"direct call = {per / unit:.2%} of one model call")

            print(f"\n2. one interactive request behind {BACKLOG} autonomous, concurrency 1 "
                  f"(unit: one model call, {unit * 1e3:.0f} ms)")
            for name, make in backends:
                queue = make()
                wait, total = await interactive_behind_backlog(queue, handler, payload)
                queue.close()
                print(f"   {name:<7} wait until started {wait * 1e3:6.1f} ms = {wait / unit:4.2f} "
                      f"units; total latency {total * 1e3:6.1f} ms = {total / unit:4.2f} units "
                      f"(in arrival order it would wait ~{BACKLOG} units)")
    shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main_async(args.requests))


if __name__ == "__main__":
    main()
