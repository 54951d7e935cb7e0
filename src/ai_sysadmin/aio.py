"""asyncio helpers every layer may use."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


async def within(work: Awaitable[T], seconds: float) -> T:
    """``await work``, TimeoutError after ``seconds``; a cancellation of the caller always
    stops it. Instead of ``asyncio.wait_for``, which on Python 3.11 returns the result when
    the caller is cancelled just as ``work`` ends: the caller then went on as if nothing had
    happened (an investigation cancelled at shutdown went on to wait for an LLM answer that
    no worker would give, and the daemon could not stop)."""
    async with asyncio.timeout(seconds):
        return await work


async def settle(work: Awaitable[Any], seconds: float) -> None:
    """Wait at most ``seconds`` for ``work`` to end (a close, a process's exit), for a
    clean-up that goes on either way: what it returns or raises does not matter. Its time
    limit cancels nothing of this task's: a limit by cancellation (``asyncio.timeout``, so
    :func:`within`) misfires on Python 3.11.0-3.11.2, Debian 12's, in a task being cancelled,
    raising its expiry as the task's CancelledError, and what the clean-up had left to do
    (kill a process group, close the next connection) was skipped (CPython gh-102780)."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task}, timeout=seconds)
    finally:
        if not task.done():
            task.cancel()
        elif not task.cancelled():
            task.exception()  # retrieved: a close that failed is no "never retrieved"


def check_cancelled() -> None:
    """CancelledError where this task was cancelled and the cancellation was lost on the
    way. ``asyncio.wait_for`` of Python 3.11, which libraries use (asyncssh's connect),
    returns the result of work that ended just as the cancel came, and the caller goes on;
    the task still counts the cancel asked of it (``Task.cancelling``). A loop that runs
    for months asks at each turn: a follower of a host removed, or one replaced by the
    next, would otherwise follow beside it for good."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class KeyedLocks:
    """One lock per key, kept only while someone holds or waits for it: a daemon that runs
    for months locks a new key (an action id) for every action, and a dict of every lock it
    ever made would only grow."""

    def __init__(self) -> None:
        #: key -> its lock and how many hold or wait for it
        self._held: dict[Hashable, tuple[asyncio.Lock, list[int]]] = {}

    def __len__(self) -> int:
        return len(self._held)

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._held.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._held[key]
