"""A time limit that never loses its caller's cancellation (asyncio.wait_for on Python 3.11
does, when the cancellation lands as the work ends)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ai_sysadmin.aio import KeyedLocks, check_cancelled, within


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


def test_a_cancellation_wait_for_lost_is_raised_at_the_next_check() -> None:
    # asyncio.wait_for itself (libraries call it: asyncssh's connect) returns, the cancel lost
    assert cancelled_as_the_work_ends(asyncio.wait_for) == "returned 'answer'"

    async def then_checked(work: Awaitable[str], seconds: float) -> str:
        answer = await asyncio.wait_for(work, seconds)
        check_cancelled()
        return answer

    assert cancelled_as_the_work_ends(then_checked) == "cancelled"

    async def not_cancelled() -> None:
        check_cancelled()

    asyncio.run(not_cancelled())  # a task nobody cancelled goes on


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


def test_keyed_locks_serialize_one_key_and_forget_it_afterwards() -> None:
    """One action runs at most once at a time; a daemon that ran a thousand actions keeps
    no lock of any of them."""
    async def go() -> tuple[list[str], int, int]:
        locks = KeyedLocks()
        order: list[str] = []
        first_in = asyncio.Event()
        release = asyncio.Event()

        async def first() -> None:
            async with locks.hold(7):
                order.append("first in")
                first_in.set()
                await release.wait()
                order.append("first out")

        async def second() -> None:
            await first_in.wait()
            async with locks.hold(7):
                order.append("second in")

        async def other_key() -> None:
            await first_in.wait()
            async with locks.hold(8):  # not held up by key 7
                order.append("other key")
            release.set()

        await asyncio.gather(first(), second(), other_key())
        held_after_run = len(locks)
        for action_id in range(1000):
            async with locks.hold(action_id):
                pass
        return order, held_after_run, len(locks)

    order, held_after_run, held_after_many = asyncio.run(go())
    assert order == ["first in", "other key", "first out", "second in"]
    assert held_after_run == 0
    assert held_after_many == 0


def test_keyed_locks_forget_a_key_whose_waiter_was_cancelled_or_holder_failed() -> None:
    async def go() -> int:
        locks = KeyedLocks()
        inside, release = asyncio.Event(), asyncio.Event()

        async def holder() -> None:
            async with locks.hold("a"):
                inside.set()
                await release.wait()
                raise RuntimeError("the action failed")

        async def waiter() -> None:
            async with locks.hold("a"):
                pass

        held = asyncio.ensure_future(holder())
        await inside.wait()
        waiting = asyncio.ensure_future(waiter())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        release.set()
        with pytest.raises(RuntimeError):
            await held
        return len(locks)

    assert asyncio.run(go()) == 0
