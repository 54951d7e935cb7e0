from __future__ import annotations

from ..findings import Finding, Severity
from .base import Rule, RuleContext


class MemoryPressure(Rule):
    name = "memory_pressure"
    requires = ("memory",)
    description = "Little memory is available, or tasks stall waiting for memory (PSI)."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        mem = ctx.snapshot.memory
        if mem is None:
            return []
        t = ctx.thresholds
        avail = mem.available_percent
        psi = mem.psi_some_avg60
        stalled = psi is not None and psi >= t.memory_psi_some_avg60
        # less is worse here: a margin above each level once it was reached (available
        # memory moves by a percent between two looks on a busy host)
        if avail >= t.memory_available_warn_percent + self.margin(ctx, "memory") \
                and not stalled:
            return []
        critical = avail < t.memory_available_critical_percent + self.margin(
            ctx, "memory", Severity.CRITICAL)
        reserved = (f" less {mem.hugetlb_kb} kB of huge pages" if mem.hugetlb_kb else "")
        arc = (f" plus {mem.arc_reclaimable_kb} kB the ZFS ARC can give back"
               if mem.arc_reclaimable_kb else "")
        evidence = [f"MemAvailable {mem.available_kb} kB{arc} of MemTotal {mem.total_kb} kB"
                    f"{reserved} ({avail:.1f}%)"]
        if psi is not None:
            evidence.append(f"memory PSI some avg60={psi:.2f}")
        return [
            self.finding(
                ctx,
                "memory",
                Severity.CRITICAL if critical else Severity.WARNING,
                f"memory pressure: {avail:.1f}% available",
                evidence,
            )
        ]
