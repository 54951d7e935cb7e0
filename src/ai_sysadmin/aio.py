"""asyncio helpers every layer may use."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(work: Awaitable[T], seconds: float) -> T:
    """``await work``, TimeoutError after ``seconds``; a cancellation of the caller always
    stops it. Instead of ``asyncio.wait_for``, which on Python 3.11 returns the result when
    the caller is cancelled just as ``work`` ends: the caller then went on as if nothing had
    happened (an investigation cancelled at shutdown went on to wait for an LLM answer that
    no worker would give, and the daemon could not stop)."""
    async with asyncio.timeout(seconds):
        return await work
