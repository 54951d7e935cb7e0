"""The LLM request queue: what a request is, and what every queue backend promises.

One queue entry is one LLM request (one chat completion). Callers :meth:`RequestQueue.submit`
and :meth:`RequestQueue.wait`; workers :meth:`RequestQueue.serve`. Guarantees of every backend:

- order: interactive before autonomous before batch; equal priority in arrival order;
- durability: a submitted request survives a restart of the caller or the worker;
- leases: a request in flight whose worker stops renewing its lease for ``lease_seconds`` goes
  back to pending and is retried, at most :data:`MAX_ATTEMPTS` times in all;
- answered once: a result is stored only by the worker that holds the current lease (a fencing
  token per attempt), so a worker that comes back after losing its lease cannot overwrite it;
- coalescing: a submit whose ``coalesce_key`` and content (kind and payload) match a pending or
  in-flight request returns that request instead of adding one. The content is part of the key
  (:func:`content_key`) so that only a true duplicate is joined: a request never receives the
  answer to another one, e.g. a stale turn of a conversation that died with its daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

from ...errors import NotFoundError
from ..types import LLMError, Priority

T = TypeVar("T")

State = Literal["pending", "in_flight", "done", "failed", "cancelled"]
STATES: tuple[str, ...] = ("pending", "in_flight", "done", "failed", "cancelled")
FINAL_STATES = frozenset({"done", "failed", "cancelled"})

#: claims of one request, crashed or lost ones included, before it fails for good
MAX_ATTEMPTS = 5
#: finished requests are kept this long (for ``queue show`` and the wait statistics)
RETENTION_SECONDS = 7 * 24 * 3600
#: the statistics window of :class:`QueueStats`
STATS_WINDOW_SECONDS = 3600.0
#: failed requests of the window that :class:`QueueStats` lists
FAILED_SHOWN = 5
#: a worker that has not announced itself for this long is gone (it does every fifth of it)
WORKER_SILENCE_SECONDS = 5.0

Handler = Callable[["Request"], Awaitable[dict[str, Any]]]


class QueueError(LLMError):
    """The queue cannot be opened or reached, or was asked something it cannot do."""


#: how often a caller whose queue's server does not answer asks it again while it waits
UNREACHABLE_POLL = 0.5
#: the longest pause between two looks of a caller that is no person (an investigation) at
#: its request, answered by a worker of another process (one of its own wakes it at once):
#: hundreds of incidents waiting for a worker, each looking 20 times a second, took half a
#: core of the daemon's
BACKGROUND_POLL = 0.5


class QueueUnreachable(QueueError):
    """The queue's server does not answer now (refused, timed out, still loading its data),
    though nothing says the config is wrong: later it may."""

    #: of a submit: the id the request has if the server took it before its answer was lost
    #: (a connection cut as the server replied): the caller takes it out once it answers
    maybe_added: str | None = None


class RequestLost(QueueError):
    """A request left the queue while its caller waited for it: the queue lost its data (a
    Redis restarted without persistence, flushed, or evicting keys)."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(f"LLM request {request_id} is no longer in the queue while it was "
                         "waited for: the queue lost its data (a Redis restarted without "
                         "persistence, flushed, or evicting keys); ask again")


