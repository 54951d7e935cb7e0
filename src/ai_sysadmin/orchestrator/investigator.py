"""Autonomous investigations: a new or changed incident gets one, through the LLM queue.

At most one investigation per incident runs at a time. If the LLM is down or answers garbage,
the incident stays open with the reason and is retried with exponential backoff; it is never
marked healthy by an LLM failure. A server that is down is waited out however long it takes;
a model whose answer is unusable ``agent.max_investigations`` times in a row for the incident
will not do better by waiting, and a person is told instead. A person is told too when the
server has not answered for ``notify.llm_down_after_seconds`` while incidents wait for it, once,
and once more when it answers again: with autonomy on, they rely on it to act. So too when no
worker takes the queued requests for that long (the queue says none serves it: a separate
worker, ``queue.embedded_worker = false``, that is stopped or dead), and when one takes them
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ..agent.context import ToolContext
from ..agent.evidence import investigate_evidence
from ..agent.investigate import investigate
from ..agent.loop import AgentOutcome, LLMCall
from ..agent.prompt import HostFacts
from ..agent.recall import KnowledgeSource
from ..aio import within
from ..config import Settings, mask_url, short_hostname
from ..errors import AiSysadminError, StoreError, TransportError
from ..hosts.transport import Transport
from ..llm.queue import NoWorker, QueueError, QueueTimeout, describe_queue
from ..llm.readiness import Served, heard, listing
from ..llm.types import (
    LLMBadResponse,
    LLMBusy,
    LLMModelMissing,
    LLMServerError,
    LLMToolsUnsupported,
    LLMUnavailable,
)
from ..monitor.findings import Severity
from ..monitor.rules import HOST_DOWN
from ..redact import redact
from ..store import Action, HostStore, IncidentStore
from ..store.incidents import Incident
from ..store.outbox import LLM, WORKER, Outage
from ..store.refused import RefusalLog, refused
from .slots import Slots

log = logging.getLogger("ai_sysadmin.decisions")
DAY_SECONDS = 24 * 3600
#: why an investigation's answer is not all of it, by its stop reason
INCOMPLETE = {"budget": "the tool budget ran out",
              "cut": "the answer reached the model's token limit, llm.max_tokens",
              "long": "the answer was longer than agent.max_context_chars; cut there"}

#: failures that are the model's or its configuration's, not an outage's (a server down, a
#: proxy's 502: ``LLMUnavailable``, ``LLMServerError``): asking again will not mend them, so they
#: count toward ``agent.max_investigations``
UNUSABLE = frozenset(kind.__name__ for kind in (LLMBadResponse, LLMModelMissing))
#: a server that refused the request's tools (``LLMToolsUnsupported``): no outage, and no
#: answer of the model either, which never saw the question; counted as the failures in a
#: row (``IncidentStore.failed_in_a_row``) and told as what it is, with what to set
NO_TOOLS = LLMToolsUnsupported.__name__
#: failures of a server that does not answer (down, busy, a proxy's 5xx): waited out, and
#: told a person when they last (:meth:`Investigator._tell_down`)
OUTAGE = (LLMUnavailable, LLMServerError)
OUTAGE_NAMES = frozenset(kind.__name__ for kind in (LLMUnavailable, LLMBusy, LLMServerError))
#: what an answer of the LLM mends: its outage, and a request that timed out in the queue
#: behind others (a burst, people's chats), which waited for the model as well
MENDED_BY_AN_ANSWER = OUTAGE_NAMES | {QueueTimeout.__name__}
#: failures of an investigation whose request no worker took; with the above, what an
#: incident that waits for a worker last failed for
UNSERVED_NAMES = OUTAGE_NAMES | {NoWorker.__name__}

#: failures of what an investigation waits for, not of the investigation itself: the LLM
#: server down, the queue (no worker, too slow, unreachable, its data lost), the store, the
#: host (each told on its own, or by an incident of its own). Waited out however long, they
#: never count toward a person; every other failure does (a model's unusable answer, a worker
#: that fails a request by a bug of its own), or a failure that comes back at every try was
#: retried every hour for good, and no person was ever told
WAITED = (*OUTAGE, QueueError, QueueTimeout, StoreError, TransportError)
#: the states an investigation starts from, and those that end one under way
STARTABLE = ("open", "reopened")
ENDED = ("resolved", "closed")
#: what a stop records of an investigation it cut off (:meth:`Investigator._run`)
INTERRUPTED = "interrupted"
#: what an investigation that ended without a proposal records when its host went down
#: meanwhile (its tools failed: the model had nothing to read), waited out as the host's
HOST_GONE = "HostUnreachable"


@functools.cache
def waited_names() -> frozenset[str]:
    """The names (what a failure is recorded by) of :data:`WAITED` and of every kind of them,
    looked up once every module that defines one is loaded."""
    names, kinds = {INTERRUPTED, HOST_GONE}, list(WAITED)
    while kinds:
        kind = kinds.pop()
        names.add(kind.__name__)
        kinds += kind.__subclasses__()
    return frozenset(names)


#: the longest wait between two attempts at an investigation
MAX_BACKOFF_SECONDS = 3600.0
#: the longest the message of an LLM outage waits for what the queue's workers say of theirs
WORKERS_WORD_SECONDS = 2.0
#: while the server lists the model and chats still fail, how often what waits is sent again
PROBE_RESEND_SECONDS = 300.0
#: the longest an investigation waits for what the knowledge base recalls (a store that is
#: still opening is not waited for at all); past it, it starts without
RECALL_TIMEOUT_SECONDS = 60.0


class _MovedOn(Exception):
    """The incident of an investigation under way resolved or was closed: its model is
    asked no more."""


def backoff(first: float, attempts: int) -> float:
    return min(first * (2 ** max(attempts, 0)), MAX_BACKOFF_SECONDS)


def _urls(words: Mapping[str, Served]) -> str | None:
    """The servers the workers' ``words`` name, masked again (host text), one line."""
    urls = sorted({mask_url(served.url) for served in words.values()})
    return " ".join(", ".join(urls).split()) or None


