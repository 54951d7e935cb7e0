from __future__ import annotations

from ..findings import Finding, Severity
from ..parsers import LOADAVG
from .base import Rule, RuleContext


class LoadPerCore(Rule):
    """Sustained load: the 15-minute load average divided by the number of cores."""

    name = "load_per_core"
    # the container section says whether the load is the host's own (Snapshot.machine_wide)
    requires = ("load", "cpu", "container")
    description = "The 15-minute load average per core stays high."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        load = ctx.snapshot.load
        # a container that shows the machine's load: the machine's check says it, once, not
        # each of its containers; nothing found here, so an incident opened before resolves
        if load is None or ctx.snapshot.machine_wide(LOADAVG):
            return []
        cores = ctx.snapshot.cores
        per_core = load.fifteen / cores
        t = ctx.thresholds
        # the margin is a share of the level, the load being no percentage: a load that
        # warned is well again 2 % below its level (1.96 per core for 2), not 2 below it
        if per_core < self.kept_at(ctx, "load", t.load_per_core_warn):
            return []
        critical = self.kept_at(ctx, "load", t.load_per_core_critical, Severity.CRITICAL)
        severity = Severity.CRITICAL if per_core >= critical else Severity.WARNING
        return [
            self.finding(
                ctx,
                "load",
                severity,
                f"sustained load {per_core:.2f} per core",
                [f"load average {load.one} {load.five} {load.fifteen} on {cores} cores"],
            )
        ]
