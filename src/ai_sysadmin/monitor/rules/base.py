"""The one interface every detection rule implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from ...config import Thresholds
from ..findings import Finding, Severity
from ..snapshot import JournalEntry, Snapshot


@dataclass(frozen=True)
class RuleContext:
    """What a rule may look at: this snapshot, earlier ones of the same host, thresholds.

    ``previous`` is the snapshot of the host's previous check: what "still rising" compares
    with. ``baseline`` is that of the last periodic check, which rates (CPU seconds, swap pages
    per second) are measured from, so that a check seconds after another (a verification, an
    approval) neither measures over seconds nor moves the next one's start; without one, rates
    are measured from ``previous``; ``earlier_baselines`` are the periodic snapshots before it,
    for a rate over a longer span than the last one gives. ``journal_window`` holds the
    journal entries of the last burst window (the daemon keeps it across passes); by default
    it is the snapshot's own.
    """

    snapshot: Snapshot
    thresholds: Thresholds = field(default_factory=Thresholds)
    previous: Snapshot | None = None
    journal_window: Sequence[JournalEntry] | None = None
    baseline: Snapshot | None = None
    #: periodic snapshots before ``baseline`` (their process readings), oldest first, as far
    #: back as ``runaway_min_seconds`` reaches: a check seconds after the last interval check
    #: measures a sustained share from the newest one old enough
    earlier_baselines: Sequence[Snapshot] = ()
    #: seconds back from this snapshot over which ``journal_window`` holds every entry (a
    #: checker's window fills from its first check on); None: the window is whole
    window_covered: float | None = None
    #: (rule, subject) -> the severity the checker's previous check found it at: a level
    #: that warned then is well again only a margin below its warning level, and one that
    #: was critical is only a warning again a margin below its critical level
    found_before: Mapping[tuple[str, str], Severity] = field(default_factory=dict)
    #: (rule, subject) -> when a fix of it last ran, on this machine's clock (``time.time()``,
    #: as ``Snapshot.taken_at``): what came before it is what the fix was for
    fixed: Mapping[tuple[str, str], float] = field(default_factory=dict)
    #: service -> the latest look after which its restart count rose, on this machine's
    #: clock (the checker remembers them across its looks, ``crash_loop_window_seconds``)
    restarts_rose_after: Mapping[str, float] = field(default_factory=dict)
    #: service -> the latest look after which its OOM kill count rose, on this machine's
    #: clock (the checker remembers them, ``oom_kill_window_seconds``)
    oom_kills_rose_after: Mapping[str, float] = field(default_factory=dict)
    #: mount point -> the latest look after which its file system's error count rose, on
    #: this machine's clock (the checker remembers them, ``RECENT_ERROR_SECONDS``)
    fs_errors_rose_after: Mapping[str, float] = field(default_factory=dict)
    #: rule -> what it raised judging this context (:func:`evaluate` fills it, beside the
    #: snapshot's ``rule:NAME`` error): its traceback, which a bug report needs
    raised: dict[str, BaseException] = field(default_factory=dict)

    @property
    def rates_from(self) -> Snapshot | None:
        """The snapshot a rate is measured from."""
        return self.baseline if self.baseline is not None else self.previous

    @property
    def host(self) -> str:
        return self.snapshot.host

    @property
    def window(self) -> Sequence[JournalEntry]:
        if self.journal_window is not None:
            return self.journal_window
        return self.snapshot.journal or []


class Rule(ABC):
    #: stable identifier, part of every fingerprint
    name: str
    #: every section (of the collection table, monitor/sections.py) the rule reads: the one
    #: place that says so. If one was not collected, the rule's incidents are left alone.
    requires: tuple[str, ...]
    description: str
    #: its findings' subject is a unit as systemd names it (a unit list, unit files, restart
    #: counts), never text a host's user chose (a journal identifier): only such a unit may
    #: be what an automatic fix of the incident touches
    subject_is_unit: bool = False
    #: its findings' subject is a mount point: one df could not read this look
    #: (``Snapshot.unread_mounts``) is not judged (:meth:`unjudged`)
    subject_is_mount: bool = False
    #: its verdict on what it found reads ``RuleContext.fixed``: while a checker has found
    #: one of its, it asks its store for fixes that other processes ran (an ``approve``)
    reads_fixes: bool = False
    #: it reads what a container shares with its host (/proc/mdstat, the kernel's taint flags
    #: and limits): in one (the ``container`` section says which) it judges nothing, and the
    #: host, checked itself, reports it once, not once a container. Such a rule requires
    #: ``container``
    of_the_host: bool = False
    #: its finding says the host cannot be reached: nothing of the host can be investigated
    #: while it is live (the model's tools all run on the host), its own incident never, the
    #: host's others once it answers again; a person was told by its own message
    host_down: bool = False
    #: how a verification says what :meth:`over_since` judged: over, and not over
    #: ("no new errors from {subject} since the fix ran", ...)
    over_words: tuple[str, str] = ("", "")

    @abstractmethod
    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        """Return the findings of this rule for one snapshot (empty when healthy)."""

    def judges(self, ctx: RuleContext) -> bool:
        """Whether finding nothing here means the problem is gone. A rule that measures
        against earlier looks (a count still rising, a rate, a window of the journal) cannot
        tell without them, so its incidents neither resolve on a first look (a fresh
        ``check``, a restarted daemon) nor on a window it has only partly seen; what it does
        find still counts."""
        return True

    def unjudged(self, ctx: RuleContext) -> Collection[str]:
        """The subjects this look cannot judge, though the rule judged the rest: their
        incidents neither resolve nor change (a mount df could not read says nothing of
        how full it is)."""
        return ctx.snapshot.unread_mounts.keys() if self.subject_is_mount else ()

    def over_since(self, ctx: RuleContext, subject: str, began: float,
                   ended: float) -> bool | None:
        """Whether ``subject``'s problem is over since a fix that ran from ``began`` to
        ``ended`` (this machine's clock), judged from what happened after it; None: the
        finding decides, as it does for a rule that looks at the host as it is now."""
        return None

    def found_subjects(self, ctx: RuleContext) -> frozenset[str]:
        """The subjects of this rule's findings that the checks before found (its live
        incidents'): where one thing may be named more ways than one (a file system mounted
        twice), the name its incident has."""
        return frozenset(subject for rule, subject in ctx.found_before if rule == self.name)

    def margin(self, ctx: RuleContext, subject: str,
               severity: Severity = Severity.WARNING) -> float:
        """How far past a level ``subject`` must come back before it is below it again:
        ``clear_margin_percent`` where the previous check found it at ``severity`` or worse,
        else none (hysteresis, so that a value at a level does not open and resolve an
        incident, or move it between warning and critical, check after check)."""
        found = ctx.found_before.get((self.name, subject))
        return (ctx.thresholds.clear_margin_percent if found is not None and found >= severity
                else 0.0)

    def warns_at(self, ctx: RuleContext, subject: str, level: float) -> float:
        """The level at which ``subject`` warns now: ``level``, or :meth:`margin` below it
        where the previous check found it."""
        return level - self.margin(ctx, subject)

    def kept_at(self, ctx: RuleContext, subject: str, level: float,
                severity: Severity = Severity.WARNING) -> float:
        """The level at which ``subject`` counts now, where the level is no percentage (a
        load per core, pages per second): ``level``, or :meth:`margin` percent of it less
        where the previous check found it at ``severity`` or worse (2 % of 500 pages/s is 10
        pages/s; 2 pages/s below it would hold nothing)."""
        return level * (1 - self.margin(ctx, subject, severity) / 100)

    def count_kept_at(self, ctx: RuleContext, subject: str, level: int) -> int:
        """How many (errors in a window, zombie children) make ``subject`` a finding now:
        ``level``, or half as many, rounded up, where the previous check found it (a count
        moves by whole steps around its level, 19 and 21 in turn: a margin of a few percent
        of it would hold nothing)."""
        return -(-level // 2) if (self.name, subject) in ctx.found_before else level

    def severity_at(self, ctx: RuleContext, subject: str, value: float,
                    critical: float) -> Severity:
        """How bad ``value`` of ``subject``, which warns, is now: critical from ``critical``
        on, or from :meth:`margin` below it where the previous check found it critical (a
        value that hovers at the level would otherwise move the incident between warning
        and critical, and tell a person it got worse, check after check); a warning below."""
        critical -= self.margin(ctx, subject, Severity.CRITICAL)
        return Severity.CRITICAL if value >= critical else Severity.WARNING

    def finding(
        self,
        ctx: RuleContext,
        subject: str,
        severity: Severity,
        summary: str,
        evidence: Sequence[str] = (),
    ) -> Finding:
        return Finding(ctx.host, self.name, subject, severity, summary, tuple(evidence))