class _Watch:
    """What investigations wait for besides their host (the LLM server, the worker that takes
    requests from the queue), and what a person was told of it."""

    def __init__(self, outage: Outage, waiting_for: frozenset[str], what: str,
                 mended_by_it: frozenset[str]) -> None:
        self.outage = outage
        #: the failures an incident that waits for it last had (the errors' names)
        self.waiting_for = waiting_for
        #: of those, the ones its return mends: their incidents are due again at once
        self.mended_by_it = mended_by_it
        #: for the log: "the LLM at <url>", "the LLM queue <where>"
        self.what = what
        #: since when it has not answered, with no answer between (wall clock for the
        #: message, monotonic for the wait), and the last error it caused
        self.down: tuple[float, float] | None = None
        self.error = ""
        #: what a person was told of it (:meth:`Investigator._facts_of`): its end names
        #: the same server, whatever the workers serve by then
        self.facts: dict[str, str] | None = None
        #: the LLM server(s) the queue's workers last said they serve (None: none said)
        self.served: str | None = None
        #: whether a person is to be told of this outage (its down event is the last said
        #: of it); None: not known since the start, the store may hold one from before
        self.told: bool | None = None
        #: when it was last asked whether it answers again (monotonic), and when its waiting
        #: incidents were last sent because it did (None: not since it was last found down)
        self.probed_at: float | None = None
        self.sent_at: float | None = None


