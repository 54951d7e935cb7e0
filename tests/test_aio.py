"""A time limit that never loses its caller's cancellation (asyncio.wait_for on Python 3.11
does, when the cancellation lands as the work ends)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ai_sysadmin.aio import within


def cancelled_as_the_work_ends(limit: Callable[[Awaitable[str], float], Awaitable[Any]]
                               ) -> str:
    async def go() -> str:
        work: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        caller = asyncio.ensure_future(limit(work, 10))
        for _ in range(3):  # the caller is waiting on the work now
            await asyncio.sleep(0)
        work.set_result("answer")  # the work ends ...
        caller.cancel()  # ... and, in the same turn of the loop, the caller is cancelled
        try:
            return f"returned {await caller!r}"
        except asyncio.CancelledError:
            return "cancelled"

    return asyncio.run(go())


def test_a_cancellation_landing_as_the_work_ends_is_kept() -> None:
    assert cancelled_as_the_work_ends(within) == "cancelled"


def test_the_time_limit_still_holds() -> None:
    async def go() -> None:
        await within(asyncio.sleep(30), 0.05)

    with pytest.raises(TimeoutError):
        asyncio.run(go())


def test_a_result_within_the_limit_comes_back() -> None:
    async def answer() -> str:
        await asyncio.sleep(0)
        return "answer"

    assert asyncio.run(within(answer(), 5)) == "answer"
