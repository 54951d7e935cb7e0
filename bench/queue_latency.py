"""What the LLM request queue costs, and how long an interactive request waits behind a backlog.

1. Overhead per request: submit + worker claim + a handler that returns at once + wait, against
   calling that handler directly (the no-queue baseline, measured in the same run). Rounds of
   the backends alternate, so load from elsewhere on the machine hits both alike; the median
   round counts. a) the worker in the caller's process (the daemon, `ask` without a daemon);
   b) the worker in another process (`ai-sysadmin worker`, or a daemon serving `ask`).
2. An interactive request behind 50 autonomous ones, concurrency 1, each answered by a scripted
   model over HTTP in 200 ms (tests/support/scripted_model.py, through the real handler and
   Ollama backend; a plain 200 ms sleep when it is not there): its wait until it starts and its
   total latency, in units of one model call timed directly in the same run.

For SQLite, and for Redis when a redis-server binary is on PATH (one is started on 127.0.0.1).

    .venv/bin/python bench/queue_latency.py [--requests 200] [--rounds 5]

Targets: overhead below 5 ms a request; the interactive request waits at most about one
request already in flight.
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
from collections.abc import Iterator, Sequence
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


async def queued_seconds(queue: RequestQueue, count: int, serve: bool = True) -> float:
    """Seconds per request, one at a time; ``serve``: by a worker in this process (else one
    already serving elsewhere)."""
    stop = asyncio.Event()
    serving = asyncio.create_task(
        queue.serve(instant, concurrency=1, worker_name="bench", stop=stop)) if serve else None
    for _ in range(10):  # warm up
        await queue.wait(queue.submit("chat", {}, "interactive").request_id, 30)
    started = time.perf_counter()
    for _ in range(count):
        await queue.wait(queue.submit("chat", {}, "interactive").request_id, 30)
    elapsed = (time.perf_counter() - started) / count
    stop.set()
    if serving is not None:
        await serving
    return elapsed


@contextlib.contextmanager
def worker_process(make: str, url: str) -> Iterator[None]:
    """``--serve`` of this script in a child process, until the block ends."""
    proc = subprocess.Popen([sys.executable, __file__, "--serve", make, url],
                            stdin=subprocess.PIPE)
    try:
        yield
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # the child stops when its stdin ends
        proc.wait(30)


def serve_forever(kind: str, url: str) -> None:
    """The child of :func:`worker_process`: serve with the instant handler until stdin ends."""
    queue = open_backend(kind, url)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(sys.stdin.fileno(), stop.set)
        await queue.serve(instant, concurrency=1, worker_name="bench-child", stop=stop)

    asyncio.run(run())
    queue.close()


def open_backend(kind: str, url: str) -> RequestQueue:
    return SqliteQueue(url) if kind == "sqlite" else RedisQueue(url)


async def overhead_rounds(
    backends: Sequence[tuple[str, str]], count: int, rounds: int, other_process: bool
) -> dict[str, float]:
    """The median over ``rounds`` of each backend's seconds per request, rounds alternating."""
    seen: dict[str, list[float]] = {name: [] for name, _ in backends}
    for _ in range(rounds):
        for name, url in backends:
            queue = open_backend(name, url)
            if other_process:
                live = queue.live_workers()
                with worker_process(name, url):
                    deadline = time.monotonic() + 30
                    while queue.live_workers() == live and time.monotonic() < deadline:
                        await asyncio.sleep(0.01)
                    seen[name].append(await queued_seconds(queue, count, serve=False))
            else:
                seen[name].append(await queued_seconds(queue, count))
            queue.close()
    return {name: statistics.median(values) for name, values in seen.items()}


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


def print_overhead(title: str, per: dict[str, float], direct: float, unit: float) -> None:
    print(f"\n{title}")
    for name, seconds in per.items():
        print(f"   {name:<7} {seconds * 1e3:7.2f} ms/request = {seconds / direct:,.0f}x the direct "
              f"call = {seconds / unit:.2%} of one model call")
    if "redis" in per:
        print(f"   redis / sqlite: {per['redis'] / per['sqlite']:.3g}x   (target: below 5 ms)")


async def main_async(count: int, rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="queue-bench-"))
    try:
        await measure(tmp, count, rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def measure(tmp: Path, count: int, rounds: int) -> None:
    # at least one: a run of fewer than 20 requests still gets its row 1b
    other = max(1, count // 20)
    with redis_server() as redis_url:
        backends = [("sqlite", str(tmp / "overhead.db"))]
        if redis_url:
            backends.append(("redis", redis_url))
        else:
            print("(no redis-server on PATH: Redis skipped)")

        def fresh(name: str) -> RequestQueue:
            if name == "redis" and redis_url:
                redis.Redis.from_url(redis_url).flushall()
                return RedisQueue(redis_url)
            return SqliteQueue(tmp / f"q{time.monotonic_ns()}.db")

        with model_handler(tmp / "state") as (handler, payload, what):
            calls = [await direct_seconds(handler, 1, payload) for _ in range(5)]
            unit = statistics.median(calls)
            direct = await direct_seconds(instant, count)
            print(f"baseline, called directly: a handler that returns at once "
                  f"{direct * 1e6:.1f} µs; one model call {unit * 1e3:.1f} ms (median of 5)")
            print(f"  model: {what}")
            print_overhead(
                f"1a. queue overhead, worker in this process: {count} sequential requests, "
                f"handler returns at once, median of {rounds} alternating rounds",
                await overhead_rounds(backends, count, rounds, False), direct, unit)
            print_overhead(
                f"1b. the same, worker in another process: {other} requests, "
                f"median of {rounds} rounds",
                await overhead_rounds(backends, other, rounds, True), direct, unit)

            print(f"\n2. one interactive request behind {BACKLOG} autonomous, concurrency 1 "
                  f"(unit: one model call, {unit * 1e3:.0f} ms)")
            for name, _ in backends:
                queue = fresh(name)
                wait, total = await interactive_behind_backlog(queue, handler, payload)
                queue.close()
                print(f"   {name:<7} wait until started {wait * 1e3:6.1f} ms = {wait / unit:4.2f} "
                      f"units; total latency {total * 1e3:6.1f} ms = {total / unit:4.2f} units "
                      f"(in arrival order it would wait ~{BACKLOG} units)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve", nargs=2, metavar=("BACKEND", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_forever(*args.serve)
        return
    asyncio.run(main_async(args.requests, args.rounds))


if __name__ == "__main__":
    main()