class Investigator:
    def __init__(
        self,
        settings: Settings,
        store: IncidentStore,
        transports: dict[str, Transport],
        llm_for: Callable[[int], LLMCall],
        facts_for: Callable[[str], HostFacts] | None = None,
        on_proposals: Callable[[int, str, list[dict[str, object]]], Awaitable[list[Action]]]
        | None = None,
        knowledge: KnowledgeSource | None = None,
        here: str | None = None,
        reach: Callable[[str], Awaitable[Transport | None]] | None = None,
    ) -> None:
        self.settings = settings
        #: this machine's name, the host of what is said about the LLM server
        self.here = here or short_hostname()
        self.store = store
        self.transports = transports
        #: the host's transport, built for its registration now (:meth:`Runtime.reach`:
        #: renewed where it was added again since); None: not managed here. Without one,
        #: the transports given, as they are
        self._reach = reach or self._given
        self.llm_for = llm_for
        self.facts_for = facts_for or HostFacts
        #: hands the investigation's proposals to the policy and executor
        self.on_proposals = on_proposals
        self.running: dict[int, asyncio.Task[None]] = {}
        #: as many investigations ask the model at once as the queue serves (:mod:`.slots`)
        self.slots = Slots(settings.queue.concurrency)
        #: the host of each investigation waiting for its turn or asking the model
        self._asking: dict[int, str] = {}
        #: a request timed out in the queue: those that did are due at the model's next answer
        self._behind = False
        #: incidents reopened or changed while their investigation (and its fix) still ran:
        #: looked at again as soon as it ends, or the news would wait for nobody
        self._again: set[int] = set()
        self._closing = False
        #: past incidents, knowledge, config history; None: the process's shared one (the
        #: first investigation's recall opens it)
        self._knowledge = knowledge
        url = mask_url(settings.llm.url)
        self._llm = _Watch(LLM, OUTAGE_NAMES, f"the LLM at {url}", MENDED_BY_AN_ANSWER)
        # a worker back does not bring a server that is down back with it
        self._worker = _Watch(WORKER, UNSERVED_NAMES, f"the LLM queue {describe_queue(settings)}",
                              frozenset({NoWorker.__name__}))
        #: when the LLM server last answered an investigation, and when each incident's
        #: request first met its HTTP 500, with no answer since (monotonic):
        #: :meth:`_served_others`
        self._llm_answered_at: float | None = None
        #: the retry loop's probe of the LLM server, while one runs
        self._probing: asyncio.Task[None] | None = None
        #: what the queue's workers say of themselves (``RequestQueue.workers_say``): the
        #: probe takes their word on the LLM they serve
        self.workers_say: Callable[[], Mapping[str, str]] | None = None
        self._first_500: dict[int, float] = {}
        #: what a person reads of each, besides since when and the last error
        self._facts = {LLM: {"url": url},
                       WORKER: {"queue": describe_queue(settings),
                                "unit": f"{settings.ai_name}-llm-worker.service"}}

    async def _given(self, host: str) -> Transport | None:
        return self.transports.get(host)

    @property
    def knowledge(self) -> KnowledgeSource:
        if self._knowledge is None:
            # the knowledge layer (and ChromaDB with it) loads with the first investigation
            from ..knowledge.context import shared

            self._knowledge = shared(self.settings, self.facts_for)
        return self._knowledge

    async def recall(self, incident: Incident) -> str:
        """What the investigation starts with besides the evidence; a knowledge base that
        is down or slow costs this, never the investigation: logged, and "" instead."""
        try:
            return await within(self.knowledge.recall(incident), RECALL_TIMEOUT_SECONDS)
        except Exception as exc:
            log.warning("incident %d: nothing recalled (%s: %s)", incident.id,
                        type(exc).__name__, redact(str(exc))[:300],
                        extra={"incident": incident.id, "event": "recall_failed"})
            return ""

    def schedule(self, incident_id: int, again: bool = True) -> bool:
        """Start an investigation unless one is already running for this incident. ``again``:
        the incident changed (opened, reopened), so one already running is followed by
        another; the periodic sweeps pass False, since what they see is that same run's
        incident, and a second run right after it would skip the retry backoff."""
        if self._closing:
            return False  # a check that ends while the daemon stops starts nothing new
        task = self.running.get(incident_id)
        if task is not None and not task.done():
            if again:
                self._again.add(incident_id)
            return False
        task = asyncio.create_task(self._run(incident_id), name=f"investigate:{incident_id}")
        self.running[incident_id] = task
        task.add_done_callback(lambda done: self._ended(incident_id, done))
        return True

    def _ended(self, incident_id: int, task: asyncio.Task[None]) -> None:
        if self.running.get(incident_id) is not task:
            return
        del self.running[incident_id]  # one a day for months: not kept once done
        if self._closing:
            return
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._escaped(incident_id, exc)
        if incident_id in self._again:
            self._again.discard(incident_id)
            # a no-op unless the incident is open or reopened again (``_run`` checks)
            self.schedule(incident_id)

    def _held(self, incident_id: int) -> bool:
        """Investigated ``max_investigations_per_day`` times in 24 hours already (it keeps
        coming back): it waits for a person, who is told once, until the oldest of those is
        a day old (then it is due again, however it stands)."""
        limit = self.settings.agent.max_investigations_per_day
        now = time.time()
        since = now - DAY_SECONDS
        ended = self.store.investigations_since(incident_id, since, now)
        if len(ended) < limit:
            return False
        reason = (f"investigated {limit} times in 24 hours and it keeps coming back: no more "
                  "investigations today; a person must look")
        until = ended[-limit] + DAY_SECONDS
        if self.store.hold_for_person(incident_id, reason, since, until):
            log.warning("incident %d: %s", incident_id, reason,
                        extra={"incident": incident_id, "event": "investigations_capped"})
        return True

    def _escaped(self, incident_id: int, exc: BaseException) -> None:
        """What ``_run``'s own handling did not catch (a store that failed while it recorded
        a failure, a decision on the proposals that raised): said in the log, with its
        traceback, and the incident open again for the retry sweep, not left investigating
        until the next start."""
        log.error("investigation of incident %d ended by %s: %s", incident_id,
                  type(exc).__name__, redact(str(exc))[:300], exc_info=exc,
                  extra={"incident": incident_id, "event": "investigation_crashed"})
        reason = redact(f"{type(exc).__name__}: {exc}")[:300]
        try:
            incident = self.store.get(incident_id, history=0)
            if incident.state == "investigating":
                self.store.record_investigation(
                    incident_id, None, reason, time.time() + backoff(
                        self.settings.agent.retry_backoff_seconds,
                        incident.investigation_attempts))
        except Exception as again:  # the store is still failing: the next start settles it
            log.error("incident %d stays investigating until a restart: %s", incident_id,
                      redact(str(again))[:300], extra={"incident": incident_id})

    async def _run(self, incident_id: int) -> None:
        incident = await asyncio.to_thread(self.store.get, incident_id, history=0)
        if incident.state not in STARTABLE:
            return
        # taken before the move to "investigating": those that wait for one are open still,
        # and a host removed meanwhile cancels them (:meth:`let_go`)
        self._asking[incident_id] = incident.host
        try:
            await self.slots.take(-Severity.rank_of(incident.severity), incident.opened_at)
            try:
                asked = await self._ask(incident_id)
            finally:
                self.slots.give_back()
        finally:
            self._asking.pop(incident_id, None)
        if asked is None:
            return
        incident, outcome, started, ctx = asked
        try:
            await self._investigated(incident, outcome, started, ctx.refused_proposals)
        except Exception as exc:
            # its end not handled (the store locked as its proposals were decided): left
            # open with a diagnosis and a proposal nobody decided, it waited for a restart;
            # failed, what it proposed is abandoned and it is investigated again
            await self._failed(incident, ctx, exc)

    async def _startable(self, incident_id: int) -> Incident | None:
        """The incident, where an investigation of it starts now (it is moved to
        investigating); None where it does not."""
        incident = await asyncio.to_thread(self.store.get, incident_id, history=0)
        if incident.state not in STARTABLE:
            return None  # resolved or closed while it waited for its turn
        if await asyncio.to_thread(HostStore(self.store.db).removed, incident.host):
            return None  # removed since this daemon built its transports, which still reach it
        if await asyncio.to_thread(self.store.live_of, incident.host, HOST_DOWN) is not None:
            # the model's tools all run on the host: the host's own incident is never
            # investigated (a person was paged by it), the others when it answers again
            return None
        if await asyncio.to_thread(self._held, incident_id):
            return None
        # the host as it is now: one added again since the transports were built (another
        # machine, maybe, at another target) is renewed, its tools reach its new target
        await self._reach(incident.host)
        try:
            await asyncio.to_thread(self.store.transition, incident_id, "investigating",
                                    "agent", "investigation started")
        except StoreError:
            # the move is refused in the store's transaction where the incident is no longer
            # open (a check resolved it, a person closed it, since the read above): it just
            # does not start
            now = await asyncio.to_thread(self.store.get, incident_id, history=0)
            if now.state in STARTABLE:
                raise
            log.info("incident %d is %s: not investigated", incident_id, now.state,
                     extra={"incident": incident_id, "event": "investigation_not_started"})
            return None
        return incident

    async def _ask(self, incident_id: int
                   ) -> tuple[Incident, AgentOutcome, float, ToolContext] | None:
        """The model's investigation of the incident, with its tools; None where it did not
        start, did not end (failed: recorded), or its incident moved on meanwhile."""
        incident = await self._startable(incident_id)
        if incident is None:
            return None
        ctx = ToolContext(self.settings, self.transports, incident.host, self.store, incident_id)
        started = time.monotonic()
        # the mode follows the model: a small one answers once from gathered evidence
        mode = self.settings.agent.mode_for(self.settings.llm.model)
        run = investigate_evidence if mode == "evidence" else investigate
        try:
            ctx.knowledge = self.knowledge
            ctx.recalled = await self.recall(incident)
            outcome = await run(incident, self._asking_while_live(incident_id), ctx,
                                self.settings, self.facts_for(incident.host))
        except _MovedOn as moved:
            # nothing is recorded: what it proposed is never decided for an incident that
            # ended (a reopen abandons it)
            log.info("incident %d %s during its investigation: the model is asked no more",
                     incident_id, moved, extra={"incident": incident_id,
                                                "event": "investigation_moved_on"})
            return None
        except Exception as exc:  # any failure: the incident stays open and is retried
            await self._failed(incident, ctx, exc)
            return None
        except asyncio.CancelledError:
            # the run starts again after the restart and proposes afresh: what this one
            # proposed is not decided beside it
            with contextlib.suppress(AiSysadminError):
                self.store.record_investigation(incident_id, None, INTERRUPTED, time.time(),
                                                abandoned=_recorded(ctx))
            raise
        return incident, outcome, started, ctx

    def _asking_while_live(self, incident_id: int) -> Any:
        """The incident's model, asked only while the incident is investigating still: one a
        check resolved (or a person closed) between two turns costs the model no more."""
        llm = self.llm_for(incident_id)

        async def ask(*args: Any, **kwargs: Any) -> Any:
            state = (await asyncio.to_thread(self.store.get, incident_id, history=0)).state
            if state in ENDED:
                raise _MovedOn(state)
            return await llm(*args, **kwargs)

        return ask

    async def _failed(self, incident: Incident, ctx: ToolContext, exc: Exception) -> None:
        """An investigation that raised: kept with its reason and retried with backoff (or
        escalated once the model's answers are spent); an outage of the LLM server or of the
        worker is noted, for a person to be told when it lasts."""
        incident_id = incident.id
        exc = self._served_others(incident_id, exc)
        wall, mono = time.time(), time.monotonic()
        attempts = incident.investigation_attempts
        delay = backoff(self.settings.agent.retry_backoff_seconds, attempts)
        if type(exc) is QueueTimeout:
            # it waited behind other requests (people's, a burst): no failure of the model,
            # and no reason to wait an outage's backoff; due again at the model's next
            # answer (:meth:`_answered`), at the latest after the first backoff
            delay = self.settings.agent.retry_backoff_seconds
            self._behind = True
        reason = redact(f"{type(exc).__name__}: {exc}")
        spent = await self._unusable(incident_id, exc, reason)
        await asyncio.to_thread(functools.partial(
            self.store.record_investigation, incident_id, None, reason,
            None if spent else time.time() + delay, abandoned=_recorded(ctx),
            escalate=spent))
        self._log_failure(incident_id, exc, reason,
                          "retries spent: escalated to a person" if spent
                          else f"retry in {delay:.0f} s")
        if isinstance(exc, NoWorker):
            # none took it since it was queued, its whole wait before it failed; the
            # server is not known either way
            self._outage(self._worker, reason, (wall - exc.timeout, mono - exc.timeout))
            await self._tell_down(self._worker)
        elif isinstance(exc, OUTAGE):
            await self._answered(self._worker)  # a worker took it to the server
            self._outage(self._llm, reason)
            await self._tell_down(self._llm)
        elif type(exc).__name__ in UNUSABLE | {NO_TOOLS}:
            # an unusable answer (or a refusal of the tools) is an answer: the server is up,
            # and a worker took it
            await self._answered(self._llm, self._worker)

    def _served_others(self, incident_id: int, exc: Exception) -> Exception:
        """``exc``, or where it is the server's HTTP 500 to this incident's request again
        after the server answered other investigations since the first, an unusable
        answer: the server is up and cannot serve this request (a conversation past an
        older llama.cpp's context answers 500). Waited out as an outage, it was retried for
        ever and no person was told; now it counts toward ``agent.max_investigations``. A
        proxy's 502 or 504 is a server behind it that is down: waited out still."""
        if not isinstance(exc, LLMServerError) or " answered HTTP 500 " not in str(exc):
            return exc
        now = time.monotonic()
        # one an incident resolved meanwhile left here is let go after a day: a daemon runs
        # for months, and nothing else ends an entry but an answer to its incident
        self._first_500 = {i: at for i, at in self._first_500.items() if now - at < DAY_SECONDS}
        first = self._first_500.setdefault(incident_id, now)
        if self._llm_answered_at is None or self._llm_answered_at <= first:
            return exc
        return LLMBadResponse(f"{exc}; it answers other investigations meanwhile: it cannot "
                              "serve this one")

    def _log_failure(self, incident_id: int, exc: Exception, reason: str, then: str) -> None:
        """A failed investigation in the log. With no worker, every request of every
        incident fails alike until one runs: its whole explanation is said at the first
        failure of the worker's outage (this process's), each one after it in a short line,
        or the log fills with the same paragraph (the outage itself: ``_tell_down``)."""
        extra = {"incident": incident_id, "event": "investigation_failed",
                 "error": type(exc).__name__}
        if isinstance(exc, NoWorker) and self._worker.down is not None:
            log.info("investigation of incident %d failed: no worker serves the queue, since "
                     "%s; %s", incident_id, time.strftime("%H:%M:%S",
                                                         time.localtime(self._worker.down[0])),
                     then, extra=extra)
            return
        log.warning("investigation of incident %d failed (%s); %s", incident_id, reason, then,
                    extra=extra)

    async def _investigated(self, incident: Incident, outcome: AgentOutcome,
                            started: float, refused: Sequence[str] = ()) -> None:
        """An investigation that answered: its diagnosis kept, the incident open again with
        nothing to decide (then a person's) or its proposals handed on."""
        incident_id = incident.id
        self._first_500.pop(incident_id, None)
        # the model saw masked text only; masking its words too is the second layer
        diagnosis = redact(outcome.answer)
        if outcome.stop_reason in INCOMPLETE:
            diagnosis = f"(incomplete: {INCOMPLETE[outcome.stop_reason]})\n{diagnosis}"
        if outcome.proposals:
            await asyncio.to_thread(self.store.record_investigation, incident_id, diagnosis,
                                    None)
        elif not await self._host_gone(incident):
            # nothing to decide: open again, retried with backoff, then a person's. What
            # counts is the model's answers: an outage before this one spent no try
            answered = await asyncio.to_thread(
                self.store.without_proposal_in_a_row, incident_id, UNUSABLE) + 1
            retry_at = None if answered >= self.settings.agent.max_investigations else \
                time.time() + backoff(self.settings.agent.retry_backoff_seconds,
                                      incident.investigation_attempts)
            await asyncio.to_thread(self.store.record_no_fix, incident_id, diagnosis, retry_at,
                                    refused=refused[-1] if refused else None)
        await self._answered(self._llm, self._worker)
        log.info("incident %d investigated (%s mode) in %.1f s with %d tool calls, "
                 "%d proposal(s)", incident_id, outcome.mode, time.monotonic() - started,
                 outcome.tool_calls, len(outcome.proposals),
                 extra={"incident": incident_id, "event": "investigated",
                        "mode": outcome.mode, "proposals": outcome.proposals})
        if self.on_proposals is not None and outcome.proposals:
            await self.decided(incident_id,
                               await self.on_proposals(incident_id, incident.host,
                                                       outcome.proposals))

    async def decided(self, incident_id: int, decided: Sequence[Action]) -> None:
        """An investigation's proposals as the policy decided them (here, or after a restart
        where it died between recording and deciding them). Every one refused: nothing runs
        nor waits for a person, so the incident is retried with backoff and, once the
        model's answers are spent, a person's (it stayed open, looked at by nobody)."""
        if not decided or any(action.state != "refused" for action in decided):
            return
        reason = f"every proposal was refused: {decided[-1].reason}"
        if not await asyncio.to_thread(self.store.record_refused, incident_id, reason):
            return  # ended meanwhile, or a fix of it waits after all
        answered = await asyncio.to_thread(
            self.store.without_proposal_in_a_row, incident_id, UNUSABLE)
        # paced by the answers in a row: its diagnosis reset the attempts it counted
        retry_at = None if answered >= self.settings.agent.max_investigations else \
            time.time() + backoff(self.settings.agent.retry_backoff_seconds, answered - 1)
        await asyncio.to_thread(self.store.retry_or_escalate, incident_id, reason, retry_at)

    async def _host_gone(self, incident: Incident) -> bool:
        """An investigation that proposed nothing while its host went down (an incident says
        it cannot be reached): its tools failed, so its answer is no answer of the model's;
        waited out as the host, retried with backoff once it answers, never spending
        ``agent.max_investigations``. True when it was so."""
        down = await asyncio.to_thread(self.store.live_of, incident.host, HOST_DOWN)
        if down is None:
            return False
        delay = backoff(self.settings.agent.retry_backoff_seconds,
                        incident.investigation_attempts)
        reason = (f"{HOST_GONE}: {incident.host} could not be reached during the "
                  f"investigation (incident {down}); investigated again once it answers")
        await asyncio.to_thread(self.store.record_investigation, incident.id, None, reason,
                                time.time() + delay)
        log.info("investigation of incident %d: %s; retry in %.0f s", incident.id, reason,
                 delay, extra={"incident": incident.id, "event": "investigation_host_gone"})
        return True

    async def _unusable(self, incident_id: int, exc: Exception, reason: str) -> str | None:
        """Why a person must look now that the investigation failed once more by no outage
        (``agent.max_investigations`` times in a row, this one included: the model's answer
        unusable, or any failure not :data:`WAITED` out); None while it may try again, and for
        a failure waited out."""
        waited = waited_names()
        if type(exc).__name__ in waited:
            return None
        # the model's answers are counted as the answers without a proposal count them, with
        # those (two of each took five answers): any other failure by the failures alone
        before = await asyncio.to_thread(
            self.store.without_proposal_in_a_row, incident_id, UNUSABLE) \
            if type(exc).__name__ in UNUSABLE else \
            await asyncio.to_thread(self.store.failed_in_a_row, incident_id, waited)
        limit = self.settings.agent.max_investigations
        if before + 1 < limit:
            return None
        if type(exc).__name__ == NO_TOOLS:
            # what to do first: the error's own words may be cut before their advice
            return (f"the LLM server refused to offer tools to model {self.settings.llm.model} "
                    f"{before + 1} time(s) in a row (agent.max_investigations = {limit}): the "
                    "model never saw the question. Investigate without tool calls with "
                    "agent.mode = \"evidence\" (or the model's entry in [agent.modes]), or "
                    "serve a model and server that make them; retries spent: escalated to a "
                    f"person. The last: {reason[:300]}")
        what = ("the model's answer was unusable" if type(exc).__name__ in UNUSABLE
                else "the investigation failed")
        return (f"{what} {before + 1} time(s) in a row (agent.max_investigations = {limit}); "
                f"retries spent: escalated to a person. The last: {reason[:300]}")

    @staticmethod
    def _outage(watch: _Watch, reason: str,
                began: tuple[float, float] | None = None) -> None:
        """A failure of ``watch``'s outage, which ``began`` then (wall clock, monotonic) at
        the latest; None: now."""
        watch.error = reason
        if watch.down is None:
            watch.down = began or (time.time(), time.monotonic())

    async def _tell_down(self, watch: _Watch) -> None:
        """After an outage failure: a person is told, once an outage, when investigations
        have failed for one for ``notify.llm_down_after_seconds`` with no answer between,
        while incidents wait for it (the store counts them). Only a failure says it is down
        still: a slow answer in flight past that time is no outage. A store that fails costs
        the message only: the next failure tries again."""
        down = watch.down
        if (down is None or watch.told
                or time.monotonic() - down[1] < self.settings.notify.llm_down_after_seconds):
            return
        watch.facts = await self._facts_of(watch)
        facts = {"host": self.here, "since": down[0], **watch.facts,
                 "error": watch.error[:300]}
        try:
            told = await asyncio.to_thread(self.store.tell_llm_down, facts, watch.waiting_for,
                                           watch.outage)
        except Exception as exc:
            log.warning("%s: its outage not told (%s: %s)", self._named(watch), type(exc).__name__,
                        redact(str(exc))[:300], extra={"event": f"{watch.outage.down}_not_told"})
            return
        watch.told = told
        if told and watch.down is not down:
            # it answered while this was written: what was said is over already
            await self._tell_back(watch)
        elif told:
            log.warning("%s has not answered investigations for %.0f s: a person is told",
                        self._named(watch), time.monotonic() - down[1],
                        extra={"event": watch.outage.down, "since": down[0]})

    async def _answered(self, *watches: _Watch) -> None:
        """Each of ``watches`` answered an investigation: its outage, if any, is over."""
        behind = False
        if self._llm in watches:
            self._llm_answered_at = time.monotonic()
            behind, self._behind = self._behind, False
        for watch in watches:
            # the first answer since this process started may end an outage a former one saw
            over = watch.down is not None or watch.told is None
            watch.down, watch.sent_at = None, None
            if watch.told is not False:  # else the usual case: nothing said, nothing to ask
                await self._tell_back(watch)
            if over:
                await self._investigate_waiting(watch)
            elif behind and watch is self._llm:
                await self._investigate_waiting(watch, "answered an investigation")

    async def _investigate_waiting(self, watch: _Watch, because: str = "answers again") -> None:
        """After an outage of ``watch``: the incidents that waited for it are investigated
        now, not at their next retry, a backoff of up to an hour away (a person was told
        they are), most severe first; the queue takes them in turn. A store that fails
        costs the haste only: each is retried when its backoff ends."""
        try:
            due = await asyncio.to_thread(self.store.due_now, watch.mended_by_it)
        except Exception as exc:
            log.warning("%s %s; the incidents that waited for it are retried at "
                        "their backoff (%s: %s)", self._named(watch), because, type(exc).__name__,
                        redact(str(exc))[:300], extra={"event": "waiting_not_rescheduled"})
            return
        for incident_id in due:
            self.schedule(incident_id, again=False)
        if due:
            log.info("%s %s: %d incident(s) that waited for it investigated now",
                     self._named(watch), because, len(due), extra={"event": "waiting_rescheduled"})

    async def _facts_of(self, watch: _Watch) -> dict[str, str]:
        """What a person reads of ``watch``'s outage: of the LLM's, the server the queue's
        workers say they serve (another machine's, on a shared queue), where they say;
        else this machine's ``llm.url``."""
        facts = dict(self._facts[watch.outage])
        if watch is self._llm:
            # a queue slow to answer holds the message up a little, never for its timeouts
            await self._workers_word(WORKERS_WORD_SECONDS)
            if watch.served:
                facts["url"] = watch.served
        return facts

    async def _workers_word(self, seconds: float | None = None) -> dict[str, Served]:
        """What the queue's workers say of the LLM they serve (none where the queue does not
        answer, within ``seconds`` where given: its own outage is said where it is met);
        the servers they name are kept for what is said of the LLM's outage."""
        if self.workers_say is None:
            return {}
        read = asyncio.to_thread(self.workers_say)
        try:
            words = heard(await (read if seconds is None else within(read, seconds)))
        except (AiSysadminError, TimeoutError):
            return {}
        self._llm.served = _urls(words) or self._llm.served
        return words

    def _named(self, watch: _Watch) -> str:
        """``watch.what`` for the log, naming the server the queue's workers serve where
        they said (the one the person's message names)."""
        if watch is self._llm and watch.served:
            return f"the LLM at {watch.served}"
        return watch.what

    async def _tell_back(self, watch: _Watch) -> None:
        """A person told of an outage is told it is over (after a restart: one a former
        process told)."""
        facts = {"host": self.here, **(watch.facts or await self._facts_of(watch))}
        try:
            back = await asyncio.to_thread(self.store.tell_back, facts, watch.outage)
        except Exception as exc:  # tried again with the next answer
            log.warning("%s: its return not told (%s: %s)", self._named(watch), type(exc).__name__,
                        redact(str(exc))[:300], extra={"event": f"{watch.outage.back}_not_told"})
            return
        watch.told, watch.facts = False, None
        if back:
            log.info("%s answers again: a person is told", self._named(watch),
                     extra={"event": watch.outage.back})

    async def _probe_llm(self) -> None:
        """While incidents wait for the LLM server (their last investigation failed for an
        outage), it is asked every ``agent.retry_backoff_seconds`` whether it lists the model:
        an outage's backoff grows to an hour, and its return waited that long to be noticed,
        the person's "answers again" with it. Where it does, what waited is investigated now;
        sent again no sooner than :data:`PROBE_RESEND_SECONDS` while it keeps listing the
        model, since a listed model is no answer to a chat (a server that lists it before it
        can load it, or never can): only an answer says it is back."""
        watch = self._llm
        now = time.monotonic()
        every = self.settings.agent.retry_backoff_seconds
        if watch.probed_at is not None and now - watch.probed_at < every:
            return
        if not await asyncio.to_thread(self.store.waiting_on, watch.mended_by_it):
            # (those sent after a probe wait no more while they run)
            watch.probed_at = None
            return
        first, watch.probed_at = watch.probed_at is None, now
        if first:  # their first retry is as near as the first probe
            return
        if not await self._lists_model():
            watch.sent_at = None
            return
        if watch.sent_at is not None and now - watch.sent_at < max(PROBE_RESEND_SECONDS, every):
            return
        watch.sent_at = now
        # not "answers again": only a chat's answer says that
        await self._investigate_waiting(watch, "lists its model again (a probe, no chat yet)")

    async def _lists_model(self) -> bool:
        """Whether the LLM server answers with the model among its list (no chat: a probe
        costs the server nothing); a probe that breaks says no. Where the queue's workers
        say whether the LLM they serve is ready (:mod:`..llm.readiness`), their word: they
        reach the server, which this machine may not."""
        from ..llm.backends import probe

        listed = listing(await self._workers_word())
        if listed is not None:
            return listed
        try:
            status = await probe(self.settings.llm)
        except Exception:  # an unreadable api_key_file: the investigations say why
            return False
        return status.reachable and status.model_present

    def recover(self) -> None:
        """After a restart: investigations that were cut off go back to open and start again.
        The first of them opens the knowledge base before its first turn."""
        for incident in self.store.incidents(("investigating",)):
            # what the cut-off run proposed is not decided beside the next run's proposals
            if self.store.restart_cut_off(incident.id, "agent", "investigation interrupted "
                                          "by a restart; starting again"):
                self.schedule(incident.id)
        self.pick_up(self.store.untriaged())

    def pick_up(self, untriaged: Sequence[Incident]) -> list[int]:
        """Schedule every open incident not yet triaged (``check`` opens incidents too, and
        the daemon's own checks then see them as known, never as new); those of hosts no
        longer managed are left alone (the store leaves out those of removed hosts)."""
        return [incident.id for incident in untriaged
                if incident.host in self.transports and incident.rule not in HOST_DOWN
                and self.schedule(incident.id, again=False)]

    async def retry_loop(self, stop: asyncio.Event, every: float = 5.0) -> None:
        """Retries that are due, and incidents nobody triaged, every ``every`` seconds; the
        LLM server asked whether it answers again while incidents wait for it. A failure (a
        locked or full disk) is logged and tried again: it never ends the loop."""
        said = RefusalLog(log, "looking for investigations to retry")
        while not stop.is_set():
            try:
                for incident in await asyncio.to_thread(self.store.investigation_due):
                    self.schedule(incident.id, again=False)
                self.pick_up(await asyncio.to_thread(self.store.untriaged))
                if self._probing is None or self._probing.done():
                    # its own task: a server that does not answer holds no retry up
                    self._probing = asyncio.create_task(self._probed(), name="llm-probe")
            except Exception as exc:
                if refused(exc) is None:
                    log.warning("retries of investigations not looked at (%s: %s); again in "
                                "%g s", type(exc).__name__, redact(str(exc))[:300], every,
                                extra={"event": "retry_sweep_failed"})
                else:
                    said.failed(exc)
            else:
                said.worked()
            with contextlib.suppress(TimeoutError):
                await within(stop.wait(), every)

    async def _probed(self) -> None:
        """:meth:`_probe_llm`, a failure logged (a store that refuses the read)."""
        try:
            await self._probe_llm()
        except Exception as exc:
            log.warning("the LLM server not probed (%s: %s)", type(exc).__name__,
                        redact(str(exc))[:300], extra={"event": "llm_probe_failed"})

    async def let_go(self, host: str) -> None:
        """``host`` was removed (``systems remove``): its investigations that wait for their
        turn or ask the model end now. The model's next tool call would run on a host
        nobody manages (another machine at that address, maybe), through a login nothing
        closes; one that decides its proposals goes on (the executor refuses a removed
        host's fixes)."""
        tasks = [self.running[incident_id] for incident_id, of in self._asking.items()
                 if of == host and incident_id in self.running]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        self._closing = True
        tasks = list(self.running.values())
        if self._probing is not None:
            tasks.append(self._probing)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _recorded(ctx: ToolContext) -> list[int]:
    """The proposals a run recorded before it ended unfinished."""
    return [p["id"] for p in ctx.proposals if isinstance(p.get("id"), int)]
