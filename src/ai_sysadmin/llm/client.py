"""Callers talk to the LLM through the queue: one queued request per completion."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable

from ..errors import NotFoundError
from .backends.base import ChatBackend
from .handlers import chat_payload, chat_result
from .queue.base import (
    BACKGROUND_POLL,
    EXHAUSTED_ERROR,
    QueueTimeout,
    QueueUnreachable,
    Request,
    RequestCancelled,
    RequestQueue,
    Submitted,
)
from .types import (
    ChatResult,
    LLMBadResponse,
    LLMBusy,
    LLMError,
    LLMModelMissing,
    LLMServerError,
    LLMToolsUnsupported,
    LLMUnavailable,
    Message,
    Priority,
    ResponseSchema,
    ToolSpec,
)

#: how a request whose workers kept dying failed (the queue's words, before their numbers)
_EXHAUSTED = EXHAUSTED_ERROR.partition("{")[0]
#: a worker stores a failure as "TypeName: message"; these come back as their own type
_TYPED: dict[str, type[LLMError]] = {
    cls.__name__: cls for cls in (LLMUnavailable, LLMBusy, LLMBadResponse, LLMModelMissing,
                                  LLMServerError, LLMToolsUnsupported)}


def _abandon_late(queue: RequestQueue, submitting: asyncio.Future[Submitted]) -> None:
    """Take out of ``queue`` what a submit its caller stopped waiting for put in (unless
    another caller joined it)."""
    if submitting.cancelled() or submitting.exception() is not None:
        return
    submitted = submitting.result()
    if submitted.coalesced:
        return

    async def abandon() -> None:
        with contextlib.suppress(LLMError, NotFoundError):
            await queue.call(queue.abandon, submitted.request_id)

    _LATE.add(task := asyncio.ensure_future(abandon()))
    task.add_done_callback(_LATE.discard)


def _abandon_when_back(queue: RequestQueue, request_id: str) -> None:
    """Take ``request_id`` out of ``queue`` once its server answers again, trying for
    :data:`ABANDON_TRIES_SECONDS`: a wait that ran out while the server was down left the
    request queued, and a worker answered it for nobody once the server was back."""
    async def abandon() -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + ABANDON_TRIES_SECONDS
        while True:
            try:
                await queue.call(queue.abandon, request_id)
                return
            except QueueUnreachable:
                if loop.time() >= end:
                    return
                await asyncio.sleep(ABANDON_RETRY_SECONDS)
            except (LLMError, NotFoundError):
                return

    _LATE.add(task := asyncio.ensure_future(abandon()))
    task.add_done_callback(_LATE.discard)


log = logging.getLogger("ai_sysadmin.service")

#: how long a request waits for a worker before its caller is told (``on_queued``): one
#: taken at once is answered with nothing said
QUEUED_NOTE_SECONDS = 2.0
#: abandons under way (a task nobody holds may be collected before it ran)
_LATE: set[asyncio.Future[None]] = set()
#: how long, and how often, a request left behind with the queue's server down is tried to
#: be taken out (a process that ends first leaves it: a daemon's are taken out)
ABANDON_TRIES_SECONDS = 600.0
ABANDON_RETRY_SECONDS = 2.0


class QueuedLLM:
    """An ``LLMCall`` that submits each completion to the request queue and waits for it."""

    def __init__(
        self,
        queue: object,
        priority: Priority,
        *,
        coalesce_key: str | None = None,
        timeout: float = 300.0,
        temperature: float | None = None,
    ) -> None:
        self.queue = queue
        self.priority = priority
        self.coalesce_key = coalesce_key
        self.timeout = timeout
        self.temperature = temperature
        #: every request it submitted, in order: for the logs, and what a private worker
        #: serves (``RequestQueue.serve``'s ``only``)
        self.request_ids: list[str] = []
        #: told, with how many requests are ahead and how many the workers are answering,
        #: of a request still waiting for a worker :data:`QUEUED_NOTE_SECONDS` after it was
        #: submitted: a person's question behind the daemon's work waited in silence
        self.on_queued: Callable[[int, int], None] | None = None

    async def __call__(self, messages: list[Message], tools: list[ToolSpec], *,
                       schema: ResponseSchema | None = None,
                       max_tokens: int | None = None) -> ChatResult:
        queue: RequestQueue = self.queue  # type: ignore[assignment]
        # recorded by the submit itself, before it wakes a private worker serving these ids
        submitting = asyncio.ensure_future(queue.call(functools.partial(
            queue.submit, "chat",
            chat_payload(messages, tools, self.temperature, schema, max_tokens),
            self.priority, self.coalesce_key, record=self.request_ids)))
        try:
            submitted = await asyncio.shield(submitting)
        except QueueUnreachable as exc:
            # the server may have taken it as the connection was cut: a worker would answer
            # it for nobody, at a person's priority, ahead of the daemon's investigations.
            # Tried at once (a blip is over: `ask` ends with this error), else once back
            if exc.maybe_added is not None:
                try:
                    await asyncio.shield(queue.call(queue.abandon, exc.maybe_added))
                except QueueUnreachable:
                    _abandon_when_back(queue, exc.maybe_added)
                except (LLMError, NotFoundError):
                    pass  # never added
            raise
        except asyncio.CancelledError:
            # a remote queue's submit runs on, on its thread: what it puts in the queue is
            # taken out once it is in, or a worker would answer it for nobody
            submitting.add_done_callback(functools.partial(_abandon_late, queue))
            raise
        try:
            request = await self._answer(queue, submitted.request_id)
        except QueueUnreachable:
            if not submitted.coalesced:
                _abandon_when_back(queue, submitted.request_id)
            raise
        except (QueueTimeout, asyncio.CancelledError):
            # nobody will read its answer: a waiting request leaves the queue, so that a
            # slow LLM is not given every retry's request on top; one that another caller
            # joined stays for that caller
            if not submitted.coalesced:
                try:
                    await asyncio.shield(queue.call(queue.abandon, submitted.request_id))
                except QueueUnreachable as exc:
                    # dropped unsaid, it was answered once the queue was back, for nobody
                    log.warning("the LLM request %s could not be withdrawn (%s): a worker "
                                "may still answer it once the queue is back",
                                submitted.request_id, exc, extra={"event": "withdraw_failed"})
                    _abandon_when_back(queue, submitted.request_id)
                except (LLMError, NotFoundError):
                    pass
            raise
        if request.state == "done" and request.result is not None:
            return chat_result(request.result)
        # The message is what a person reads (`ask` prints it): what went wrong, without the
        # worker's type prefix or the queue id; the ids stay in ``request_ids`` for the logs.
        if request.state == "failed":
            name, _, detail = (request.error or "").partition(": ")
            kind = _TYPED.get(name)
            if kind is not None:
                raise kind(detail)
            if (request.error or "").startswith(_EXHAUSTED):
                # its worker died on it each time (a conversation that runs the server or the
                # worker out of memory): asked again, it does the same, as an unusable answer
                # would; a plain failure was retried for ever with nobody told
                raise LLMBadResponse(request.error)
            raise LLMError(request.error or "the LLM request failed")
        if request.state == "cancelled":
            # by another process (the incident closed): no answer, not the LLM's failure;
            # taken for an unusable answer, it said the LLM and its workers answered again
            raise RequestCancelled(request.id)
        raise LLMBadResponse(f"the LLM request ended as {request.state}")


    async def _answer(self, queue: RequestQueue, request_id: str) -> Request:
        """The request once answered. One that a worker is answering when the wait runs out
        is waited for once more (the worker's own llm.timeout bounds an answer): its turn in
        the queue took the time, and the answer being written would be thrown away."""
        # a person's answer is looked for often; the daemon's, every half second at most
        poll = None if self.priority == Priority.INTERACTIVE else BACKGROUND_POLL
        telling = None if self.on_queued is None else asyncio.ensure_future(
            self._tell_queued(queue, request_id, self.on_queued))
        try:
            try:
                return await queue.wait(request_id, self.timeout, poll)
            except QueueTimeout as exc:
                if exc.request.state != "in_flight":
                    raise
            return await queue.wait(request_id, self.timeout, poll)
        finally:
            if telling is not None:
                telling.cancel()

    @staticmethod
    async def _tell_queued(queue: RequestQueue, request_id: str,
                           tell: Callable[[int, int], None]) -> None:
        """``tell`` of the request once it has waited :data:`QUEUED_NOTE_SECONDS` for a
        worker, if it still does. A look that fails tells nothing: the wait says why."""
        await asyncio.sleep(QUEUED_NOTE_SECONDS)
        with contextlib.suppress(LLMError, NotFoundError):
            request = await queue.call(queue.get, request_id)
            if request.state != "pending":
                return
            ahead = await queue.call(queue.requests_ahead, request)
            answering = (await queue.call(queue.stats)).in_flight
            tell(ahead or 0, answering)


class DirectLLM:
    """An ``LLMCall`` straight to a backend, without the queue: for a caller that owns its
    backend (a test, an evaluation run) and wants the same call shape as :class:`QueuedLLM`."""

    def __init__(self, backend: ChatBackend, temperature: float | None = None) -> None:
        self.backend = backend
        self.temperature = temperature

    async def __call__(self, messages: list[Message], tools: list[ToolSpec], *,
                       schema: ResponseSchema | None = None,
                       max_tokens: int | None = None) -> ChatResult:
        return await self.backend.chat(messages, tools, temperature=self.temperature,
                                       max_tokens=max_tokens, response_schema=schema)