class RequestCancelled(QueueError):
    """Another process cancelled the request its caller waited for (its incident closed, its
    host removed): no answer came, and none of the LLM's was refused either, so it tells
    nothing of the LLM server nor of the workers."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(f"LLM request {request_id} was cancelled while it was waited for "
                         "(its incident closed, or its host removed)")


class QueueTimeout(LLMError):
    """The caller stopped waiting. The request stays queued; a :class:`QueuedLLM` that alone
    waited for it then takes it out (``abandon``)."""

    def __init__(self, request: Request, timeout: float, ahead: int | None = None,
                 answering: int | None = None) -> None:
        self.request_id = request.id
        self.request = request
        self.timeout = timeout
        if request.state == "in_flight":
            where = f"it is being answered by {request.worker or 'a worker'}"
        else:
            where = "it is still queued"
            if ahead is not None and answering:
                # the workers' every slot taken by others: "0 request(s) ahead" said nothing
                # was in its way
                where += (f" with {ahead + answering} request(s) ahead of it ({answering} "
                          "being answered)")
            elif ahead is not None:
                where += f" with {ahead} request(s) ahead of it"
        super().__init__(
            f"no answer to LLM request {request.id} after {timeout:g} s: {where}; "
            f"{self._cause(request.id)}"
        )

    @staticmethod
    def _cause(request_id: str) -> str:
        return (f"the LLM is slow or busy: look with `ai-sysadmin queue` or "
                f"`ai-sysadmin queue show {request_id}`")


class NoWorker(QueueTimeout):
    """The caller stopped waiting for a request no worker took, and none serves the queue
    (none announced itself for :data:`WORKER_SILENCE_SECONDS`): a fact of the queue, not a
    slow LLM. The worker (``ai-sysadmin worker``, its own unit) is stopped or dead."""

    @staticmethod
    def _cause(request_id: str) -> str:
        return ("no worker serves the queue (none announced itself): is `ai-sysadmin worker`, "
                "the *-llm-worker unit, running? `ai-sysadmin queue` counts the workers")


def new_request_id() -> str:
    """Sortable by creation time (microseconds), unique by a random suffix."""
    return f"q-{time.time_ns() // 1000:013x}-{secrets.token_hex(3)}"


def as_priority(value: Priority | str | int) -> Priority:
    if isinstance(value, Priority):
        return value
    try:
        return Priority[value.upper()] if isinstance(value, str) else Priority(value)
    except (KeyError, ValueError):
        names = ", ".join(p.name.lower() for p in Priority)
        raise QueueError(f"unknown priority {value!r}; use one of {names}") from None


def effective_state(state: str, lease_until: float | None, now: float) -> str:
    """A request in flight whose lease expired is pending again, whether or not a worker has
    noticed yet (the next claim takes it over, or fails it once its attempts are spent)."""
    if state == "in_flight" and lease_until is not None and lease_until < now:
        return "pending"
    return state


#: the error of a request whose workers kept dying; Redis fills it in from a Lua script
EXHAUSTED_ERROR = (
    "gave up after {attempts} attempt(s): the worker serving it stopped or lost its lease "
    "each time (last: {worker})"
)


def exhausted_error(attempts: int, worker: str | None) -> str:
    return EXHAUSTED_ERROR.format(attempts=attempts, worker=worker or "unknown")


def content_key(coalesce_key: str, kind: str, body: str) -> str:
    """The caller's key joined with a digest of the request's content (``body``: the payload as
    JSON), so that equal keys coalesce only requests that ask the same thing."""
    digest = hashlib.sha256(f"{kind}\0{body}".encode()).hexdigest()[:32]
    return f"{coalesce_key}#{digest}"


@dataclass(frozen=True)
class Request:
    id: str
    kind: str
    priority: Priority
    payload: dict[str, Any]
    state: State
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    worker: str | None = None
    coalesce_key: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    #: until when the current worker holds it (in flight only)
    lease_until: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def wait_seconds(self) -> float | None:
        """From submission to the (last) start of its answer."""
        return None if self.started_at is None else max(0.0, self.started_at - self.created_at)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["priority"] = self.priority.name.lower()
        return data


@dataclass(frozen=True)
class Submitted:
    request_id: str
    #: True when an equal pending or in-flight request was returned instead of a new one
    coalesced: bool


@dataclass(frozen=True)
class QueueStats:
    backend: str
    #: pending requests per priority name, highest priority first
    pending: dict[str, int]
    in_flight: int
    oldest_pending_age: float | None
    #: over the last hour: mean time from submission to start, and how many ended each way
    mean_wait_last_hour: float | None
    done_last_hour: int
    failed_last_hour: int
    in_flight_requests: list[Request] = field(default_factory=list)
    #: the last hour's failed requests, newest first, at most :data:`FAILED_SHOWN`: their ids
    #: are what ``queue show ID`` takes, and their errors say why
    failed_requests: list[Request] = field(default_factory=list)

    @property
    def depth(self) -> int:
        return sum(self.pending.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["depth"] = self.depth
        data["in_flight_requests"] = [
            {k: r.to_dict()[k] for k in ("id", "kind", "priority", "worker", "started_at",
                                         "attempts", "lease_until")}
            for r in self.in_flight_requests
        ]
        data["failed_requests"] = [
            {k: r.to_dict()[k] for k in ("id", "kind", "priority", "finished_at", "attempts",
                                         "error")}
            for r in self.failed_requests
        ]
        return data


def empty_pending() -> dict[str, int]:
    return {p.name.lower(): 0 for p in Priority}


class RequestQueue(ABC):
    """One queue of LLM requests; see the module docstring for what every backend guarantees."""

    #: shown by ``ai-sysadmin queue``; secrets masked
    description: str = ""
    max_attempts: int = MAX_ATTEMPTS
    lease_seconds: float = 60.0
    #: how often :meth:`wait` looks again, at most
    poll_interval: float = 0.05
    #: its calls cross a network (a server that hangs holds them for its socket timeout):
    #: an event loop makes them on a worker thread (:meth:`call`), never on itself
    remote: bool = False

    def reach(self) -> None:  # noqa: B027 - a queue with a server checks it
        """Raise :class:`QueueUnreachable` where the queue's server does not answer now, a
        :class:`QueueError` where it refuses this client; a queue with no server (a file
        here, opened already) is always reached."""

    async def call(self, method: Callable[..., T], *args: Any) -> T:
        """``method(*args)`` of this queue from an event loop: on a worker thread where the
        queue is remote, in place where it is a local file (a thread hop would cost more)."""
        if self.remote:
            return await asyncio.to_thread(method, *args)
        return method(*args)

    def submit(
        self,
        kind: str,
        payload: Mapping[str, Any],
        priority: Priority | str | int,
        coalesce_key: str | None = None,
        record: list[str] | None = None,
    ) -> Submitted:
        """Add a request (JSON-serialisable payload), or return the pending or in-flight one with
        the same ``coalesce_key`` and the same content. ``record``: a list its id is added to
        before this process's workers are woken, the ids a private worker serves (``serve``'s
        ``only``), so that the wake-up finds it there."""
        prio = as_priority(priority)
        # sorted keys: the same content gives the same text, hence the same coalescing key
        body = json.dumps(dict(payload), sort_keys=True)
        key = None if coalesce_key is None else content_key(coalesce_key, kind, body)
        request_id = new_request_id()
        try:
            submitted = self._add(kind, body, prio, key, request_id)
        except QueueUnreachable as exc:
            exc.maybe_added = request_id
            raise
        if record is not None:
            record.append(submitted.request_id)
        if not submitted.coalesced:
            self._wake()
        return submitted

    @abstractmethod
    def _add(self, kind: str, body: str, priority: Priority, key: str | None,
             request_id: str) -> Submitted:
        """Store a pending request as ``request_id``, or return the active one holding
        ``key`` (coalesced)."""

    def now(self) -> float:
        """The clock of this queue's times (``created_at``, ``started_at``, leases): how long a
        request has waited is ``now() - created_at``, whatever this machine's clock says."""
        return time.time()

    @abstractmethod
    def get(self, request_id: str) -> Request:
        """The request as it is now; :class:`NotFoundError` for an unknown (or expired) id."""

    @abstractmethod
    def cancel(self, request_id: str) -> bool:
        """Cancel a request that no worker holds; False when it is in flight or finished."""

    @abstractmethod
    def abandon(self, request_id: str) -> bool:
        """Its submitter waits no more: cancel it, pending or in flight (the worker's lease
        ends and it stops), unless another caller joined it (coalesced); False otherwise."""

    @abstractmethod
    def pending_keyed(self, coalesce_key: str) -> list[str]:
        """The ids of pending requests submitted with ``coalesce_key`` (the caller's key)."""

    def cancel_keyed(self, coalesce_key: str) -> int:
        """Cancel every pending request of one caller (``incident:<id>``), e.g. when its
        incident is closed; one a worker already holds is answered. How many were cancelled."""
        return sum(self.cancel(request_id) for request_id in self.pending_keyed(coalesce_key))

    @abstractmethod
    def stats(self) -> QueueStats: ...

    @abstractmethod
    def requests_ahead(self, request: Request) -> int | None:
        """How many pending requests a worker will take before this one (None: unknown)."""

    @abstractmethod
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
        """Answer requests in priority and arrival order, at most ``concurrency`` at once, until
        ``stop`` is set; then finish the requests in flight and return. A handler's dict is stored
        as the result; an exception it raises fails the request with the error's text.

        ``only``: a private worker, one caller's (`ask`, `chat` with no worker running), that
        takes only the requests whose ids are in it (read at each look, so the caller adds
        its own as it submits them, ``submit``'s ``record``) and never announces itself: it
        serves nobody else, so the queue counts it no worker (:meth:`live_workers`), and a
        daemon waiting on a worker that is down is not told one took its requests.

        ``says``: what the worker says of itself with each announcement (the LLM it serves
        and whether that answers), read by :meth:`workers_say`; told again as soon as it
        changes. ``defers``: asked (in a thread) before each look for work, whether this
        worker leaves the requests to others now (its LLM does not answer and another's
        does); it still announces itself."""

    @abstractmethod
    def live_workers(self) -> int:
        """How many workers serve this queue now, every caller's requests (a caller with none
        serves its own, :meth:`serve`'s ``only``)."""

    @abstractmethod
    def workers_say(self) -> dict[str, str]:
        """What each worker that serves this queue now last said of itself (:meth:`serve`'s
        ``says``), by its name; those that said nothing are left out."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    async def _unserved(self) -> bool:
        """Whether no worker serves the queue now, by the workers' own announcements; a
        queue that cannot say does not say so."""
        try:
            return await self.call(self.live_workers) == 0
        except QueueError:
            return False

    def _finished(self, request_id: str) -> bool:
        """Whether the request is done, failed or cancelled (what :meth:`wait` polls), or gone
        (its data lost, which no more polling brings back)."""
        try:
            return self.get(request_id).finished
        except NotFoundError:
            return True

    async def wait(self, request_id: str, timeout: float, poll: float | None = None
                   ) -> Request:
        """The request once it is done, failed or cancelled. Raises :class:`QueueTimeout` after
        ``timeout`` seconds; the request stays queued (:class:`QueuedLLM` then cancels one
        that only it waited for). ``poll``: the longest pause between two looks at it
        (:attr:`poll_interval` where not given; a worker of this process wakes it at once)."""
        longest = self.poll_interval if poll is None else max(poll, self.poll_interval)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.001
        while True:
            try:
                if await self.call(self._finished, request_id):
                    return await self._still_there(request_id)
            except QueueUnreachable:
                # the queue's server restarting (a blip): the request, and the answer a
                # worker stores meanwhile, outlive it; a caller waits it out within its time
                left = deadline - loop.time()
                if left <= 0:
                    raise
                await self._sleep_or_wake(min(max(self.poll_interval, UNREACHABLE_POLL), left))
                continue
            left = deadline - loop.time()
            if left <= 0:
                request = await self._still_there(request_id)
                if request.finished:  # answered since the last look: the answer is theirs
                    return request
                if request.state != "pending":
                    raise QueueTimeout(request, timeout)
                ahead = await self.call(self.requests_ahead, request)
                answering = (await self.call(self.stats)).in_flight
                if await self._unserved():
                    raise NoWorker(request, timeout, ahead, answering)
                raise QueueTimeout(request, timeout, ahead, answering)
            await self._sleep_or_wake(min(delay, left))
            delay = min(delay * 2, longest)

    async def _still_there(self, request_id: str) -> Request:
        """The request a caller waits for; gone, it was lost (no one waited 7 days for it)."""
        try:
            return await self.call(self.get, request_id)
        except NotFoundError:
            raise RequestLost(request_id) from None

    # -- in-process wake-ups: a waiter or worker in this process hears of a change at once;
    # -- other processes poll (at most ``poll_interval`` apart)

    _wake_lock = threading.Lock()
    _wakers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] | None = None

    def _register(self, waker: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._wake_lock:
            if self._wakers is None:
                self._wakers = set()
            self._wakers.add(waker)

    def _unregister(self, waker: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._wake_lock:
            if self._wakers is not None:
                self._wakers.discard(waker)

    def _wake(self) -> None:
        """Something changed (submitted, answered): wake this process's waiters and workers."""
        with self._wake_lock:
            wakers = list(self._wakers or ())
        for loop, event in wakers:
            with contextlib.suppress(RuntimeError):  # its loop is closed
                loop.call_soon_threadsafe(event.set)

    async def _sleep_or_wake(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        waker = (loop, event)
        self._register(waker)
        # The time is up when a timer sets the same event: no cancellation is involved, so
        # none can be mistaken for another. On Python 3.11 wait_for swallows a cancellation
        # that lands as the event fires, and asyncio.timeout one that was requested just
        # before it was entered, if its own (a few ms here) expires too: either way a
        # cancelled waiter kept polling, and a daemon could not stop.
        timer = loop.call_later(seconds, event.set)
        try:
            await event.wait()
        finally:
            timer.cancel()
            self._unregister(waker)


async def run_handler(
    handler: Handler, request: Request
) -> tuple[dict[str, Any] | None, str | None]:
    """(result, None), or (None, error text) when the handler raised or returned no JSON dict."""
    try:
        result = await handler(request)
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if not isinstance(result, dict):
        return None, f"the handler returned {type(result).__name__}, not a dict"
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        return None, f"the handler's result is not JSON: {exc}"
    return result, None


def not_found(request_id: str) -> NotFoundError:
    return NotFoundError(
        f"no LLM request {request_id!r} in the queue (finished requests are kept "
        f"{RETENTION_SECONDS // 86400} days)"
    )
