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
        # a unit found before may have no cgroup now (it stopped, or failed: the OOM killer
        # may have killed its main process): the kill happened all the same
        found = {subject for rule, subject in ctx.found_before if rule == self.name}
        findings = []
        for unit in sorted(counts.keys() | found):
            kills = rose.get(unit, 0)
            if not kills and not (unit in found and _rose_lately(ctx, unit)):
                continue
            findings.append(self._killed(ctx, unit, kills, counts.get(unit),
                                         (before or {}).get(unit)))
        return findings

    def _killed(self, ctx: RuleContext, unit: str, kills: int, count: int | None,
                earlier: int | None) -> Finding:
        """The finding of ``unit``'s kills: ``kills`` since the last look, its counter now
        (None: its memory cgroup is gone) and then."""
        then = f", {earlier} at the previous check" if earlier is not None else ""
        if count is None:
            evidence = [f"{unit}: no memory cgroup now, it stopped or failed (its oom_kill "
                        f"cannot be read){then}"]
            since = "its memory cgroup is gone now"
        else:
            evidence = [f"{unit}: memory cgroup oom_kill={count}{then}"]
            since = f"{count} since it started"
        if not kills:
            evidence.append(f"its oom_kill rose within the last "
                            f"{ctx.thresholds.oom_kill_window_seconds:g} s")
        return self.finding(
            ctx, unit, Severity.WARNING,
            f"the kernel's OOM killer killed a process of {unit} ({kills} since the last "
            f"look, {since})", evidence)

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
