"""Investigations waiting for a worker of another process look at their requests at most
every half second once their wait is long: each looked 20 times a second, and with hundreds
of incidents waiting for a worker that did not run, the daemon spent half a core on it. A
person's question is looked for as often as before."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ai_sysadmin.llm.client import QueuedLLM
from ai_sysadmin.llm.queue import QueueTimeout
from ai_sysadmin.llm.queue.sqlite import SqliteQueue
from ai_sysadmin.llm.types import Message, Priority


class Counting(SqliteQueue):
    looks = 0

    def _finished(self, request_id: str) -> bool:
        self.looks += 1
        return super()._finished(request_id)


async def _wait_two_seconds(queue: Counting, priority: Priority, waiters: int) -> int:
    calls = [QueuedLLM(queue, priority, timeout=2.0) for _ in range(waiters)]
    results = await asyncio.gather(*(call([Message("user", f"q{n}")], [])
                                     for n, call in enumerate(calls)), return_exceptions=True)
    assert all(isinstance(r, QueueTimeout) for r in results), results  # no worker runs
    return queue.looks


@pytest.mark.parametrize(("priority", "most", "least"), [
    (Priority.AUTONOMOUS, 15, 3),    # 2 s at 0.5 s at most, after a quick start
    (Priority.INTERACTIVE, None, 30),  # a person's: every 0.05 s, as before
])
def test_a_long_wait_looks_at_its_request_as_often_as_its_caller_needs(
        tmp_path: Path, priority: Priority, most: int | None, least: int) -> None:
    queue = Counting(tmp_path / "queue.db")
    waiters = 20
    try:
        looks = asyncio.run(_wait_two_seconds(queue, priority, waiters)) / waiters
    finally:
        queue.close()
    assert looks >= least
    if most is not None:
        assert looks <= most, looks
