"""Waiting for what a test expects: polled with a deadline, never slept on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

#: long, as it only runs out when a test fails: a busy machine (CI's two cores) is slow, and
#: retries back off (each failed investigation doubles the wait for the next)
TIMEOUT = 90.0


def poll_until(check: Callable[[], Any], timeout: float = TIMEOUT, what: str = "the condition",
               interval: float = 0.02) -> Any:
    """``check()``'s first truthy value, polled until ``timeout``; else fail saying ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


async def until(check: Callable[[], Any], timeout: float = TIMEOUT,
                what: str = "the condition", interval: float = 0.02) -> Any:
    """:func:`poll_until` for a test's event loop: it keeps running while this waits."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)
