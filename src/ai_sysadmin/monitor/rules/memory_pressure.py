from __future__ import annotations

from ..findings import Finding, Severity
from ..parsers import MEMINFO, PSI_MEMORY
from ..snapshot import Snapshot
from .base import Rule, RuleContext


class MemoryPressure(Rule):
    name = "memory_pressure"
    # the container section says which of the two files are the host's own, not the whole
    # machine's (Snapshot.machine_wide): only those are judged
    requires = ("memory", "container")
    description = "Little memory is available, or tasks stall waiting for memory (PSI)."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        mem = ctx.snapshot.memory
        if mem is None:
            return []
        t = ctx.thresholds
        avail, psi = _own(ctx.snapshot)
        stalled = psi is not None and psi >= t.memory_psi_some_avg60 - self._stall_margin(ctx)
        # less is worse here: a margin above each level once it was reached (available
        # memory moves by a percent between two looks on a busy host)
        short = avail is not None and avail < (t.memory_available_warn_percent
                                               + self._warn_margin(ctx))
        if not short and not stalled:
            return []
        critical = avail is not None and avail < (
            t.memory_available_critical_percent + self.margin(ctx, "memory", Severity.CRITICAL))
        evidence = []
        if avail is not None:
            reserved = (f" less {mem.hugetlb_kb} kB of huge pages" if mem.hugetlb_kb else "")
            arc = (f" plus {mem.arc_reclaimable_kb} kB the ZFS ARC can give back"
                   if mem.arc_reclaimable_kb else "")
            evidence.append(f"MemAvailable {mem.available_kb} kB{arc} of MemTotal "
                            f"{mem.total_kb} kB{reserved} ({avail:.1f}%)")
        if psi is not None:
            evidence.append(f"memory PSI some avg60={psi:.2f}")
        return [
            self.finding(
                ctx,
                "memory",
                Severity.CRITICAL if critical else Severity.WARNING,
                _summary(avail, psi if stalled else None, short),
                evidence,
            )
        ]

    def _stall_margin(self, ctx: RuleContext) -> float:
        """The margin below the stall level (PSI, a share of time), where the last look found
        the host short of memory and stalled within that margin of the level: stalls that
        hover at the level are one incident for as long as they hover (not one for a check,
        the look after the crossing); none where stalls well below it (or none read) leave
        the level of available memory alone making that finding."""
        margin = self.margin(ctx, "memory")
        psi = _own(ctx.previous)[1] if ctx.previous is not None else None
        if psi is None or psi < ctx.thresholds.memory_psi_some_avg60 - margin:
            return 0.0
        return margin

    def _warn_margin(self, ctx: RuleContext) -> float:
        """The margin above the warning level, where the last look found the host short of
        memory; none where stalls alone made that finding (available memory above the
        level): held by a level it never crossed, a host that idles just above it would
        never be well again."""
        margin = self.margin(ctx, "memory")
        if margin and ctx.previous is not None and ctx.previous.memory is not None:
            t = ctx.thresholds
            avail, psi = _own(ctx.previous)
            stalls_alone = (psi is not None and psi >= t.memory_psi_some_avg60
                            and (avail is None or avail >= t.memory_available_warn_percent))
            if stalls_alone:
                return 0.0
        return margin


def _own(snap: Snapshot) -> tuple[float | None, float | None]:
    """The share of memory available and the stalls (PSI some avg60) a look read, each None
    where the look has none of its own: a container's that are the whole machine's."""
    mem = snap.memory
    if mem is None:
        return None, None
    return (None if snap.machine_wide(MEMINFO) else mem.available_percent,
            None if snap.machine_wide(PSI_MEMORY) else mem.psi_some_avg60)


def _summary(avail: float | None, stalls: float | None, short: bool) -> str:
    """What made the finding: little memory available, tasks stalled waiting for it
    (``stalls``, PSI some avg60, where they count), or both: "62.0% available" alone, of a
    finding the stalls made, reads as a host that is well."""
    stalled = (f"tasks stalled waiting for memory {stalls:.1f}% of the last minute"
               if stalls is not None else "")
    if avail is None:  # a container's memory is the whole machine's; its stalls its own
        return f"memory pressure: {stalled}"
    if not short:
        return f"memory pressure: {stalled} ({avail:.1f}% available)"
    return f"memory pressure: {avail:.1f}% available" + (f", {stalled}" if stalled else "")
