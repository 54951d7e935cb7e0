"""A conversation's way to the LLM: the queue, with this process answering the conversation's
own requests when no worker runs."""

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
    """Requests go through the queue at ``priority``. With no live worker (no daemon running,
    or a separate worker that is down), this process answers the session's own requests, so
    `ask` works on its own too. Those alone: the daemon's investigations wait for the worker
    it relies on, and the daemon is never told that one takes its requests again (a private
    worker announces itself to nobody, ``RequestQueue.serve``'s ``only``)."""
    queue = open_queue(settings)
    stop = asyncio.Event()
    llm = QueuedLLM(queue, priority, coalesce_key=coalesce_key,
                    timeout=settings.queue.wait_timeout)
    own_worker = None
    if await queue.call(queue.live_workers) == 0:
        own_worker = asyncio.create_task(queue.serve(
            build_handler(settings), concurrency=settings.queue.concurrency,
            worker_name=f"{socket.gethostname()}-session-{os.getpid()}", stop=stop,
            only=llm.request_ids))
    try:
        yield llm
    except asyncio.CancelledError:
        # interrupted (Ctrl-C): the session's own request is withdrawn already; the worker
        # stops answering it now rather than when the LLM is done
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
