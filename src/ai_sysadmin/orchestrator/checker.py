"""One pass of the loop for one host: collect -> detect -> track."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from ..config import Settings, check_host
from ..hosts.transport import Transport
from ..monitor.collector import Collector
from ..monitor.findings import Finding, Severity, fingerprint, not_collected
from ..monitor.rules import (
    READING_FIXES,
    RULE_ERROR,
    RULES_BY_NAME,
    RuleContext,
    evaluate,
    unjudged,
)
from ..monitor.rules.filesystem_errors import RECENT_ERROR_SECONDS, fs_errors_rose
from ..monitor.rules.host_unreachable import HostUnreachable
from ..monitor.rules.oom_kill import oom_kills_rose
from ..monitor.sections import JournalQuery
from ..monitor.snapshot import JournalEntry, Snapshot
from ..store import ActionStore, CheckOutcome, HostStore, IncidentStore, Rises
from .found import FoundMemory
from .recorder import CheckRecorder
from .rises import FS_ERRORS, OOM_KILLS, RESTARTS, RiseMemory
from .turns import Turn, Turns

log = logging.getLogger("ai_sysadmin.orchestrator")
decisions = logging.getLogger("ai_sysadmin.decisions")
#: what became of fixes: a resolution withdraws those that waited for a person
actions_log = logging.getLogger("ai_sysadmin.actions")


#: the rule that says nothing could be collected: not judged only where the host was not asked
UNREACHABLE_RULE = HostUnreachable.name


@dataclass
class CheckReport:
    host: str
    snapshot: Snapshot
    findings: list[Finding]
    judged_rules: set[str]
    outcome: CheckOutcome | None = None
    errors: dict[str, str] = field(default_factory=dict)
    #: what a person must know of what was collected (``Snapshot.notes``): no failure, so
    #: the host may still be healthy
    notes: dict[str, str] = field(default_factory=dict)
    #: what the rules judged from: a fix's verification asks a rule about one subject
    context: RuleContext | None = None
    #: (rule, subject) the judged rules could not judge (a mount df could not read): their
    #: incidents stay as they were
    unjudged: frozenset[tuple[str, str]] = frozenset()

    def judged(self, rule: str, subject: str) -> bool:
        """Whether this check judged ``rule`` for ``subject``: finding nothing of it then
        means it is gone."""
        return rule in self.judged_rules and (rule, subject) not in self.unjudged

    @property
    def kept(self) -> list[tuple[str, str]]:
        """What the checks before found that this one could not judge: still as it was. A
        subject a judged rule left out (a mount df could not read), and what a rule that
        judged nothing found (one that needs an earlier look, as every rule measuring a rate
        or a rise does at a fresh ``check``'s first): a daemon's live incident of it is no
        less live because this look could not see it. The unreachable host's own rule
        judges whenever the host was asked; one not asked says so by its errors."""
        found = self.context.found_before if self.context is not None else {}
        now = {(f.rule, f.subject) for f in self.findings}
        return sorted(key for key in found if key not in now and (
            key in self.unjudged
            or (key[0] not in self.judged_rules and key[0] != UNREACHABLE_RULE)))

    @property
    def healthy(self) -> bool:
        """Healthy only if nothing was found AND the snapshot was collected in full, and
        nothing found before went unjudged."""
        return not self.findings and not self.errors and not self.kept


#: the checks that move the baseline rates are measured from: the daemon's periodic ones
BASELINE_REASON = "interval"
#: the checks that may keep a costly reading while it is recent (``Section.every``): the
#: daemon's own. A check made for one incident (a fix's verification, an approval) keeps all
#: but what its rule reads (:meth:`HostChecker.check`); a person asking reads the host afresh
KEEPING_REASONS = frozenset({BASELINE_REASON, "journal"})
#: the looks of a fix's verification, every few seconds for up to a minute: what they see
#: again is no new sighting of it ("seen 65 times" of an incident that lived 95 s)
VERIFY_REASON = "verify"
#: how far ahead of the host's clock (read in the same collection) a journal entry may be
#: stamped and still count: journald's stamps and the host's uptime are read a moment apart
FUTURE_SLACK_SECONDS = 60.0
#: how far this machine's wall clock may move against its monotonic one between two checks
#: and still be the same clock: NTP slews the two alike, by at most 500 ppm besides; a step
#: (NTP at boot, `date -s`) or a suspend (the monotonic clock stands still) moves it more
CLOCK_STEP_SECONDS = 2.0
#: the texts of one section's lasting error (or note) a checker remembers having said
SAID_MAX = 16
#: how much of each journal entry's message the burst window keeps
WINDOW_MESSAGE_MAX = 1024


class HostChecker:
    """Checks one host; keeps the last snapshots and the journal burst window in memory.

    What must outlive the process is the store's: where the journal was read up to, what
    was found (the live incidents), when restart, OOM kill and file system error counts
    rose, when fixes ran.
    A checker takes them up at its first check (a restarted daemon judges as the old one
    would), reads what was found again at each check (:meth:`_found_before`: a person's
    ``issues resolve`` or ``check``, another process), and asks for fixes again while it
    has found something they decide (one run by ``approve``, another process)."""

    def __init__(self, transport: Transport, settings: Settings, store: IncidentStore | None,
                 consumer: str = "daemon", turns: Turns | None = None,
                 recorder: CheckRecorder[CheckOutcome] | None = None) -> None:
        self.transport = transport
        #: shared by a fleet's checkers: at most ``check_concurrency`` hosts collected at once
        self.turns = turns
        self.settings = settings
        self.store = store
        #: shared by a fleet's checkers: the checks that land together are stored together
        self.recorder = recorder if recorder is not None or store is None \
            else CheckRecorder(store)
        self.consumer = consumer
        self.collector = Collector(transport, settings)
        #: the snapshot of the last check not woken by the journal: what "rising" compares
        #: with (a fix's verification sees a restart count stop rising), the host's facts
        self.previous: Snapshot | None = None
        #: that of the last interval check: what rates are measured from
        self.baseline: Snapshot | None = None
        #: that of the last check, whether stored or not: what the daemon can still say of
        #: the host while the store refuses it (its own disk full)
        self.seen: Snapshot | None = None
        #: the process readings of interval checks before it, as far back as a rate over
        #: runaway_min_seconds needs them, oldest first
        self._earlier: deque[Snapshot] = deque()
        self.window: deque[JournalEntry] = deque()
        #: the host's time at this checker's first check: its window holds every entry since
        self._window_start: float | None = None
        #: what the checks before found, beside the store's live incidents (:mod:`.found`)
        self._found = FoundMemory()
        #: (rule, subject) -> when a fix of it last ran, on this machine's clock
        self._fixed: dict[tuple[str, str], float] = {}
        self._actions = ActionStore(store.db) if store is not None else None
        t = settings.thresholds
        #: when each service's restart count, and its OOM kill count, last rose; each
        #: mounted file system's error count
        self._restarts = RiseMemory(RESTARTS, t.crash_loop_window_seconds)
        self._oom_kills = RiseMemory(OOM_KILLS, t.oom_kill_window_seconds)
        self._fs_errors = RiseMemory(FS_ERRORS, RECENT_ERROR_SECONDS)
        #: the wall clock less the monotonic one at the last check, and the monotonic time
        self._clock: tuple[float, float] | None = None
        self._cursor: str | None = None
        #: whether what the store kept of the host was taken up (:meth:`_take_up`)
        self._taken_up = False
        #: the host's registration this checker checks (``hosts.registration``), taken up
        #: with the rest, or from its first stored check: a check of a host added again since
        #: stores nothing
        self.registered: float | None = None
        #: whether a check dropped so was logged: every later one of this checker is too
        self._said_dropped = False
        #: ("error" or "note", section) -> what the log said of it since it began (at most
        #: SAID_MAX texts): a lasting one (a host down for a week, a container without
        #: systemd) is said as it begins and as it changes, each text once (a flapping
        #: network's refusals and timeouts), not at every check; each check's own line
        #: carries its errors, and its notes where they differ from the check before
        self._said: dict[tuple[str, str], dict[str, None]] = {}
        #: the notes of the last check logged
        self._logged_notes: dict[str, str] | None = None
        self._lock = asyncio.Lock()
        #: called with every report, whoever asked for the check (daemon, executor, approval)
        self.listeners: list[Callable[[CheckReport], None]] = []

    @property
    def host(self) -> str:
        return self.transport.host

    def fix_ran(self, rule: str, subject: str, at: float) -> None:
        """A fix of ``subject``'s finding ended at ``at`` (``time.time()``): what came before
        it is what the fix was for (a burst's earlier errors, still in the window)."""
        self._fixed[(rule, subject)] = at
        self.commands_ran()

    def commands_ran(self) -> None:
        """A fix's commands ran on the host, whether they all did or one failed: what the
        checks keep is read again by the next (a rebuild, a rollback or an update may have
        changed the unit files)."""
        self.collector.forget_kept()

    def _fixes(self, snapshot: Snapshot, found: Collection[tuple[str, str]]
               ) -> dict[tuple[str, str], float]:
        """The fixes whose time still matters: those within the windows of the journal and
        of crash loops (what came before an older one has left them).

        A fix another process ran (a person's ``approve``) is known only to the store: it is
        asked while something of a rule a fix decides was ``found`` before, which such a
        fix must have been for. A healthy host costs no query; what is learned is kept,
        for the checks after the incident resolved."""
        t = self.settings.thresholds
        oldest = snapshot.taken_at - max(t.journal_burst_window_seconds,
                                         t.crash_loop_window_seconds, t.oom_kill_window_seconds)
        if self._actions is not None and any(rule in READING_FIXES for rule, _ in found):
            for key, at in self._actions.fixes_since(self.host, oldest).items():
                self._fixed[key] = max(at, self._fixed.get(key, at))
        # one stamped ahead of now ran before a step back of the clock (NTP correcting one
        # that ran a year ahead): kept ahead, every restart and error came "before" it, and a
        # loop of the unit went unseen until the clock caught up
        self._fixed = {key: min(at, snapshot.taken_at) for key, at in self._fixed.items()
                       if at >= oldest}
        return dict(self._fixed)

    def _restarts_rose(self, snapshot: Snapshot) -> dict[str, float]:
        """When each service's restart count last rose, within the crash loop window: a
        loop slower than the checks shows no rise between two of them."""
        before = self.previous.restarts if self.previous is not None else None
        if before is not None and snapshot.restarts is not None:
            assert self.previous is not None
            # lower than before and not 0: counted from 0 again (a start by hand, a reboot)
            # and risen since
            self._restarts.saw((unit for unit, count in snapshot.restarts.items()
                                if count != before.get(unit, count) and count > 0),
                               self.previous.taken_at)
        return self._restarts.within(snapshot.taken_at)

    def _oom_kills_rose(self, snapshot: Snapshot) -> dict[str, float]:
        """When each service's OOM kill count last rose, within ``oom_kill_window_seconds``."""
        if self.previous is not None:
            self._oom_kills.saw(oom_kills_rose(self.previous.oom_kills, snapshot.oom_kills),
                                self.previous.taken_at)
        return self._oom_kills.within(snapshot.taken_at)

    def _fs_errors_rose(self, snapshot: Snapshot) -> dict[str, float]:
        """When each mount point's file system error count last rose, within the hour:
        btrfs keeps no time of its last error, so a rise is the only sign errors are new."""
        if self.previous is not None:
            self._fs_errors.saw(fs_errors_rose(self.previous.fs_errors, snapshot.fs_errors),
                                self.previous.taken_at)
        return self._fs_errors.within(snapshot.taken_at)

    def _slide_window(self, snapshot: Snapshot) -> list[JournalEntry]:
        """The entries of the burst window, on the host's clock. Arrival order is not time
        order (a journal-remote sender with a wrong clock, a clock stepped back): the
        window is filtered whole, and an entry stamped ahead of the host's clock is left
        out (kept, it would count in every burst and hold every older entry with it)."""
        now = snapshot.host_time()
        horizon = now - self.settings.thresholds.journal_burst_window_seconds
        ahead = now + FUTURE_SLACK_SECONDS
        # an entry read again is counted once: a check whose store write failed left its
        # entries here, and the cursor where it was, so the next reads them anew (12 errors
        # were a burst of 24)
        held = {entry.cursor for entry in self.window}
        # what the rules read of a message is its start (evidence quotes 300 characters): a
        # flood of 8 KiB lines kept whole held 120 MB a host for the window's 300 s
        fresh = [entry if len(entry.message) <= WINDOW_MESSAGE_MAX else dataclasses.replace(
                     entry, message=entry.message[:WINDOW_MESSAGE_MAX])
                 for entry in snapshot.journal or () if entry.cursor not in held]
        self.window = deque(entry for entry in (*self.window, *fresh)
                            if horizon <= entry.timestamp <= ahead)
        return list(self.window)

    def _turn(self) -> contextlib.AbstractAsyncContextManager[Turn]:
        """This host's turn among the fleet's (:mod:`.turns`): none waited for where its
        last collection outlived one, so a host that does not answer keeps no healthy
        host waiting."""
        if self.turns is None:
            return contextlib.nullcontext(Turn())
        return self.turns.turn(self.host)

    async def check(self, reason: str = "interval", afresh: Collection[str] | None = None
                    ) -> CheckReport:
        """A check of the host, recorded; ``afresh``: the sections a check made for one
        incident must read anew (those its rule requires), keeping the rest's recent readings.
        A fix's verification looks every second or so: reading the unit files at each cost
        systemd 0.5 s of CPU a look (2 ms a unit file), half a core for a minute, to judge a
        failed unit."""
        async with self._lock:
            self._take_up()
            query = JournalQuery(self._cursor, self.settings.journal_first_lines)
            keep = reason in KEEPING_REASONS or afresh is not None
            async with self._turn():
                # what costs the host much and rarely changes (the unit files: systemd's CPU
                # for every file) is read at most every so often by the daemon's checks
                snapshot = await self.collector.collect(query, keep=keep, afresh=afresh or ())
            self.seen = snapshot
            self._clock_stepped()
            before = self._found_before()
            ctx = RuleContext(
                snapshot,
                self.settings.thresholds,
                previous=self.previous,
                journal_window=self._slide_window(snapshot),
                baseline=self.baseline,
                earlier_baselines=tuple(self._earlier),
                window_covered=self._covered(snapshot.host_time()),
                found_before=before,
                fixed=self._fixes(snapshot, before),
                restarts_rose_after=self._restarts_rose(snapshot),
                oom_kills_rose_after=self._oom_kills_rose(snapshot),
                fs_errors_rose_after=self._fs_errors_rose(snapshot),
            )
            findings, judged = evaluate(ctx)
            unread = unjudged(ctx, judged)
            self._found.remember(snapshot.taken_at, before, findings, judged, unread)
            report = CheckReport(self.host, snapshot, findings, judged, errors=snapshot.errors,
                                 notes=snapshot.notes, context=ctx, unjudged=unread)
            if self.recorder is not None and not await self._stored(report, reason):
                return report  # another machine's, maybe: nothing of it remembered nor heard
            self._found.stored(findings)
            # A check woken by the journal comes a second after the trouble began: "rising"
            # is judged against the last full look, not against that second.
            if reason != "journal" or self.previous is None:
                self.previous = snapshot
            # Rates (a process's CPU, swap pages) are measured over a full interval: a check
            # that verifies a fix or answers an approval comes seconds after another, and
            # would make the next interval check measure over seconds.
            if reason == BASELINE_REASON:
                self._move_baseline(snapshot)
        for listener in self.listeners:
            listener(report)
        return report

    def _found_before(self) -> dict[tuple[str, str], Severity]:
        """What the checks before found, and how bad: the host's live incidents as the store
        has them now, read at each check (one query on its (host, state) index, none of a
        healthy host's rows), with what only this checker's looks know (:mod:`.found`)."""
        return self._found.before(
            None if self.store is None else self.store.live_findings(self.host))

    async def _stored(self, report: CheckReport, reason: str) -> bool:
        """The check recorded in the store (:attr:`recorder`), and what it read up to kept;
        False where the store dropped it (:meth:`_dropped`)."""
        assert self.recorder is not None
        rises = {m.counter: dict(m.unsaved) for m in self._rise_memories}
        report.outcome = await self.recorder.record(
            lambda: self._record(report, rises, sighting=reason != VERIFY_REASON))
        if report.outcome.dropped is not None:
            self._dropped(report.outcome.dropped)
            return False
        if report.outcome.left_to_fresh:
            # a kept reading resolves nothing (another look, a person's `check`, may have
            # seen it since): the next check reads afresh what it kept
            self.collector.forget_kept()
        if self.registered is None:  # this machine's first check made its row
            self.registered = report.outcome.registered
        self._log(report, reason)
        self._cursor = report.snapshot.journal_cursor or self._cursor
        for memory in self._rise_memories:
            memory.saved(rises[memory.counter])
        return True

    def _dropped(self, why: str) -> None:
        if self._said_dropped:
            return
        self._said_dropped = True
        log.info("a check of %s is dropped, nothing of it stored: %s; what it saw is the "
                 "removed machine's", self.host, why,
                 extra={"host": self.host, "event": "check_dropped"})

    def _move_baseline(self, snapshot: Snapshot) -> None:
        """``snapshot`` is the new baseline; the old one joins the earlier ones while a rate
        over runaway_min_seconds may be measured from it: a check seconds after this one
        measures from the newest at least that old. At most one every sixteenth of that
        span is kept, so a short interval keeps a few, not one per check."""
        sustained = max(self.settings.thresholds.runaway_min_seconds, 1.0)
        old, self.baseline = self.baseline, snapshot
        if old is not None and old.processes is not None and (
                not self._earlier or old.taken_at - self._earlier[-1].taken_at >= sustained / 16):
            # the process readings alone: all that is measured from it
            self._earlier.append(Snapshot(old.host, old.taken_at, processes=old.processes,
                                          cpu_seconds=old.cpu_seconds,
                                          processes_listed_at=old.processes_listed_at))
        # the newest one old enough now serves every later check: the ones before it, none
        while len(self._earlier) >= 2 and \
                snapshot.taken_at - self._earlier[1].taken_at >= sustained:
            self._earlier.popleft()

    def _covered(self, now: float) -> float:
        """How long the burst window has been watched, on the host's clock (``now``): since
        the first look, or since the host's clock was set back (the window keeps no entry
        stamped ahead of it). Left at the first look, the window was never covered until the
        clock caught up, and no burst ended for a year."""
        if self._window_start is None or now < self._window_start:
            self._window_start = now
        return now - self._window_start

    def _clock_stepped(self) -> None:
        """Rates measured on this machine's wall clock across a step of it measure the step:
        after one back a year no earlier look was ``runaway_min_seconds`` old for that year,
        and the runaway rule judged nothing; after a suspend (a VM resumed), a hog's share
        over the hour it slept looked idle and its incident resolved. Once the wall clock
        moved against the monotonic one, the looks rates are measured from are dropped (the
        last look keeps what is not a rate: restart counts, the OS): the next checks measure
        afresh, judging none of those rules meanwhile."""
        mono = time.monotonic()
        offset = time.time() - mono
        last, self._clock = self._clock, (offset, mono)
        if last is None or abs(offset - last[0]) <= CLOCK_STEP_SECONDS + (mono - last[1]) / 1000:
            return
        if self.baseline is not None or self._earlier:
            log.info("%s: this machine's clock moved %+.0f s since the last check (set, or "
                     "the machine slept): rates are measured afresh", self.host,
                     offset - last[0], extra={"host": self.host, "event": "clock_stepped"})
        self.baseline = None
        self._earlier.clear()
        if self.previous is not None:  # what a rate falls back on without a baseline
            self.previous = dataclasses.replace(self.previous, processes=None,
                                                cpu_seconds=None, swap=None)

    async def forget(self) -> None:
        """A removed host's checker, kept by name (a fix approved for it is refused by the
        store, not by a missing name): what it remembers of the host goes, its snapshots and
        parses (some hundreds of KiB a host, kept for the daemon's life, for each host ever
        removed); a host added again gets a checker of its own."""
        async with self._lock:  # a check in flight ends first
            self.previous = self.baseline = self.seen = None
            self._earlier.clear()
            self.window.clear()
            self.collector = Collector(self.transport, self.settings)
            if self.turns is not None:
                self.turns.outlived.discard(self.host)

    def carry_on(self, other: HostChecker) -> None:
        """Look at the host as ``other`` has so far: its earlier snapshots (what is rising,
        rates), its journal window and where it read the journal up to. A check of this one
        then judges what ``other``'s next would, without recording anything of it."""
        self.previous, self.baseline = other.previous, other.baseline
        self.registered = other.registered
        self._earlier = deque(other._earlier)
        self.window = deque(other.window)
        self._window_start = other._window_start
        self._found = other._found.copy()
        self._fixed = dict(other._fixed)
        # what rose is the host's; how long a rise counts is this checker's settings
        self._restarts = other._restarts.carried_on(self._restarts.window)
        self._oom_kills = other._oom_kills.carried_on(self._oom_kills.window)
        self._fs_errors = other._fs_errors.carried_on(self._fs_errors.window)
        self._clock = other._clock
        self._cursor, self._taken_up = other._cursor, True

    def _take_up(self) -> None:
        """What the store kept of this host, read on the first check: where its journal was
        read up to, and when its services' restart and OOM kill counts, and its file
        systems' error counts, rose (an OOM kill incident resolves a window after the last
        kill, not a window after the restart). After that this checker's own memory serves
        (it is the only writer of its host's cursor), with no query on the event loop. What
        the checks before found is read at every check (:meth:`_found_before`): others
        change it."""
        if self.store is None or self._taken_up:
            return
        self._taken_up = True
        self.registered = self.store.registration(self.host)
        self._cursor = self.store.journal_cursor(self.host, self.consumer)
        now = time.time()
        for memory in self._rise_memories:
            memory.take_up(self.store.rises(self.host, memory.counter, now - memory.window))

    @property
    def _rise_memories(self) -> tuple[RiseMemory, ...]:
        return (self._restarts, self._oom_kills, self._fs_errors)

    def _record(self, report: CheckReport, rises: dict[str, dict[str, float]],
                sighting: bool = True) -> CheckOutcome:
        """The check in the store, in a worker thread; ``rises``: counter -> its rises the
        store has yet to keep."""
        assert self.store is not None
        snapshot, findings = report.snapshot, report.findings
        # a host this machine could not ask is neither: what the store knew of it stays
        reachable = None if snapshot.unasked is not None else \
            UNREACHABLE_RULE not in {f.rule for f in findings}
        outcome = self.store.record_check(
            self.host,
            findings,
            report.judged_rules,
            unjudged={fingerprint(snapshot.host, rule, subject)
                      for rule, subject in report.unjudged},
            consumer=self.consumer,
            journal=snapshot.journal or [],
            journal_cursor=snapshot.journal_cursor,
            os_name=snapshot.os.pretty_name if snapshot.os else None,
            collected_ok=not snapshot.errors,
            reachable=reachable,
            last_error=self._last_error(snapshot, reachable),
            rises={m.counter: Rises(rises[m.counter], snapshot.taken_at - m.window)
                   for m in self._rise_memories},
            registered=self.registered,
            collected_at=snapshot.taken_at,
            sighting=sighting,
            kept_rules=_judged_from_kept(report),
        )
        if outcome.dropped is None:
            self.discover_hosts(snapshot)
        return outcome

    @staticmethod
    def _last_error(snapshot: Snapshot, reachable: bool | None) -> str | None:
        """What ``systems`` says of a check that was not whole: a host that did not answer,
        or ran nothing, failed every section alike (said once, without their names); else
        which sections failed, and why."""
        if not snapshot.errors:
            return None
        if _failed_alike(snapshot, reachable):
            return next(iter(snapshot.errors.values()))
        return not_collected(snapshot.errors)

    def discover_hosts(self, snapshot: Snapshot) -> None:
        """Machines seen in this host's journal (journal-remote's ``_HOSTNAME``) wait in the
        inventory for the operator to accept them; not those of a host the operator removed
        (while its check ran), which is managed no more and speaks for nobody."""
        assert self.store is not None
        own = {self.host.split(".")[0].lower()}
        seen = {e.hostname.split(".")[0].lower() for e in snapshot.journal or [] if e.hostname}
        if len(seen) <= 1:
            return  # a host's own journal names only itself (or the lab's own name)
        hosts = HostStore(self.store.db)
        if hosts.removed(self.host):
            return
        for name in sorted(seen - own):
            try:
                check_host(name)  # any sender chooses its _HOSTNAME
            except ValueError:
                continue
            if hosts.discover(name, f"the journal of {self.host}"):
                log.info("discovered %s in the journal of %s; accept it with `systems accept`",
                         name, self.host, extra={"host": name})

    def _log(self, report: CheckReport, reason: str) -> None:
        out = report.outcome
        assert out is not None
        # a check's notes where they differ from the last check's: the same ones again (a
        # host without systemd says so at every check) were most of each healthy check's
        # line, and a fleet's log rotated its last day away; each is said as it begins
        # (_say_lasting). Errors stay on every line: few hosts fail, and each line says why
        notes = None if report.notes == self._logged_notes else report.notes
        self._logged_notes = report.notes
        log.info(
            "checked %s (%s): %d findings, %d opened, %d reopened, %d resolved",
            self.host, reason, len(report.findings), len(out.opened), len(out.reopened),
            len(out.resolved),
            extra={"host": self.host, "reason": reason, "errors": _errors_said(report),
                   **({} if notes is None else {"notes": notes})},
        )
        self._say_lasting(report)
        by_fp = {f.fingerprint: f for f in report.findings}
        for kind, ids in (("opened", out.opened), ("reopened", out.reopened),
                          ("changed", out.changed), ("resolved", out.resolved)):
            for incident_id in ids:
                # its own finding, not the check's: each line said every finding of the host
                found = by_fp.get(out.fingerprints.get(incident_id, ""))
                decisions.info(
                    "incident %d %s%s", incident_id, kind,
                    "" if found is None else f": {found.summary}",
                    extra={"incident": incident_id, "event": kind, "host": self.host,
                           "findings": [] if found is None else [found.summary]},
                )
        for action_id in out.withdrawn:
            actions_log.info("action %d withdrawn: its incident resolved, no longer needed",
                             action_id, extra={"action": action_id, "host": self.host})

    def _say_lasting(self, report: CheckReport) -> None:
        """Each section's error and note as it begins or changes, and a section collected
        again once its error is over. A host that answered nothing, or ran nothing, is one
        line, not one a section (two dozen, of the same reason)."""
        now = {**{("error", section): why for section, why in _errors_said(report).items()},
               **{("note", section): note for section, note in report.notes.items()}}
        for kind, section in sorted(self._said.keys() - now.keys()):
            del self._said[(kind, section)]
            if kind == "error":
                log.info("%s: %s", self.host, f"rule {rule} judges again"
                         if (rule := _rule_of(section)) else
                         f"{_sections(section)} collected again",
                         extra={"host": self.host, "section": section,
                                "event": "section_back"})
        for (kind, section), text in now.items():
            said = self._said.setdefault((kind, section), {})
            if text in said:
                continue
            said[text] = None
            if len(said) > SAID_MAX:
                del said[next(iter(said))]
            if kind == "error" and (rule := _rule_of(section)):
                raised = report.context.raised.get(rule) if report.context else None
                log.error("%s: rule %s failed: %s; it judged nothing (its incidents stay as "
                          "they were), and the host is not called healthy", self.host, rule,
                          text, exc_info=raised, extra={"host": self.host, "section": section})
            elif kind == "error":
                log.warning("%s: %s not collected: %s", self.host, _sections(section), text,
                            extra={"host": self.host, "section": section})
            else:
                log.info("%s: %s: %s", self.host, section, text,
                         extra={"host": self.host, "section": section, "event": "check_note"})


#: what the log calls every section of a host that answered nothing, or ran nothing
ALL_SECTIONS = "every"


def _errors_said(report: CheckReport) -> dict[str, str]:
    """The check's section errors as the log says them: of a host that answered nothing, or
    ran nothing, one for all (every section failed for the same reason: a log line, and a
    record of kilobytes, a section each check was the same sentence two dozen times)."""
    errors = report.errors
    reachable = all(f.rule != UNREACHABLE_RULE for f in report.findings)
    if errors and _failed_alike(report.snapshot, reachable):
        return {ALL_SECTIONS: _shared_reason(list(errors.values()))}
    return errors


def _failed_alike(snapshot: Snapshot, reachable: bool | None) -> bool:
    """Whether every section failed for one reason: the host did not answer, ran nothing
    (its login refused), or was not asked (this machine's open files ran out)."""
    return not reachable or snapshot.refused is not None or snapshot.unasked is not None


def _rule_of(section: str) -> str:
    """The rule a section error is of (one that raised: ``rule:NAME``), or ""."""
    return section.removeprefix(RULE_ERROR) if section.startswith(RULE_ERROR) else ""


def _sections(section: str) -> str:
    return "every section" if section == ALL_SECTIONS else f"section {section}"


def _shared_reason(errors: list[str]) -> str:
    """What every section's error says alike (a host that refused the connection: each names
    its command, then the same reason); the first error whole where they share too little."""
    first = errors[0]
    tail = os.path.commonprefix([e[::-1] for e in errors])[::-1]
    at = tail.find(": ")
    said = tail[at + 2:] if at >= 0 else ""
    return said if len(errors) > 1 and len(said) >= 8 else first


def _judged_from_kept(report: CheckReport) -> frozenset[str]:
    """The rules of ``report`` that judged in part from a reading kept from a look before."""
    kept = report.snapshot.kept
    return frozenset(name for name in report.judged_rules if kept and name in RULES_BY_NAME
                     and kept.intersection(RULES_BY_NAME[name].requires))


def fleet_checkers(transports: list[Transport], settings: Settings, store: IncidentStore | None,
                   consumer: str = "daemon") -> list[HostChecker]:
    """One checker per host, sharing one limit of hosts collected at once and one recorder."""
    turns = Turns(settings.check_concurrency)
    recorder = CheckRecorder[CheckOutcome](store) if store is not None else None
    return [HostChecker(t, settings, store, consumer, turns, recorder) for t in transports]
