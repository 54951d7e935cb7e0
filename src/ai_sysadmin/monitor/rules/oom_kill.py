from __future__ import annotations

from collections.abc import Mapping

from ..findings import Finding, Severity
from .base import Rule, RuleContext


def new_kills(count: int, earlier: int | None) -> int:
    """The kills of a service between two looks, from its counter then (None: it had no
    memory cgroup, it did not run) and now. A counter lower than before belongs to a cgroup
    made since (the unit was restarted): everything it counts came after the last look."""
    if earlier is None or count < earlier:
        return count
    return count - earlier


def oom_kills_rose(before: Mapping[str, int] | None,
                   now: Mapping[str, int] | None) -> dict[str, int]:
    """Each service whose processes the OOM killer killed between two looks, with how many;
    nothing where either look has no counters to compare."""
    if before is None or now is None:
        return {}
    return {unit: kills for unit, count in now.items()
            if (kills := new_kills(count, before.get(unit))) > 0}


class OomKill(Rule):
    """The kernel's OOM killer killed a process of a service: its memory cgroup's
    ``oom_kill`` counter rose since the previous look. ``failed_unit`` sees this only where
    the unit failed; a worker killed under a main process that lives on leaves the unit
    active, and only the counter tells.

    A warning: the service lost work and may again, but it runs. Once found, it stays found
    while the counter rose within ``oom_kill_window_seconds`` (after the last fix of it), so
    kills an hour apart are one incident, which resolves after a window without one. A first
    look judges nothing: the counts before it are not known, and kills from before the check
    began are neither reported as new nor taken to be over.
    """

    name = "oom_kill"
    requires = ("oom_kills",)
    description = "The kernel's OOM killer killed a process of a service (its oom_kill rose)."
    subject_is_unit = True
    reads_fixes = True

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        counts = ctx.snapshot.oom_kills or {}
        before = ctx.previous.oom_kills if ctx.previous is not None else None
        rose = oom_kills_rose(before, counts)
        findings = []
        for unit, count in sorted(counts.items()):
            kills = rose.get(unit, 0)
            if not kills and not ((self.name, unit) in ctx.found_before
                                  and _rose_lately(ctx, unit)):
                continue
            earlier = (before or {}).get(unit)
            evidence = [f"{unit}: memory cgroup oom_kill={count}"
                        + (f", {earlier} at the previous check" if earlier is not None else "")]
            if not kills:
                evidence.append(f"its oom_kill rose within the last "
                                f"{ctx.thresholds.oom_kill_window_seconds:g} s")
            findings.append(self.finding(
                ctx, unit, Severity.WARNING,
                f"the kernel's OOM killer killed a process of {unit} ({kills} since the last "
                f"look, {count} since it started)", evidence))
        return findings

    def judges(self, ctx: RuleContext) -> bool:
        # a rise needs the counts of an earlier look
        return ctx.previous is not None and ctx.previous.oom_kills is not None


def _rose_lately(ctx: RuleContext, unit: str) -> bool:
    """Its counter rose within the window, and after the last fix of it: a fix is judged by
    the kills that follow it."""
    after = ctx.oom_kills_rose_after.get(unit)
    if after is None or after < ctx.snapshot.taken_at - ctx.thresholds.oom_kill_window_seconds:
        return False
    fixed = ctx.fixed.get((OomKill.name, unit))
    return fixed is None or after >= fixed
