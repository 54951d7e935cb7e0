"""Crashed and stalled workers: a request in flight goes back to pending when its lease expires,
another worker answers it, and it is answered exactly once. Real worker processes, real signals."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_sysadmin.llm.queue import Request, RequestQueue
from tests.support.polling import poll_until

from .conftest import WorkerProcess, serving

# short enough for a quick test, long enough that a loaded 2-core CI machine still renews it
LEASE = 2.0
pytestmark = pytest.mark.slow


def log_lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def started_by(path: Path, name: str) -> bool:
    return any(line[:2] == ["start", name] for line in log_lines(path))


def test_a_request_whose_worker_was_killed_is_answered_once_by_another(
    make_queue: Callable[..., RequestQueue],
    worker_process: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    queue = make_queue(lease_seconds=LEASE)
    log = tmp_path / "handler.log"
    request_id = queue.submit(
        "chat", {"log": str(log), "first_sleep": 3600}, "autonomous"
    ).request_id

    first = worker_process("w1", LEASE)
    poll_until(lambda: started_by(log, "w1"), 30, "w1 to start the request")
    assert queue.get(request_id).state == "in_flight"
    first.signal(signal.SIGKILL)
    first.proc.wait(10)

    poll_until(lambda: queue.get(request_id).state == "pending", 10,
               "the lease of the killed worker to expire")
    second = worker_process("w2", LEASE)
    answered = poll_until(
        lambda: (r := queue.get(request_id)).state == "done" and r, 30, "w2 to answer")

    assert answered.result == {"worker": "w2"}
    assert answered.worker == "w2" and answered.attempts == 2
    assert log_lines(log) == [
        ["start", "w1", request_id, "1"],
        ["start", "w2", request_id, "2"],
        ["finish", "w2", request_id],
    ]
    assert second.stop() == 0, second.stderr()
    stats = queue.stats()
    assert (stats.depth, stats.in_flight, stats.done_last_hour) == (0, 0, 1)


def test_a_stalled_worker_that_comes_back_cannot_answer_a_second_time(
    make_queue: Callable[..., RequestQueue],
    worker_process: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    queue = make_queue(lease_seconds=LEASE)
    log = tmp_path / "handler.log"
    request_id = queue.submit(
        "chat", {"log": str(log), "first_sleep": 2 * LEASE}, "interactive"
    ).request_id

    stalled = worker_process("w1", LEASE)
    poll_until(lambda: started_by(log, "w1"), 30, "w1 to start the request")
    stalled.signal(signal.SIGSTOP)  # a frozen VM, a GC pause, a partition
    other = worker_process("w2", LEASE)
    poll_until(lambda: queue.get(request_id).state == "done", 30, "w2 to answer")
    stalled.signal(signal.SIGCONT)

    poll_until(lambda: "lease lost by w1" in stalled.stderr(), 30,
               "w1 to find out that it lost its lease")
    request = queue.get(request_id)
    assert (request.state, request.result, request.worker) == ("done", {"worker": "w2"}, "w2")
    assert ["finish", "w2", request_id] in log_lines(log)
    assert stalled.stop() == 0, stalled.stderr()
    assert other.stop() == 0, other.stderr()
    assert queue.get(request_id).result == {"worker": "w2"}


def test_a_request_whose_workers_keep_dying_fails_with_a_clear_error(
    make_queue: Callable[..., RequestQueue],
    worker_process: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    queue = make_queue(lease_seconds=LEASE, max_attempts=1)
    log = tmp_path / "handler.log"
    request_id = queue.submit(
        "chat", {"log": str(log), "first_sleep": 3600}, "batch"
    ).request_id
    doomed = worker_process("w1", LEASE)
    poll_until(lambda: started_by(log, "w1"), 30, "w1 to start the request")
    doomed.signal(signal.SIGKILL)
    doomed.proc.wait(10)

    async def never(request: Request) -> dict[str, object]:
        raise AssertionError("a request out of attempts was served")

    async def serve_until_failed() -> Request:
        async with serving(queue, never):
            while (request := queue.get(request_id)).state != "failed":
                await asyncio.sleep(0.02)
            return request

    request = asyncio.run(asyncio.wait_for(serve_until_failed(), 30))
    assert request.error is not None
    assert "gave up after 1 attempt(s)" in request.error and "w1" in request.error
    assert queue.stats().failed_last_hour == 1
