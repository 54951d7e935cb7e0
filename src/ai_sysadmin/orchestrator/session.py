"""A conversation's way to the LLM: the queue, served by this process when no worker runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator

from ..config import Settings
from ..llm.client import QueuedLLM
from ..llm.handlers import build_handler
from ..llm.queue import open_queue
from ..llm.types import Priority

#: how long an interrupted session waits for its cancelled worker to give its requests back
STOP_SECONDS = 5.0


@contextlib.asynccontextmanager
async def llm_session(
    settings: Settings, priority: Priority, coalesce_key: str | None = None
) -> AsyncIterator[QueuedLLM]:
    """Requests go through the queue at ``priority``. With no live worker (no daemon running),
    this process serves the queue itself for the session, so `ask` works on its own too."""
    queue = open_queue(settings)
    stop = asyncio.Event()
    own_worker = None
    if await queue.call(queue.live_workers) == 0:
        own_worker = asyncio.create_task(queue.serve(
            build_handler(settings), concurrency=settings.queue.concurrency,
            worker_name=f"{socket.gethostname()}-session-{os.getpid()}", stop=stop))
    try:
        yield QueuedLLM(queue, priority, coalesce_key=coalesce_key,
                        timeout=settings.queue.wait_timeout)
    except asyncio.CancelledError:
        # interrupted (Ctrl-C): the session's own request is withdrawn already, and one of
        # another caller's that this worker holds goes back to the queue, not waited for
        if own_worker is not None:
            own_worker.cancel()
            await asyncio.wait({own_worker}, timeout=STOP_SECONDS)
        raise
    finally:
        stop.set()
        if own_worker is not None and not own_worker.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(own_worker, settings.llm.timeout + 5)
        queue.close()
