"""``ai-sysadmin run``: periodic checks of every host plus journal followers, until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..aio import check_cancelled, within
from ..errors import AiSysadminError, StoreError
from ..executor import Executor
from ..hosts.inventory import HostSpec
from ..llm.client import QueuedLLM
from ..llm.handlers import build_handler
from ..llm.queue import open_for_service
from ..llm.readiness import Readiness
from ..llm.types import Priority
from ..monitor.follower import JournalFollower
from ..monitor.snapshot import JournalEntry, Snapshot
from ..redact import redact
from ..store import HostStore
from ..store.refused import RefusalLog
from . import fleet
from .checker import CheckReport, HostChecker
from .investigator import Investigator
from .pacing import WakeBudget, next_due
from .runtime import Runtime
from .store_down import OutageRecord, StoreDown
from .unwatched import CheckFailures

log = logging.getLogger("ai_sysadmin.service")
T = TypeVar("T")

#: a burst of journal lines becomes one check: wait this long for the rest of the burst
DEBOUNCE_SECONDS = 0.2
#: the longest a stopping daemon waits for a host profile being written
PROFILE_WAIT_SECONDS = 10
#: how long after the start config_repo is first fetched and indexed (which opens the
#: knowledge base): seconds of CPU the start's own checks and recoveries should not wait for
CONFIG_SYNC_DELAY_SECONDS = 5.0
#: how often, at most, the daemon looks for hosts managed since it started (`systems add`,
#: `systems accept`): one SELECT of the hosts table while there are none; a check interval
#: is the longest such a host waits for its first check
HOSTS_POLL_SECONDS = 5.0


class Daemon:
    #: whether SIGTERM and SIGINT stop it (``ai-sysadmin run``); a daemon run inside another
    #: command (``eval``) leaves them to that command, which stops it itself
    takes_signals = True
    #: what SIGHUP checks before the daemon stops for its unit to start it again on the
    #: changed config (``run`` sets it: the file loaded as a start loads it, raising what a
    #: start refuses); None: SIGHUP is left to the command, which stops on it
    config_check: Callable[[], object] | None = None

    def __init__(
        self,
        runtime: Runtime,
        investigator: Investigator | None = None,
        worker: Callable[[asyncio.Event], Awaitable[None]] | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        assert runtime.store is not None, "the daemon keeps incidents"
        self.store = runtime.store
        self.checkers = list(runtime.checkers.values())
        for checker in self.checkers:
            checker.listeners.append(self._triage)
        self.stop_event = asyncio.Event()
        self.followers: list[JournalFollower] = []
        #: each host's follower and the checks it wakes
        self._following: dict[str, list[asyncio.Task[None]]] = {}
        #: each host's interval loop: one that ended (its host removed) checks it no more
        self._looping: dict[str, asyncio.Task[None]] = {}
        #: every interval loop and follower started, hosts taken on or renewed meanwhile
        #: included: the stop ends each and waits for it
        self._spawned: list[asyncio.Task[None]] = []
        #: hosts whose taking on failed, with why, as logged: said once while it fails so
        self._not_taken: dict[str, str] = {}
        self.investigator = investigator
        self.worker = worker
        self.executor: Executor | None = None
        #: host profiles being written to the knowledge base
        self._profiling: set[asyncio.Task[bool]] = set()
        #: checks that raised: kept, shown and, when they keep failing, told a person
        self.failures = CheckFailures(self.settings, self.store, StoreDown(
            self.settings, runtime.notifier, self.store.db.path, self._seen_here,
            OutageRecord.of_unit()))
        # a host added again (`systems remove`, then `systems add`: maybe another machine)
        # is renewed by whatever reaches it first: its check, an investigation, a fix
        runtime.renewal_listeners.append(self._renewed)

    def _seen_here(self) -> Snapshot | None:
        """This machine's last check, stored or not: its state database's disk as seen."""
        checker = self.runtime.checkers.get(self.runtime.local.host)
        return checker.seen if checker is not None else None

    def checker_for(self, host: str) -> HostChecker:
        return self.runtime.checker_for(host)

    def _triage(self, report: CheckReport) -> None:
        """Only new or changed incidents cost an LLM call; a healthy host costs none."""
        if self.investigator is None or report.outcome is None:
            return
        out = report.outcome
        for incident_id in (*out.opened, *out.reopened, *out.changed):
            self.investigator.schedule(incident_id)

    def _note_system(self, report: CheckReport) -> None:
        """The host's profile goes to the knowledge base in the background (a check never
        waits for ChromaDB, and a knowledge base that is down costs the profile only)."""
        if report.snapshot.os is None or not self.settings.knowledge.enabled:
            return
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(self.runtime.knowledge.note_system, report.snapshot))
        self._profiling.add(task)
        task.add_done_callback(self._profiled)

    def _profiled(self, task: asyncio.Task[bool]) -> None:
        self._profiling.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("host profile not kept: %s", exc, extra={"event": "profile_failed"})

    async def keep_configs(self) -> None:
        """A little after the start, keep config_repo fetched and indexed
        (``KnowledgeRecall.open``), where one is configured. Nothing else opens the knowledge
        base at the start: ChromaDB and the embedding model cost hundreds of MB, loaded by
        the first investigation, lesson or sync, in a worker thread of this event loop,
        which the loop's end waits for (a thread of its own, cut off by the process's exit in
        the middle of ChromaDB, aborts the process: SIGABRT)."""
        if not self.settings.config_repo:
            return
        if not await self._stopped_within(CONFIG_SYNC_DELAY_SECONDS):
            await self.runtime.knowledge.open()

    async def _knowledge_idle_loop(self) -> None:
        """Close the knowledge base when nothing used it for ``knowledge.close_after_seconds``
        (:func:`~ai_sysadmin.knowledge.context.close_idle`): after the first investigation
        it held some 350 MB for the life of the daemon, which most of the time watches
        healthy hosts. A failure is logged; the loop goes on."""
        idle = self.settings.knowledge.close_after_seconds
        if not idle or not self.settings.knowledge.enabled:
            return
        from ..knowledge.context import close_idle  # (a store never opened: nothing to do)

        while not await self._stopped_within(min(60.0, idle / 4)):
            before = _rss_mb()
            try:
                closed = await asyncio.to_thread(close_idle, idle)
            except Exception as exc:
                log.warning("knowledge base not closed while idle (%s: %s)",
                            type(exc).__name__, redact(str(exc))[:300],
                            extra={"event": "knowledge_close_failed"})
                continue
            if closed:
                log.info("knowledge base closed, unused for %.0f s: memory %s -> %s MB; it "
                         "opens again at its next use", idle, before, _rss_mb(),
                         extra={"event": "knowledge_closed_idle"})

    async def _stopped_within(self, seconds: float) -> bool:
        """Whether the daemon stops within ``seconds`` (waited for)."""
        with contextlib.suppress(TimeoutError):
            await within(self.stop_event.wait(), seconds)
        return self.stop_event.is_set()

    async def _until_stored(self, work: Callable[[], T], what: str) -> T | None:
        """``work()``, a recovery that writes to the store, tried again every check interval
        while the store refuses it (a lock held past the busy timeout, a full disk): raised
        at the start, the daemon exited 2, which systemd does not restart. None: stopped
        first."""
        said = RefusalLog(log, what)
        while not self.stop_event.is_set():
            try:
                done = work()
            except StoreError as exc:
                said.failed(exc)
                await self._stopped_within(self.settings.check_interval)
                continue
            said.worked()
            return done
        return None

    async def _recover_fixes(self, executor: Executor) -> None:
        """The fixes a gone process left behind settled, and those the policy decided run."""
        left = await self._until_stored(executor.recover, "recovering the fixes a process "
                                        "left behind")
        self._spawned += [asyncio.create_task(executor.run(action.id)) for action in left or ()]

    async def _decide_left(self, executor: Executor) -> None:
        """Proposals recorded just before a crash, each decided now at most once; an
        incident whose proposals were all refused is retried or a person's, as it would have
        been had the crash not come between."""
        for incident_id, decided in (await executor.decide_undecided()).items():
            if self.investigator is not None:
                await self.investigator.decided(incident_id, decided)

    async def _interval_loop(self, checker: HostChecker) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.check_interval
        due = loop.time()
        while not self.stop_event.is_set():
            check_cancelled()  # a host let go: its loop ends, whatever swallowed the cancel
            if not await self.check_host(checker, "interval"):
                await self._forget(checker.host)
                return
            now = loop.time()
            due = next_due(due, now, interval)
            with contextlib.suppress(TimeoutError):
                await within(self.stop_event.wait(), due - now)

    async def _housekeeping_loop(self, executor: Executor) -> None:
        """Every check interval: the ends of fixes this daemon ran that the store refused
        (a full disk) are recorded (:meth:`Executor.record_ends`), and those it decided to
        run whose start the store refused are tried again (:meth:`Executor.start_again`);
        approvals nobody answered within their TTL expire; what an ``approve`` or a daemon
        that died left behind is settled (:meth:`Executor.recover`); lessons the knowledge
        base did not take are tried again (:meth:`Runtime.learn_due`). A failure is logged
        and tried again next time: it never ends the loop."""
        said = RefusalLog(log, "housekeeping of actions")
        while not self.stop_event.is_set():
            with contextlib.suppress(TimeoutError):
                await within(self.stop_event.wait(), self.settings.check_interval)
            if self.stop_event.is_set():
                return
            try:
                await executor.record_ends()
                await asyncio.to_thread(executor.expire)
                for action in await asyncio.to_thread(executor.recover):
                    await executor.run(action.id)
                await executor.start_again()
                # lessons a knowledge base that failed did not take
                await self.runtime.learn_due()
            except Exception as exc:  # tried again at the next interval
                said.failed(exc)
            else:
                said.worked()

    def _removed(self, host: str) -> bool:
        """Removed (``systems remove``) since the daemon started: checked no more, so that it
        opens no incident and costs no LLM call; a restart drops it for good. This machine is
        never removed (`systems remove` refuses it)."""
        return host != self.runtime.local.host and HostStore(self.store.db).removed(host)

    def _renewed(self, old: HostChecker, fresh: HostChecker) -> None:
        """A host added again, renewed by the runtime (:meth:`Runtime.reach`: by its check,
        an investigation or a fix, whichever reached it first): the fresh checker checks it
        in the old one's place, and follows it; the old one's journal cursor, snapshot and
        restart counts are another machine's, maybe, its transport reaches the target it
        had then, and what its failing checks told a person is the removed host's (the new
        one's would never be told)."""
        host = fresh.host
        self.checkers = [fresh if c is old else c for c in self.checkers]
        if host in self._following:
            for task in self._following.pop(host):
                task.cancel()
            self._following[host] = self._follow(fresh)
        self.failures.forget(host)
        log.info("%s was added again (`systems add` after `systems remove`): checked afresh, "
                 "as a new host", host, extra={"host": host})

    async def check_host(self, checker: HostChecker, reason: str) -> bool:
        """One pass for one host: collect, detect, track, then triage what is new. False:
        the host was removed, and nothing was done. A host added again since its checker
        was built gets a fresh one first. A check that raises (a bug of ours, not the
        host's) is logged with its traceback and kept as the host's state: never a healthy
        host, nor one silently unwatched; one the store refused is logged once while it
        refuses (:class:`CheckFailures`)."""
        try:
            if await asyncio.to_thread(self._removed, checker.host):
                return False
            await self.runtime.reach(checker.host)  # renewed where it was added again
            # a loop's checker the host's renewal replaced checks no more
            checker = self.runtime.checkers.get(checker.host, checker)
            report = await checker.check(reason)
        except Exception as exc:
            await self.failures.failed(checker.host, exc, checker.registered)
        else:
            if report.outcome is None or report.outcome.dropped is None:
                await self.failures.worked(checker.host)
            # else: the host was removed or added again while it ran; the check says so
        return True

    async def _forget(self, host: str) -> None:
        """A removed host: its journal is followed no more (an SSH session kept open on a
        host nobody manages, or a reconnect a minute to one that is gone), and its connection
        ends: the daemon may run for months, and the host's sshd would hold our login all
        that time."""
        following = self._following.pop(host, [])
        for task in following:
            task.cancel()
        self._unfollowed(host)
        # the follower's stream ends before its connection does, as do the investigations
        # whose next tool call would run on it
        await asyncio.gather(*following, return_exceptions=True)
        if self.investigator is not None:
            await self.investigator.let_go(host)
        await self.runtime.let_go(host)
        self.failures.forget(host)
        log.info("%s was removed (`systems remove`): no longer checked nor followed", host,
                 extra={"host": host})

    def _unchecked(self, looping: set[str]) -> dict[str, tuple[HostSpec | None, float, str]]:
        """Hosts the store says are managed that no interval loop of this daemon checks,
        with their spec, registration (``first_seen``) and source: added or accepted since
        it started, or added again after their removal ended their loop. A blocking read:
        one SELECT while there are none."""
        rows = self.store.db.conn.execute(
            "SELECT name, first_seen, source FROM hosts WHERE status='managed'").fetchall()
        waiting = {r["name"]: r for r in rows if r["name"] not in looping}
        if not waiting:
            return {}
        # rows alone are not enough: a host the config listed once keeps its 'checked' row
        managed = self.runtime.managed_now()
        return {name: (managed[name], float(r["first_seen"]), r["source"])
                for name, r in waiting.items() if name in managed}

    async def _hosts_loop(self) -> None:
        """Hosts managed while the daemon runs are checked, and followed, from then on: a
        daemon runs for months, and a host added with `systems add` would otherwise wait
        for its restart. A failure is logged and tried again at the next look."""
        said = RefusalLog(log, "looking for hosts added")
        while not await self._stopped_within(self._hosts_every):
            self._reap()
            looping = {h for h, task in self._looping.items() if not task.done()}
            try:
                waiting = await asyncio.to_thread(self._unchecked, looping)
            except Exception as exc:
                said.failed(exc)
                continue
            said.worked()
            for host, (spec, added, source) in waiting.items():
                await self._take_on(host, spec, added, source)

    @property
    def _hosts_every(self) -> float:
        """How often :meth:`_hosts_loop` looks for hosts managed since the start."""
        return min(self.settings.check_interval, HOSTS_POLL_SECONDS)

    def _reap(self) -> None:
        """Forget the loops and followers' tasks that ended (hosts removed, renewed): a daemon
        runs for months. One that ended by an error of ours is logged, never lost unheard; its
        host, still managed, gets a loop again at this look."""
        for task in self._spawned:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("%s ended: %s", task.get_name(), task.exception(),
                          exc_info=task.exception(), extra={"event": "loop_failed"})
        self._spawned = [t for t in self._spawned if not t.done()]

    async def _take_on(self, host: str, spec: HostSpec | None, added: float,
                       source: str) -> None:
        """Check ``host`` from now on, with a checker built as the fleet's; one whose loop
        ended (removed, then added again) gets a fresh one: the old one's state is the
        removed machine's."""
        try:
            if host in self.runtime.checkers:  # the listener swaps it in
                checker = await self.runtime.renew(host, added, spec)
            else:
                checker = await self.runtime.take_on(host, added, spec)
                self.checkers.append(checker)
                how = "`systems add`" if source == "added" else "`systems accept`"
                log.info("%s is managed now (%s): checked from now on", host, how,
                         extra={"host": host, "event": "host_managed"})
        except Exception as exc:  # tried again at the next look, said once while it fails
            if self._not_taken.get(host) != str(exc):
                self._not_taken[host] = str(exc)
                log.error("%s is managed but cannot be checked: %s; tried again every "
                          "%g s", host, redact(str(exc))[:500], self._hosts_every,
                          exc_info=exc, extra={"host": host, "event": "host_not_taken"})
            return
        self._not_taken.pop(host, None)
        self._watch(checker)

    def _watch(self, checker: HostChecker) -> None:
        """The host's interval loop and, when the journal is followed, its follower."""
        for task in self._following.pop(checker.host, []):  # one follower a host, not two
            task.cancel()
        if self.settings.journal_follow:
            self._following[checker.host] = self._follow(checker)
        loop = asyncio.create_task(self._interval_loop(checker), name=f"check:{checker.host}")
        self._looping[checker.host] = loop
        self._spawned.append(loop)

    async def _triggered_loop(self, checker: HostChecker, wake: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        budget = WakeBudget(self.settings.journal_wake_gap)
        while True:
            check_cancelled()
            await wake.wait()
            await asyncio.sleep(max(DEBOUNCE_SECONDS, budget.wait(loop.time())))
            wake.clear()
            budget.spend(loop.time())
            await self.check_host(checker, "journal")

    def _unfollowed(self, host: str) -> None:
        """``host``'s follower out of :attr:`followers` (its tasks are cancelled): each
        host removed and added again, or renewed, left one behind, with its transport, for
        the daemon's life."""
        self.followers = [f for f in self.followers if f.transport.host != host]

    def _follow(self, checker: HostChecker) -> list[asyncio.Task[None]]:
        wake = asyncio.Event()

        def on_trigger(entry: JournalEntry) -> None:
            wake.set()

        def journal_there() -> bool:  # as the host's last check saw it
            return checker.seen is None or checker.seen.systemd_running is not False

        follower = JournalFollower(checker.transport, self.settings, on_trigger,
                                   journal_there=journal_there)
        self._unfollowed(checker.host)  # the one it replaces, whose tasks were cancelled
        self.followers.append(follower)
        started = [
            asyncio.create_task(follower.run(), name=f"follow:{checker.host}"),
            asyncio.create_task(self._triggered_loop(checker, wake), name=f"wake:{checker.host}"),
        ]
        self._spawned += started
        return started

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT) if self.takes_signals else ():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop_event.set)
        if self.takes_signals and self.config_check is not None:
            self._take_hangups(loop)
        log.info(
            "%s starting: %d host(s), interval %.0f s, autonomy %s, journal follower %s",
            self.settings.ai_name, len(self.checkers), self.settings.check_interval,
            self.settings.autonomy_level, "on" if self.settings.journal_follow else "off",
        )
        notifier = self.runtime.notifier
        # built before anything starts: an unreadable or unknown Apprise URL stops the start
        await asyncio.to_thread(lambda: notifier.channels)
        tasks = self._start_tasks()
        try:
            await self.stop_event.wait()
        finally:
            await self._stop(tasks)

    def _take_hangups(self, loop: asyncio.AbstractEventLoop) -> None:
        """SIGHUP checks the changed config first: one that would not start is said, and the
        daemon goes on with the one it started with; one that would, stops it as SIGHUP
        stopped it before (the command's own handler, which ends it by the signal)."""
        stop = signal.getsignal(signal.SIGHUP)
        if stop is signal.SIG_IGN:
            return  # ignored where it was inherited (nohup): a hangup stops nothing
        checking = asyncio.Lock()

        async def check() -> None:
            async with checking:  # one at a time, each reading the file as it is then
                if self.stop_event.is_set() or not await self._config_starts():
                    return
                log.info("SIGHUP: the changed configuration starts: stopping, for the unit "
                         "to start the daemon again on it")
                if callable(stop):
                    stop(signal.SIGHUP, None)
                else:
                    self.stop_event.set()

        def hangup() -> None:
            task = asyncio.create_task(check(), name="config-check")
            self._spawned.append(task)

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, hangup)

    async def _config_starts(self) -> bool:
        """Whether the config as it is now would start the daemon; where not, why is logged
        and told through the channels the daemon has now."""
        assert self.config_check is not None
        try:
            await asyncio.to_thread(self.config_check)
        except Exception as exc:  # whatever a start would refuse, or fail on
            # an error of ours is said to be shown (a ConfigError never quotes a secret); any
            # other by its kind alone
            why = str(exc) if isinstance(exc, AiSysadminError) else (
                f"the check failed ({type(exc).__name__})")
            log.error("SIGHUP: the changed configuration is refused, so the daemon goes on "
                      "with the one it started with: %s", why,
                      extra={"event": "config_refused"})
            with contextlib.suppress(Exception):  # a store that refuses it: logged above
                await self.runtime.notifier.tell(
                    "config_refused", f"{self.settings.ai_name}: changed config refused",
                    f"SIGHUP: the configuration would not start the daemon, which goes on "
                    f"with the one it started with: {why}")
            return False
        return True

    def _start_tasks(self) -> list[asyncio.Task[None]]:
        """The daemon's loops and recoveries, each a task, and every host's checks."""
        tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(self.runtime.notifier.run(self.stop_event), name="notify")]
        if self.worker is not None:
            tasks.append(asyncio.create_task(self.worker(self.stop_event), name="llm-worker"))
        if self.executor is not None:
            # it lives on: an end the store refuses is kept and recorded once it takes it
            self.executor.keeps_ends = True
            tasks.append(asyncio.create_task(self._recover_fixes(self.executor),
                                             name="recover-fixes"))
            tasks.append(asyncio.create_task(self._housekeeping_loop(self.executor),
                                             name="housekeeping"))
            tasks.append(asyncio.create_task(self._decide_left(self.executor),
                                             name="decide-left"))
        if self.investigator is not None:
            tasks.append(asyncio.create_task(self.keep_configs(), name="config-repo"))
            tasks.append(asyncio.create_task(self._knowledge_idle_loop(),
                                             name="knowledge-idle"))
            tasks.append(asyncio.create_task(
                self._until_stored(self.investigator.recover, "recovering investigations "
                                   "a stop cut off"), name="recover-investigations"))
            # a retry is looked for about as often as the first one falls due (tests and
            # `eval` wait 0.5 s), no more than five times a second
            every = max(0.2, min(5.0, self.settings.agent.retry_backoff_seconds))
            tasks.append(asyncio.create_task(self.investigator.retry_loop(self.stop_event,
                                                                          every)))
        for checker in self.checkers:
            self._watch(checker)
        tasks.append(asyncio.create_task(self._hosts_loop(), name="hosts"))
        return tasks

    async def _stop(self, tasks: list[asyncio.Task[None]]) -> None:
        """Every task ended, what the store refused to the last said, the runtime closed."""
        if self.investigator is not None:
            await self.investigator.close()
        tasks += self._spawned
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.executor is not None:  # said, where the store refused it to the last
            try:
                await asyncio.to_thread(self.executor.lost_at_stop)
            except Exception:  # a store that cannot even be read: the stop goes on
                log.exception("what the executor kept for the state database could not "
                              "be told")
        if self._profiling:  # a thread cannot be cancelled: its write ends first
            await asyncio.wait(self._profiling, timeout=PROFILE_WAIT_SECONDS)
        await self.runtime.close()
        log.info("%s stopped cleanly", self.settings.ai_name)


