"""Collect a Snapshot of one host through its Transport.

What is collected is the table of :mod:`.sections`; here it is read. Sections run concurrently
(a section waits only for those it comes after); one that fails is recorded in
``Snapshot.errors`` and the others go on. A transport with ``one_round_trip`` (SSH) gets every
source of the table in one remote script instead (:mod:`.remote_script`), whose results feed
the very same rows. A few rows are read in a second step, from what the first found
(``Section.then``: a unit file systemd calls bad, a journal that outran the checks); most
checks have none, and a remote host gets a second script only where one has something to ask.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field

from ..config import Settings
from ..errors import CommandRefused, CommandTimeout, LocalLimit, ProgramMissing, TransportError
from ..hosts.transport import CommandResult, Transport
from . import parsers, remote_script
from .findings import quote
from .sections import (
    JOURNAL_ACCESS_ARGV,
    NIXOS_SYSTEM_PROFILE,
    SECTIONS,
    SINCE_PREFIX,
    JournalQuery,
    ParseReuse,
    Plan,
    ProcessHistory,
    Reading,
    Section,
    Source,
    answered,
    journal_argv,
    ps_argv,
)
from .snapshot import Snapshot

__all__ = ["CAREFUL_SECONDS", "JOURNAL_ACCESS_ARGV", "NIXOS_SYSTEM_PROFILE", "SINCE_PREFIX",
           "Collector", "JournalQuery", "journal_argv"]

log = logging.getLogger("ai_sysadmin.service")

#: how long a host's checks stay careful after one of them hung
CAREFUL_SECONDS = 3600.0


class Collector:
    """Takes snapshots of one host."""

    def __init__(self, transport: Transport, settings: Settings) -> None:
        self.transport = transport
        self.settings = settings.on_host(transport.local_programs)
        #: until then, remote checks run each command under its own timeout(1)
        self._careful_until = 0.0
        #: the last plan's rows and script, and what they were made for: a host's checks ask
        #: the same until the journal moves on
        self._planned: _Planned | None = None
        #: the last reading of each section read only every so often (``Section.every``), and
        #: when (monotonic seconds)
        self._kept: dict[str, tuple[float, object]] = {}
        #: how many times the kept readings were forgotten: a collection that began before
        #: the last time neither fills nor keeps from what it began with
        self._forgotten = 0
        self._reuse = ParseReuse()
        self._history = ProcessHistory()

    def plan(self, journal: JournalQuery | None = None, keep: bool = False,
             afresh: Collection[str] = (), left_out: frozenset[str] = frozenset()) -> Plan:
        """What a check reads; ``keep``: a section read only every so often keeps its last
        reading while that is recent enough (see :attr:`Section.every`), but those of
        ``afresh``; ``left_out``: sections not read at all (not collected)."""
        query = journal or JournalQuery(first_lines=self.settings.journal_first_lines)
        kept: frozenset[str] = frozenset()
        if keep and self._kept:
            now = time.monotonic()
            kept = frozenset(section.name for section in SECTIONS
                             if section.every is not None and section.name in self._kept
                             and section.name not in afresh
                             and now - self._kept[section.name][0] < section.every(self.settings))
        return Plan(self.settings, query, self.transport.runs_as_root, kept, left_out,
                    self._reuse, self._history)

    def forget_kept(self) -> None:
        """The next check reads every section anew, those it may keep too. A check in flight
        (this may come from a fix's commands, outside the host's checks) still fills what it
        planned to keep, and keeps nothing it read: it may have read before the change."""
        self._kept.clear()
        self._forgotten += 1

    def _rows(self, plan: Plan) -> _Planned:
        key = (plan.journal, plan.runs_as_root, plan.kept, plan.left_out)
        planned = self._planned
        if planned is None or planned.key != key:
            planned = self._planned = _Planned.of(key, plan)
        return planned

    def sources(self, journal: JournalQuery | None = None) -> list[Source]:
        """Every source a check's first step may read, in the table's order.

        Conditional ones are all there (they are cheap in one script): the os-release
        fallback, the NixOS generation, the journal position when no cursor is stored yet.
        """
        return list(self._rows(self.plan(journal)).sources)

    def script(self, journal: JournalQuery | None = None,
               careful: bool = False) -> remote_script.RoundTrip:
        """The remote script a check sends (with a marker of its own)."""
        return self._rows(self.plan(journal)).trip.again(careful)

    async def _round_trip(self, planned: _Planned) -> remote_script.ReplayTransport:
        """One script for the whole Snapshot. It starts no process but the commands; a step
        that hangs makes the script overrun, and then this host's checks put each step under
        its own timeout(1) for a while (CAREFUL_SECONDS), starting with this one again. A
        host that sent nothing back, not even the script's first line, did not overrun: it
        stopped answering, and no time limit of a step would get more of it (the transport
        dropped its connection; the next check connects afresh)."""
        listings = [ps_argv(self.settings.programs)]

        async def trip(careful: bool) -> remote_script.ReplayTransport:
            return await remote_script.run_round_trip(
                self.transport, planned.trip.again(careful), listings)

        if time.monotonic() < self._careful_until:
            return await trip(careful=True)
        replay = await trip(careful=False)
        if replay.overran:
            log.warning("%s: the check ran past %g s; each command gets its own time limit now",
                        self.transport.host, self.settings.command_timeout,
                        extra={"host": self.transport.host})
            self._careful_until = time.monotonic() + CAREFUL_SECONDS
            replay = await trip(careful=True)
        return replay

    async def collect(self, journal: JournalQuery | None = None, keep: bool = False,
                      afresh: Collection[str] = (), left_out: frozenset[str] = frozenset()
                      ) -> Snapshot:
        """A Snapshot of the host; ``keep``, ``afresh`` and ``left_out``: see :meth:`plan`."""
        plan = self.plan(journal, keep, afresh, left_out)
        kept = {name: self._kept[name][1] for name in plan.kept}
        forgotten = self._forgotten
        if self.transport.one_round_trip:
            planned = self._rows(plan)
            replay = await self._round_trip(planned)
            snap = _replayed(replay, planned)
            refusal = replay.refusal  # this script's own answer, whatever ran since
            if isinstance(replay.failure, LocalLimit):
                snap.unasked = _own(snap, str(replay.failure))
        else:
            snap = Snapshot(host=self.transport.host, taken_at=time.time())
            read = await self._take_each(tuple((s, s.sources_of(plan)) for s in SECTIONS),
                                         plan, snap)
            refusal = self.transport.refusal
            # nothing read, and for want of open files here: this machine's shortage
            if not read.read and read.short:
                snap.unasked = snap.errors[read.short[0]]
        self._refused(snap, refusal)
        await self._second_step(snap, plan)
        self._keep(snap, plan, kept, forgotten == self._forgotten)
        return snap

    def _refused(self, snap: Snapshot, refusal: CommandRefused | None) -> None:
        """Where the host answered but ran nothing of the check (``refusal``: the script's,
        or the transport's as the first step ends), every section says why in the host's
        own words, masked, and the snapshot says it was an answer: such a host is
        misconfigured, not unreachable."""
        if refusal is None or not snap.errors:
            return
        snap.refused = quote(str(refusal), limit=500)
        for name in snap.errors:
            snap.errors[name] = _own(snap, snap.refused)

    async def _take_each(self, rows: _Rows, plan: Plan, snap: Snapshot) -> _Taken:
        """The rows command by command, each once those it comes after (of ``rows``) are
        taken; what was read, and what failed for want of open files here."""
        steps: dict[str, asyncio.Future[None]] = {}
        reads: dict[tuple[str, ...], asyncio.Future[Reading]] = {}
        taken = _Taken()
        for section, sources in rows:
            before = [steps[name] for name in section.after if name in steps]
            steps[section.name] = asyncio.ensure_future(
                self._section(section, sources, plan, snap, before, reads, taken))
        await asyncio.gather(*steps.values())
        return taken

    async def _second_step(self, snap: Snapshot, plan: Plan) -> None:
        """The rows read from what the first step found (``Section.then``): in most checks
        none, and nothing is sent; else one more script for a remote host."""
        rows = tuple((section, sources) for section in SECTIONS
                     if (sources := section.sources_then(snap, plan)))
        if not rows:
            return
        if self.transport.one_round_trip:
            replay = await self._round_trip(_Planned.of(None, plan, rows))
            _take_replayed(replay, rows, snap, plan)
        else:
            await self._take_each(rows, plan, snap)

    def _keep(self, snap: Snapshot, plan: Plan, kept: dict[str, object], current: bool
              ) -> None:
        """Fill what the check kept from the last reading (``kept``, as the plan found it);
        remember what it read anew where ``current`` (nothing was forgotten since it began; a
        reading the section does not keep, one that shows trouble, is read again next)."""
        now = time.monotonic()
        snap.kept = plan.kept
        for section in SECTIONS:
            if section.every is None:
                continue
            reading = getattr(snap, section.name)
            if section.name in plan.kept:
                setattr(snap, section.name, kept[section.name])
            elif not current or section.name in snap.errors or reading is None:
                continue
            elif _then_failed(section, snap):
                # part known: not kept, and an older reading must not stand in for it
                self._kept.pop(section.name, None)
            elif section.keeps(reading):
                self._kept[section.name] = (now, reading)
            else:
                self._kept.pop(section.name, None)

    def replayed(self, journal: JournalQuery | None = None) -> Snapshot:
        """:meth:`collect` over a round trip's results, which are all here (this collector's
        transport is their :class:`~.remote_script.ReplayTransport`)."""
        transport = self.transport
        assert isinstance(transport, remote_script.ReplayTransport)
        return _replayed(transport, self._rows(self.plan(journal)))

    async def _section(self, section: Section, sources: tuple[Source, ...], plan: Plan,
                       snap: Snapshot, before: list[asyncio.Future[None]],
                       reads: dict[tuple[str, ...], asyncio.Future[Reading]],
                       taken: _Taken) -> None:
        if before:
            await asyncio.gather(*before)
        if not sources:
            return  # nothing to read for this check (a journal position already known)
        try:
            readings = _unasked(section, snap, sources)
            asked = readings is None
            if readings is None:
                readings = await self._read_all(sources, reads)
            section.take(readings, snap, plan)
            if asked:
                taken.read.append(section.name)
        except (TransportError, parsers.ParseError, ValueError, OSError) as exc:
            _failed(snap, section.name, exc)
            if isinstance(exc, LocalLimit):
                taken.short.append(section.name)

    async def _read_all(self, sources: tuple[Source, ...],
                        reads: dict[tuple[str, ...], asyncio.Future[Reading]]) -> list[Reading]:
        """The sources' results in order; a fallback only where those before it gave nothing.
        Rows that read the same source share one read of it (``reads``: this check's)."""

        def read(source: Source) -> asyncio.Future[Reading]:
            if source.argv not in reads:
                reads[source.argv] = asyncio.ensure_future(self._read(source))
            return reads[source.argv]

        first = [source for source in sources if not source.fallback]
        readings: list[Reading] = list(await asyncio.gather(*map(read, first)))
        for source in sources[len(first):]:
            if any(map(answered, readings)):
                break
            readings.append(await read(source))
        return readings

    async def _read(self, source: Source) -> Reading:
        timeout = self.settings.command_timeout
        try:
            if source.path is None:
                return await self.transport.run(source.argv, timeout)
            text = await self.transport.read_file(source.path, timeout)
        except TransportError as exc:
            return await self._unguarded(source, exc)
        return CommandResult(source.argv, 0 if text is not None else 1, text or "", "", 0.0)

    async def _unguarded(self, source: Source, exc: TransportError) -> Reading:
        """A guarded command that could not start (this machine out of processes, say): what
        the remote script would have answered where the guard's path is absent (systemd not
        PID 1), a fact; else the failure itself, which says nothing of the host. Asked only
        then: a check that runs its commands pays for no test."""
        guard = source.guard
        if guard is None or isinstance(exc, (ProgramMissing, CommandTimeout, LocalLimit,
                                             CommandRefused)):
            return exc
        test = self.settings.programs.resolve("test")
        for path in (guard.path, *guard.also):
            try:
                done = await self.transport.run((test, *guard.test.split(), path),
                                                self.settings.command_timeout)
            except TransportError:
                return exc
            if done.returncode != 1:  # 0: the path is there; else test could not tell
                return exc
        return source.unasked


#: rows of the table with what a check reads for each
_Rows = tuple[tuple[Section, tuple[Source, ...]], ...]


@dataclass
class _Taken:
    """Of the rows a step took command by command: those it read, and those whose reading
    failed for want of open files here (:class:`~ai_sysadmin.errors.LocalLimit`)."""

    read: list[str] = field(default_factory=list)
    short: list[str] = field(default_factory=list)


def _then_failed(section: Section, snap: Snapshot) -> bool:
    """Whether a second-step row that reads from ``section`` failed: the reading is only
    part known (which bad unit file leads nowhere, which hides another), and kept, the
    checks that keep it would not ask again."""
    return any(row.then is not None and section.name in row.after and row.name in snap.errors
               for row in SECTIONS)


@dataclass(frozen=True)
class _Planned:
    """One plan's rows with their sources, and the remote script that asks them all."""

    key: object
    plan: Plan
    rows: _Rows
    sources: tuple[Source, ...]
    #: the script's shape: each check runs a copy with a marker of its own
    trip: remote_script.RoundTrip

    @classmethod
    def of(cls, key: object, plan: Plan, rows: _Rows | None = None) -> _Planned:
        """The first step's rows; or ``rows``, those of the second step."""
        if rows is None:
            rows = tuple((section, section.sources_of(plan)) for section in SECTIONS)
        sources = tuple(source for _, row in rows for source in row)
        trip = remote_script.RoundTrip.plan(
            [s.argv for s in sources], plan.settings.command_timeout,
            {s.argv: s.guard for s in sources if s.guard is not None}, careful=False)
        return cls(key, plan, rows, sources, trip)


def _replayed(transport: remote_script.ReplayTransport, planned: _Planned) -> Snapshot:
    """A Snapshot from a round trip's results, which are all here: the rows in the table's
    order (which puts every row after those it reads), one after the other, with no task and
    no wait for the event loop (a fleet sweep reads fifty of them at once)."""
    snap = Snapshot(host=transport.host, taken_at=time.time())
    _take_replayed(transport, planned.rows, snap, planned.plan)
    return snap


def _take_replayed(transport: remote_script.ReplayTransport, rows: _Rows, snap: Snapshot,
                   plan: Plan) -> None:
    """The rows in order from a round trip's results."""
    for section, sources in rows:
        if not sources:
            continue
        try:
            readings = _unasked(section, snap, sources)
            if readings is None:
                readings = _read_all_now(sources, transport)
            section.take(readings, snap, plan)
        except (TransportError, parsers.ParseError, ValueError, OSError) as exc:
            _failed(snap, section.name, exc)


def _own(snap: Snapshot, text: str) -> str:
    """A section's error without the host's name a transport's error starts with: the
    snapshot is the host's, and whoever says the error names the host once ("web1: not
    collected: mounts: cannot start df", not "... mounts: web1: cannot start df")."""
    return text.removeprefix(f"{snap.host}: ")


def _failed(snap: Snapshot, section: str, exc: Exception) -> None:
    snap.errors[section] = _own(snap, str(exc))


def _unasked(section: Section, snap: Snapshot, sources: tuple[Source, ...]) -> list[Reading] | None:
    """Where a row's ``when`` does not hold, what the remote script's guard answers where its
    path is absent; None where the sources are to be read."""
    if section.when is not None and not section.when(snap):
        return [source.unasked for source in sources]
    return None


def _read_all_now(sources: tuple[Source, ...],
                  replay: remote_script.ReplayTransport) -> list[Reading]:
    """:meth:`Collector._read_all` from a round trip's results (a file as ``read_file``
    gives it: its text, or exit 1 where it cannot be read)."""
    readings: list[Reading] = []
    for source in sources:
        if source.fallback and any(map(answered, readings)):
            break
        try:
            done = replay.answer(source.argv)
        except TransportError as exc:
            readings.append(exc)
            continue
        if source.path is not None and (done.stderr or done.returncode not in (0, 1)):
            done = CommandResult(source.argv, 0 if done.ok else 1,
                                 done.stdout if done.ok else "", "", 0.0)
        readings.append(done)
    return readings
