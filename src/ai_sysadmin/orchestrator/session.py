"""A conversation's way to the LLM: the queue, with this process answering the conversation's
own requests when no worker runs, or once the one it relied on is gone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator

from ..aio import settle
from ..config import Settings
from ..errors import ConfigError
from ..llm.client import QueuedLLM
from ..llm.handlers import Handler, build_handler
from ..llm.queue import QueueError, RequestQueue, open_queue
from ..llm.queue.base import WORKER_SILENCE_SECONDS
from ..llm.types import Priority

log = logging.getLogger("ai_sysadmin.service")

#: how long an interrupted session waits for its cancelled worker to give its requests back
STOP_SECONDS = 5.0
#: how often a session that relies on a worker looks whether one still serves the queue
#: (a worker announces itself every fifth of the silence that marks it gone)
WATCH_SECONDS = WORKER_SILENCE_SECONDS / 5


@contextlib.asynccontextmanager
async def llm_session(
    settings: Settings, priority: Priority, coalesce_key: str | None = None
) -> AsyncIterator[QueuedLLM]:
    """Requests go through the queue at ``priority``. With no live worker (no daemon running,
    or a separate worker that is down), this process answers the session's own requests, so
    `ask` works on its own too; a session that found a worker answers them itself from the
    moment none serves the queue (killed mid-conversation), said once, rather than leave
    the person waiting for the queue's timeout. Those alone: the daemon's investigations
    wait for the worker it relies on, and the daemon is never told that one takes its
    requests again (a private worker announces itself to nobody, ``RequestQueue.serve``'s
    ``only``)."""
    queue = open_queue(settings)
    stop = asyncio.Event()
    llm = QueuedLLM(queue, priority, coalesce_key=coalesce_key,
                    timeout=settings.queue.wait_timeout)
    relied = await queue.call(queue.live_workers) > 0
    try:
        # made here, not in the worker's task: an unusable llm.api_key_file killed that task
        # unseen, and `ask` waited the whole queue.wait_timeout, then blamed a missing worker
        handler: Handler | ConfigError = build_handler(settings)
    except ConfigError as exc:
        if not relied:
            queue.close()
            raise
        handler = exc  # the worker it relies on answers with its own settings
    own_worker = asyncio.create_task(_serve_own(queue, settings, llm, stop, relied, handler))
    try:
        yield llm
    except asyncio.CancelledError:
        # interrupted (Ctrl-C): the session's own request is withdrawn already; the worker
        # stops answering it now rather than when the LLM is done
        own_worker.cancel()
        await asyncio.wait({own_worker}, timeout=STOP_SECONDS)
        raise
    finally:
        stop.set()
        if not own_worker.done():
            await settle(own_worker, settings.llm.timeout + 5)
        queue.close()


async def _serve_own(queue: RequestQueue, settings: Settings, llm: QueuedLLM,
                     stop: asyncio.Event, relied: bool, handler: Handler | ConfigError
                     ) -> None:
    """Serve the session's own requests until ``stop``: at once, or, where a worker served
    the queue when it began (``relied``), from the moment none does. ``handler``: the
    error that this machine's llm settings gave instead, where it relied on a worker."""
    if relied:
        if not await _until_unserved(queue, stop):
            return
        if isinstance(handler, ConfigError):
            log.error("the LLM worker serving the queue stopped (none announced itself for "
                      "%g s), and %s cannot answer this conversation's requests itself: %s",
                      WORKER_SILENCE_SECONDS, settings.ai_name, handler,
                      extra={"event": "worker_gone"})
            return
        log.warning("the LLM worker serving the queue stopped (none announced itself for "
                    "%g s): %s answers this conversation's requests itself from now on",
                    WORKER_SILENCE_SECONDS, settings.ai_name, extra={"event": "worker_gone"})
    assert not isinstance(handler, ConfigError)  # raised by llm_session where not relied
    await queue.serve(
        handler, concurrency=settings.queue.concurrency,
        worker_name=f"{socket.gethostname()}-session-{os.getpid()}", stop=stop,
        only=llm.request_ids)


async def _until_unserved(queue: RequestQueue, stop: asyncio.Event) -> bool:
    """True once no worker serves the queue, False once ``stop`` is set first. A queue that
    cannot say now (unreachable) is taken as still served: the worker may be fine, and the
    session's requests would not reach a queue it cannot reach either."""
    stopped = asyncio.create_task(stop.wait())
    try:
        while not stopped.done():
            with contextlib.suppress(QueueError):
                if await queue.call(queue.live_workers) == 0:
                    return True
            await asyncio.wait({stopped}, timeout=WATCH_SECONDS)
        return False
    finally:
        stopped.cancel()