def follow_the_config(runtime: Runtime) -> None:
    """The store made to say what the config, read at this start, says of the remote hosts
    (:func:`fleet.follow_the_config`), each change logged once: before the fleet's checkers
    are built (a host listed again is among them) and before anything recovers or decides (a
    dropped host's incidents would be investigated, its fixes decided). A fleet that was given
    (tests, the fault lab) is not the config's and is left alone."""
    if not runtime.from_config:
        return
    assert runtime.store is not None, "a fleet from the config is the store's too"
    followed = fleet.follow_the_config(runtime.settings, runtime.store)
    for host in followed.listed_again:
        log.info("%s is in the config's remote_systems again: managed again, as a new host",
                 host, extra={"host": host, "event": "host_listed_again"})
    for host, gone in followed.unlisted.items():
        log.info("%s is no longer in the config's remote_systems: no longer managed; %s",
                 host, gone.said(), extra={"host": host, "event": "host_unlisted"})
        if gone.queue_error is not None:  # only work saved is lost: closed, none is run
            log.warning("%s: queued LLM work not cancelled: %s", host,
                        redact(gone.queue_error)[:500],
                        extra={"host": host, "event": "host_unlisted"})


def build_daemon(runtime: Runtime, follow_config: bool = True) -> Daemon:
    """The daemon as ``ai-sysadmin run`` starts it: the store following the config's remote
    hosts (``follow_config``: a config file was read; a start on defaults, the file missing,
    must not take every host it listed for dropped), checks, followers and, unless turned
    off, autonomous investigations through the queue with an embedded worker."""
    if follow_config:
        follow_the_config(runtime)
    daemon = Daemon(runtime)
    settings = runtime.settings
    if not settings.agent.investigate:
        return daemon
    queue = open_for_service(settings, "investigations wait for it")

    def llm_for(incident_id: int) -> QueuedLLM:
        # one pending investigation per incident: its requests share a coalescing key
        return QueuedLLM(queue, Priority.AUTONOMOUS, coalesce_key=f"incident:{incident_id}",
                         timeout=settings.queue.wait_timeout)

    daemon.executor = runtime.executor
    for checker in daemon.checkers:
        checker.listeners.append(daemon._note_system)
    daemon.investigator = Investigator(settings, daemon.store, runtime.transports, llm_for,
                                       runtime.facts, runtime.executor.decide_and_act,
                                       here=runtime.local.host, reach=runtime.reach)
    daemon.investigator.workers_say = queue.workers_say
    if settings.queue.embedded_worker:
        readiness = Readiness(settings, log)
        handler = build_handler(settings, readiness=readiness)
        name = f"{socket.gethostname()}-daemon-{os.getpid()}"

        async def serve(stop: asyncio.Event) -> None:
            async with readiness.watching():
                await queue.serve(handler, concurrency=settings.queue.concurrency,
                                  worker_name=name, stop=stop, says=readiness.says,
                                  defers=readiness.defers_to(queue.workers_say, name))

        daemon.worker = serve
    return daemon


def _rss_mb() -> int | None:
    """This process's resident memory in MB, for the log; None where /proc does not say."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
