"""The worker side shared by the backends: claim a request under a lease, renew it while the
handler runs, store the answer only while the lease is still ours.

A backend supplies the fenced steps (:meth:`LeasedQueue.claim`, ``renew``, ``complete``,
``release``) as blocking calls; :meth:`LeasedQueue.serve` runs them in threads around handlers
on the caller's event loop. The worker and the attempt number of a :class:`Claim` fence every
write, so a worker that lost its lease can neither renew it nor store its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import NotFoundError
from ..types import Priority
from .base import (
    WORKER_SILENCE_SECONDS,
    Handler,
    QueueError,
    QueueUnreachable,
    Request,
    RequestQueue,
    run_handler,
)

log = logging.getLogger("ai_sysadmin.service")
#: the longest pause between two tries of a worker whose queue is unreachable
MAX_BACKOFF_SECONDS = 30.0
#: the errors of one outage of the queue a worker remembers having said
SAID_MAX = 16
#: after answering a person's question, how long a worker waits for its next turn before it
#: takes the daemon's work: a conversation's tools run between its turns, and a worker that
#: took an investigation's step meanwhile kept the person waiting for all of that step
LINGER_SECONDS = 2.0

#: how often a worker looks whether the request it answers was cancelled by another process
#: (one row's state by its key, or one hash field: cheap on SQLite and on Redis)
CANCEL_POLL = 0.5

#: waits until another process may have added work (returns early or after a while)
Notice = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Claim:
    """One attempt at one request: the worker and the attempt number fence every later write."""

    request: Request
    worker: str
    attempt: int


class LeasedQueue(RequestQueue):
    """A queue whose workers hold requests under leases; see the module docstring."""

    #: how long an idle worker waits before it looks for work (and expired leases) again
    idle_poll: float = 0.5

    @abstractmethod
    def claim(self, worker: str, only: Sequence[str] | None = None,
              most: Priority | None = None) -> Claim | None:
        """Take the first pending request (priority, then arrival), of those whose ids are in
        ``only`` where given, of priority ``most`` or higher where given, and lease it to
        ``worker``; expired leases go back to pending first (or fail once their attempts are
        spent)."""

    @abstractmethod
    def renew(self, claim: Claim) -> bool:
        """Extend the lease; False when the worker lost it (the request is someone else's)."""

    @abstractmethod
    def complete(
        self, claim: Claim, result: dict[str, Any] | None = None, error: str | None = None
    ) -> bool:
        """Store the answer (or the error) if this claim still holds the request; else refuse it
        (False): the request is answered once, by the current lease holder."""

    @abstractmethod
    def release(self, claim: Claim) -> bool:
        """Give a claimed request back unanswered (worker stopping); not counted as an attempt."""

    @abstractmethod
    def announce(self, worker: str, serving: bool, says: str = "") -> None:
        """Tell clients that ``worker`` serves this queue (now), and what it says of itself,
        or that it stopped."""

    @contextlib.asynccontextmanager
    async def _notices(self) -> AsyncIterator[Notice | None]:
        """What tells an idle worker that another process added work; None: it polls."""
        yield None

    async def serve(
        self,
        handler: Handler,
        *,
        concurrency: int = 1,
        worker_name: str,
        stop: asyncio.Event,
        only: Sequence[str] | None = None,
        says: Callable[[], str] | None = None,
        defers: Callable[[], bool] | None = None,
    ) -> None:
        if concurrency < 1:
            raise QueueError(f"concurrency must be at least 1, not {concurrency}")
        if only is None:
            await asyncio.to_thread(self._serving_starts)
        running: set[asyncio.Task[None]] = set()
        # a private worker's requests are submitted in its own process, which wakes it
        # (``_wake``); another process's notice of work is a shared worker's to take
        notices: contextlib.AbstractAsyncContextManager[Notice | None] = (
            contextlib.nullcontext(None) if only is not None else self._notices())
        try:
            async with notices as notice:
                await _Serving(self, handler, concurrency, worker_name, stop, notice,
                               running, only, says, defers).run()
            if running:
                await asyncio.wait(running)
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
            if only is None:
                with contextlib.suppress(QueueError):
                    await asyncio.to_thread(self.announce, worker_name, False)

    def _serving_starts(self) -> None:
        """What a shared worker says of the queue as it starts serving it (a blocking call,
        in a thread): nothing here."""

    async def _answer(self, handler: Handler, claim: Claim) -> None:
        """Run the handler while renewing the lease; store its answer if the lease held."""
        work = asyncio.create_task(run_handler(handler, claim.request))
        try:
            if not await self._hold(work, claim):
                await _cancelled(work)
                log.warning("LLM request %s: lease lost by %s (it expired, or the caller "
                            "gave up); its answer is not stored",
                            claim.request.id, claim.worker)
                return
        except asyncio.CancelledError:
            await _cancelled(work)
            await self._step(self.release, claim, default=False)
            raise
        result, error = work.result()
        if not await self._stored(claim, result, error):
            log.warning("LLM request %s: lease lost by %s; its late answer was refused",
                        claim.request.id, claim.worker)

    async def _stored(self, claim: Claim, result: dict[str, Any] | None,
                      error: str | None) -> bool:
        """The answer stored, tried again while the queue's server does not answer (a
        restart) for as long as the lease surely holds: renewed at most a third of it ago,
        two thirds are left. An answer dropped at a blip of a second was asked of the LLM
        again once the lease ran out. False where the lease was lost (the step's fence)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self.lease_seconds * 2 / 3
        pause = 0.1
        while True:
            try:
                if await asyncio.to_thread(self.complete, claim, result, error):
                    return True
                # a try whose reply was lost (here, or in the client library, which tries a
                # command again on a connection error) stored it, and the fence refuses the
                # next: the answer is there, its lease was never lost
                return await asyncio.to_thread(self._stored_by, claim, result, error)
            except QueueUnreachable as exc:
                if loop.time() + pause >= until:
                    log.warning("LLM request %s: %s; its answer is lost, and its lease, left "
                                "to expire, gives it to another attempt", claim.request.id, exc)
                    return True  # said here: no second, wrong reason
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
            except QueueError as exc:
                log.warning("LLM request %s: %s", claim.request.id, exc)
                return True

    def _stored_by(self, claim: Claim, result: dict[str, Any] | None,
                   error: str | None) -> bool:
        """Whether the request holds what ``claim`` stored (its worker and attempt, the
        fence every write passes, and its answer: a request whose lease ran out on its last
        attempt was failed by the queue under the same worker and attempt), a blocking call:
        by a try whose reply never came back."""
        try:
            request = self.get(claim.request.id)
        except (NotFoundError, QueueError):
            return False
        stored = ("failed", None, error) if error is not None else ("done", result, None)
        return (request.worker == claim.worker and request.attempts == claim.attempt
                and (request.state, request.result, request.error) == stored)

    async def _hold(self, work: asyncio.Task[Any], claim: Claim) -> bool:
        """Wait for ``work``, renewing the lease every third of it; False once the lease is
        lost. A change to the queue in this process (:meth:`_wake`: a caller here cancelled
        the request, e.g. `ask` stopped by Ctrl-C) is looked at at once, not at the next
        renewal: the caller's process waits for its own worker, and the LLM's slot is free
        again. A cancellation by another process (the worker is the daemon's, or `ai-sysadmin
        worker`) is seen within :data:`CANCEL_POLL`: found only at the next renewal, the LLM
        answered a withdrawn question for up to 20 s while the next one waited."""
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        waker = (loop, changed)
        self._register(waker)
        try:
            renew_at = loop.time() + self.lease_seconds / 3
            look_at = loop.time() + CANCEL_POLL
            while True:
                woken = asyncio.create_task(changed.wait())
                try:
                    done, _ = await asyncio.wait(
                        {work, woken}, timeout=max(min(renew_at, look_at) - loop.time(), 0.0),
                        return_when=asyncio.FIRST_COMPLETED)
                finally:
                    # not awaited: a cancellation of this task landing there would be lost
                    woken.cancel()
                if work in done:
                    return True
                if changed.is_set() or loop.time() < renew_at:
                    changed.clear()  # before the look: a change during it wakes again
                    if await self._ended(claim.request.id):
                        return False
                    look_at = loop.time() + CANCEL_POLL
                    continue
                if not await self._step(self.renew, claim, default=True):
                    return False
                renew_at = loop.time() + self.lease_seconds / 3
        finally:
            self._unregister(waker)

    async def _ended(self, request_id: str) -> bool:
        """Whether the request is finished (cancelled by its caller, or answered by another
        lease holder) or gone; an unreachable queue says no: the renewal decides later."""
        try:
            return await asyncio.to_thread(self._finished, request_id)
        except NotFoundError:
            return True
        except QueueError:
            return False

    async def _step(self, step: Callable[..., bool], claim: Claim, *args: Any,
                    default: bool) -> bool:
        """One fenced step in a thread. An unreachable queue is logged, and the step answers
        ``default`` so that the caller adds no second, wrong reason: a renewal is tried again
        at the next beat; an answer that cannot be stored is lost, and its lease, left to
        expire, gives the request to another attempt."""
        try:
            return await asyncio.to_thread(step, claim, *args)
        except QueueError as exc:
            log.warning("LLM request %s: %s", claim.request.id, exc)
            return default


class _Serving:
    """One run of :meth:`LeasedQueue.serve`: its loop and what the loop waits on."""

    def __init__(self, queue: LeasedQueue, handler: Handler, concurrency: int, name: str,
                 stop: asyncio.Event, notice: Notice | None,
                 running: set[asyncio.Task[None]], only: Sequence[str] | None,
                 says: Callable[[], str] | None = None,
                 defers: Callable[[], bool] | None = None) -> None:
        self.queue = queue
        self.says = says
        self.defers = defers
        #: whether it left the requests to others at its last look: it takes no notice of
        #: new work then, which would wake it instead of a worker that takes the work
        self.deferring = False
        #: what the last announcement said
        self.said_last = ""
        self.only = only
        self.handler = handler
        self.concurrency = concurrency
        self.name = name
        self.stop = stop
        self.notice = notice
        self.running = running
        self.wake = asyncio.Event()
        self.announced = float("-inf")
        self.backoff = 0.0
        #: the queue's errors said in this outage: a Redis down for a week is said as it
        #: begins and as its error changes, not every MAX_BACKOFF_SECONDS while it lasts (a
        #: connection closed, then reset: each said once); at most SAID_MAX of them
        self.said: dict[str, None] = {}
        #: the requests of a person (Priority.INTERACTIVE) being answered
        self.people: set[asyncio.Task[None]] = set()
        #: until when, after a person's answer, only a person's request is taken (the next
        #: turn of their conversation, most likely)
        self.linger_until = float("-inf")

    async def run(self) -> None:
        waker = (asyncio.get_running_loop(), self.wake)
        self.queue._register(waker)
        stop_task = asyncio.create_task(self.stop.wait())
        notice_task: asyncio.Task[object] | None = None
        try:
            while not self.stop.is_set():
                self.wake.clear()
                lingering = self.linger_until - time.monotonic()
                # after a person's answer: their next turn, nothing of the daemon's yet
                await self._take_work(Priority.INTERACTIVE if lingering > 0 else None)
                waits: set[asyncio.Future[Any]] = {stop_task, *self.running}
                # only a worker with a free slot takes a notice: a busy one would steal it
                # from an idle worker elsewhere
                # nor one whose queue does not answer: a notice that fails returns at once,
                # and the backoff said in the log was never waited
                if (self.notice is not None and len(self.running) < self.concurrency
                        and not self.deferring and not self.backoff):
                    if notice_task is None or notice_task.done():
                        notice_task = asyncio.create_task(self.notice())
                    waits.add(notice_task)
                wake_task = asyncio.create_task(self.wake.wait())
                pause = min(self._pause(), lingering) if lingering > 0 else self._pause()
                done, _ = await asyncio.wait(waits | {wake_task}, timeout=pause,
                                             return_when=asyncio.FIRST_COMPLETED)
                wake_task.cancel()
                self.running -= done
                if done & self.people:
                    self.people -= done
                    self.linger_until = time.monotonic() + LINGER_SECONDS
        finally:
            self.queue._unregister(waker)
            for task in (stop_task, notice_task):
                if task is not None:
                    await _cancelled(task)

    async def _take_work(self, most: Priority | None = None) -> None:
        """Announce this worker (a private one never), and claim requests (of priority
        ``most`` or higher, where given) until the slots are full or none is left; an
        unreachable queue is tried again later, with a growing pause."""
        queue = self.queue
        try:
            private = self.only is not None
            says = "" if self.says is None else self.says()
            if not private and (time.monotonic() - self.announced > WORKER_SILENCE_SECONDS / 5
                                or says != self.said_last):
                await asyncio.to_thread(queue.announce, self.name, True, says)
                self.announced, self.said_last = time.monotonic(), says
            # a worker that defers reached the queue all the same (its pause is reset
            # below); it looks again at the next turn of the loop
            self.deferring = self.defers is not None and await asyncio.to_thread(self.defers)
            while (not self.deferring and len(self.running) < self.concurrency
                   and not self.stop.is_set()):
                # the ids as they are now, read here: the owner adds to them on this loop
                only = None if self.only is None else tuple(self.only)
                if only == ():
                    break
                claim = await asyncio.to_thread(queue.claim, self.name, only, most)
                if claim is None:
                    break
                task = asyncio.create_task(queue._answer(self.handler, claim))
                self.running.add(task)
                if claim.request.priority == Priority.INTERACTIVE and only is None:
                    self.people.add(task)
        except QueueError as exc:
            self.backoff = min(max(2 * self.backoff, queue.idle_poll), MAX_BACKOFF_SECONDS)
            if str(exc) not in self.said:
                log.warning("%s; worker %s tries again in %.1f s, then at most every %g s "
                            "(said again if the error changes)", exc, self.name, self.backoff,
                            MAX_BACKOFF_SECONDS, extra={"event": "worker_queue_failed"})
                self.said[str(exc)] = None
                if len(self.said) > SAID_MAX:
                    del self.said[next(iter(self.said))]
            return
        self.backoff = 0.0
        if self.said:
            log.info("worker %s reaches the queue again", self.name,
                     extra={"event": "worker_queue_back"})
            self.said = {}

    def _pause(self) -> float:
        return self.backoff or self.queue.idle_poll


async def _cancelled(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait until it has stopped, whatever it ends with."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
