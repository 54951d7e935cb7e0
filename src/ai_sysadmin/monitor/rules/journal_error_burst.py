from __future__ import annotations

from collections import defaultdict

from ..findings import Finding, Severity, quote
from ..snapshot import JournalEntry
from .base import Rule, RuleContext

#: syslog priority "err"; lower numbers are worse
ERR = 3


class JournalErrorBurst(Rule):
    """Many journal entries at err or worse from one source within the window."""

    name = "journal_error_burst"
    requires = ("journal",)
    description = "A burst of journal errors from one unit or program."
    #: its source: a unit journald or PID 1 named, or an identifier that cannot read as one
    subject_is_unit = True
    reads_fixes = True
    over_words = ("no new errors from {subject} since the fix ran",
                  "new errors from {subject} since the fix ran")

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        t = ctx.thresholds
        since = ctx.snapshot.host_time() - t.journal_burst_window_seconds
        groups: dict[str, list[JournalEntry]] = defaultdict(list)
        for entry in ctx.window:
            if entry.priority <= ERR and entry.timestamp >= since:
                groups[entry.source].append(entry)
        # entries skipped unread (a flood outran the checks) may hold more of any source's
        gap = ctx.snapshot.journal_gap
        skipped = [f"not counted: {gap.describe()}"] if gap is not None else []
        findings = []
        for source, entries in sorted(groups.items()):
            # a source that logs at about the level (19 and 21 in turn) is one burst, not
            # one that opens and resolves every few checks
            if len(entries) < self.count_kept_at(ctx, source, t.journal_error_burst):
                continue
            fixed = ctx.fixed.get((self.name, source))
            if fixed is not None and all(
                    e.timestamp < ctx.snapshot.host_time_after(fixed) for e in entries):
                continue  # a fix ran after them all, and its source logged no error since
            severity = Severity.CRITICAL if any(e.priority <= 2 for e in entries) else (
                Severity.WARNING
            )
            findings.append(
                self.finding(
                    ctx,
                    source,
                    severity,
                    f"{len(entries)} journal errors from {source} in "
                    f"{t.journal_burst_window_seconds:.0f} s",
                    [*(quote(e.message) for e in entries[-3:]), *skipped],
                )
            )
        return findings

    def over_since(self, ctx: RuleContext, subject: str, began: float,
                   ended: float) -> bool | None:
        """No error from ``subject`` since the fix ended: its burst's earlier errors stay in
        the window for minutes after a fix that ended them (a verification waits 60 s,
        the window is 300 s)."""
        snap = ctx.snapshot
        since = snap.host_time_after(ended)
        gap = snap.journal_gap
        if not snap.collected("journal") or (gap is not None and gap.before >= since):
            return False  # what it logged since may be among what was not read
        covered = ctx.window_covered
        if covered is not None and snap.host_time() - covered > since:
            return False  # the window began after the fix: it may not hold all since
        return not any(e.source == subject and e.priority <= ERR and e.timestamp >= since
                       for e in ctx.window)

    def judges(self, ctx: RuleContext) -> bool:
        # a window seen in part (a checker's first minutes: a fresh `check`, a restarted
        # daemon) holds too few entries to say a burst is over
        covered = ctx.window_covered
        return covered is None or covered >= ctx.thresholds.journal_burst_window_seconds
