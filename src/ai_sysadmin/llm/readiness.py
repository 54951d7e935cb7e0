"""What a worker knows of the LLM it serves, said in the queue with its announcements.

The worker reaches the LLM server, not the process that asks: a worker on another machine
(a Redis queue) may serve a server the asker's ``llm.url`` does not name or cannot reach. So
the worker says which server and model it serves and whether they answer
(:meth:`Readiness.says`, read back with :func:`heard`), and ``llm status``, ``chat``'s warning
and the daemon's outage probe judge by that. What it says comes from its own probes (the
server's list of models) and from each chat it sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..config import Settings
from .backends import probe
from .types import BackendStatus, LLMBusy, LLMModelMissing, LLMUnavailable
from .urls import masked_url

#: how often a worker asks again while the server is ready (each chat says so too): a
#: server gone quiet is said within this
RECHECK_READY_SECONDS = 300.0
#: the shortest wait between probes of a server that is not ready, whatever
#: ``agent.retry_backoff_seconds`` says: a probe costs the worker 50 to 100 ms of CPU, and a
#: backoff of a millisecond kept a whole core busy for as long as the server was down
PROBE_AT_MOST_EVERY_SECONDS = 1.0


@dataclass(frozen=True)
class Served:
    """What one worker says of the LLM it serves."""

    backend: str
    url: str
    model: str
    #: None: not asked yet
    ready: bool | None
    #: why it is not ready, in the server's words (masked)
    detail: str = ""
    #: when it was last known (wall clock, seconds)
    at: float = 0.0
    #: whether the server listed the model at the worker's last probe (None: not asked
    #: yet): no chat, so a server that lists it and cannot answer still says True
    listed: bool | None = None

    def text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @property
    def what(self) -> str:
        """``LLM ollama at URL, model M``."""
        return f"LLM {self.backend} at {self.url}, model {self.model}"


def heard(says: Mapping[str, str]) -> dict[str, Served]:
    """The workers' words (:meth:`RequestQueue.workers_say`) as :class:`Served`, by worker;
    words that are not a :class:`Served` (another version's) are left out."""
    found: dict[str, Served] = {}
    for worker, text in says.items():
        try:
            fields: Any = json.loads(text)
            # a later version's fields beside these are not this one's to read
            served = Served(**{f.name: fields[f.name] for f in dataclasses.fields(Served)
                               if f.name in fields})
        except (ValueError, TypeError, KeyError):
            continue
        if (all(isinstance(v, str) for v in (served.backend, served.url, served.model,
                                             served.detail))
                and all(isinstance(v, bool | None) for v in (served.ready, served.listed))
                and _a_time(served.at)):
            found[worker] = served
    return found


def _a_time(value: object) -> bool:
    """A number of seconds a clock could read: JSON also gives NaN, infinities and integers
    too large for a float, each of which broke the arithmetic of a reader."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


class Readiness:
    """One worker's knowledge of its LLM: asked at its start (and said in the log), asked
    again every ``agent.retry_backoff_seconds`` while not ready (as the daemon asks while
    investigations wait for it) and every :data:`RECHECK_READY_SECONDS` while ready, and
    told by every chat it sends."""

    def __init__(self, settings: Settings, log: logging.Logger) -> None:
        self.settings = settings
        self.log = log
        llm = settings.llm
        self.now = Served(llm.backend, masked_url(llm.url.rstrip("/")), llm.model, None)
        self._changed = asyncio.Event()

    def says(self) -> str:
        """What the worker says of itself in the queue."""
        return self.now.text()

    def chat_answered(self) -> None:
        self._saw(True, "")

    def chat_failed(self, exc: BaseException) -> None:
        """A chat's failure that says the server cannot answer now; a busy server, or an
        error of one request, says nothing of it."""
        if isinstance(exc, LLMUnavailable | LLMModelMissing) and not isinstance(exc, LLMBusy):
            self._saw(False, str(exc))

    def defers_to(self, workers_say: Callable[[], Mapping[str, str]], me: str
                  ) -> Callable[[], bool]:
        """``RequestQueue.serve``'s ``defers`` for the worker named ``me``: while its LLM is
        not known to answer, it leaves the requests to another worker whose LLM does (a
        worker whose server is down failed every request it took, beside one that would
        have answered it); where none does, it takes them, and its error says why they
        fail. The queue is read only while this one is not ready."""

        def defers() -> bool:
            if self.now.ready is True:
                return False
            others = heard({name: text for name, text in workers_say().items() if name != me})
            return any(served.ready for served in others.values())

        return defers

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """:meth:`watch` while the block runs (a worker's serving)."""
        task = asyncio.create_task(self.watch(), name="llm-readiness")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def watch(self) -> None:
        """Ask the server now and then, until cancelled."""
        while True:
            try:
                status: BackendStatus | None = await probe(self.settings.llm)
                why = ""
            except Exception as exc:  # a probe that breaks says so and stops nothing
                status, why = None, f"{type(exc).__name__}: {exc}"
            if status is not None:
                why = status.detail or ("" if status.reachable else "no answer")
                if status.reachable and not status.model_present and not status.detail:
                    why = f"the server has no model {status.model}"
            listed = status is not None and status.reachable and status.model_present
            before, self.now = self.now.listed, replace(self.now, listed=listed)
            self._saw(listed, why)
            if listed != before:  # the log says what the probes find, not every chat
                self._log(listed, before, why)
            self._changed.clear()
            if self.now.ready:  # until the time comes, or a chat says it is not
                await _within_or_changed(self._changed, RECHECK_READY_SECONDS)
            if not self.now.ready:
                # a chat's failure is believed a while over a list of models that names it
                await asyncio.sleep(max(PROBE_AT_MOST_EVERY_SECONDS,
                                        self.settings.agent.retry_backoff_seconds))

    def _saw(self, ready: bool, why: str) -> None:
        was = self.now.ready
        self.now = replace(self.now, ready=ready, detail="" if ready else _flat(why),
                           at=time.time())
        if was and not ready:  # the watch, waiting as on a ready server, asks sooner
            self._changed.set()

    def _log(self, listed: bool, before: bool | None, why: str) -> None:
        if listed:
            again = "" if before is None else " again"
            self.log.info("%s: ready%s", self.now.what, again, extra={"event": "llm_ready"})
        else:
            self.log.warning("%s: not ready: %s; investigations and questions wait for it "
                             "(`ai-sysadmin llm status` checks it)", self.now.what, _flat(why),
                             extra={"event": "llm_not_ready"})


def _flat(why: str) -> str:
    """Host text for one line of the log or the queue, masked."""
    from ..redact import redact

    return " ".join(redact(why).split())


async def _within_or_changed(changed: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(changed.wait(), seconds)
    except TimeoutError:
        pass


def listing(workers: Mapping[str, Served]) -> bool | None:
    """Whether a worker's server listed the model at its last probe; None where no worker
    has probed yet."""
    known = [s.listed for s in workers.values() if s.listed is not None]
    return any(known) if known else None


def ready_or_not(workers: Mapping[str, Served]) -> Served | None:
    """The word of the workers that tells whether a question gets an answer now: one that is
    ready, else the freshest of those that are not; None where none has asked yet."""
    known = [s for s in workers.values() if s.ready is not None]
    ready = [s for s in known if s.ready]
    if ready:
        return max(ready, key=lambda s: s.at)
    return max(known, key=lambda s: s.at) if known else None


__all__ = ["RECHECK_READY_SECONDS", "Readiness", "Served", "heard", "listing",
           "ready_or_not"]
