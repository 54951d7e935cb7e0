"""Fixtures of the queue tests: a real redis-server on 127.0.0.1, each queue backend by name,
worker processes that can be killed, and polling with deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis

from ai_sysadmin.llm.queue import RequestQueue
from ai_sysadmin.llm.queue.base import Handler
from ai_sysadmin.llm.queue.redis_queue import RedisQueue
from ai_sysadmin.llm.queue.sqlite import SqliteQueue
from tests.support.polling import poll_until

WORKER_SCRIPT = Path(__file__).with_name("worker_proc.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def need_redis_server() -> None:
    """Skip without redis-server; in CI (``CI`` set) that is a failure, never a silent skip."""
    if shutil.which("redis-server") is not None:
        return
    reason = "redis-server is not installed (scripts/test.sh installs it)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the Redis queue tests", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def redis_server_process(port: int, password: str | None = None, keep_in: Path | None = None
                         ) -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server on 127.0.0.1:``port``; ``keep_in``: a directory where it keeps every
    write (an append-only file, synced at each), so that one started again there has it all."""
    kept = (["--appendonly", "yes", "--appendfsync", "always", "--dir", str(keep_in)]
            if keep_in is not None else ["--appendonly", "no"])
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         *kept, *(["--requirepass", password] if password else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port, password=password, socket_connect_timeout=0.2)

        def up() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"redis-server exited with {proc.returncode}")
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        poll_until(up, 10, f"redis-server on 127.0.0.1:{port}")
        client.close()
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """One redis-server for the session (no persistence); its base URL."""
    need_redis_server()
    port = free_port()
    with redis_server_process(port):
        yield f"redis://127.0.0.1:{port}"


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """An empty database for this test."""
    url = f"{redis_server}/0"
    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()
    return url


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def queue_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}"
    return request.getfixturevalue("redis_url")


@pytest.fixture
def make_queue(queue_url: str) -> Iterator[Callable[..., RequestQueue]]:
    """A new queue object on this test's storage (call again to "reopen" it)."""
    opened: list[RequestQueue] = []

    def make(lease_seconds: float = 5.0, max_attempts: int = 5) -> RequestQueue:
        queue: RequestQueue
        if queue_url.startswith("sqlite"):
            queue = SqliteQueue(queue_url.removeprefix("sqlite://"),
                                lease_seconds=lease_seconds, max_attempts=max_attempts)
        else:
            queue = RedisQueue(queue_url, lease_seconds=lease_seconds, max_attempts=max_attempts)
        opened.append(queue)
        return queue

    yield make
    for queue in opened:
        queue.close()


@contextlib.asynccontextmanager
async def serving(
    queue: RequestQueue, handler: Handler, *, concurrency: int = 1, name: str = "test-worker"
) -> AsyncIterator[asyncio.Event]:
    """Serve ``queue`` in this event loop for the block; stop and drain at its end."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        queue.serve(handler, concurrency=concurrency, worker_name=name, stop=stop)
    )
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


class WorkerProcess:
    """``worker_proc.py`` serving a queue in a child process; its stderr kept in a file."""

    def __init__(self, url: str, state_dir: Path, lease: float, name: str, log_dir: Path):
        self.name = name
        self.stderr_path = log_dir / f"{name}.stderr"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER_SCRIPT), url, str(state_dir), str(lease), name],
            stdout=subprocess.DEVNULL, stderr=self._stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM and wait: the exit code (a graceful worker exits 0)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._stderr.close()


@pytest.fixture
def worker_process(
    queue_url: str, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(name: str, lease: float) -> WorkerProcess:
        worker = WorkerProcess(queue_url, tmp_path / "state", lease, name, tmp_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        # a test that failed may leave a worker mid-request: kill it rather than fail teardown
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.stop()
