from __future__ import annotations

from ..findings import Finding, Severity
from .base import Rule, RuleContext


class LoadPerCore(Rule):
    """Sustained load: the 15-minute load average divided by the number of cores."""

    name = "load_per_core"
    requires = ("load", "cpu")
    description = "The 15-minute load average per core stays high."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        load = ctx.snapshot.load
        if load is None:
            return []
        cores = ctx.snapshot.cores
        per_core = load.fifteen / cores
        t = ctx.thresholds
        if per_core < t.load_per_core_warn:
            return []
        severity = Severity.CRITICAL if per_core >= t.load_per_core_critical else Severity.WARNING
        return [
            self.finding(
                ctx,
                "load",
                severity,
                f"sustained load {per_core:.2f} per core",
                [f"load average {load.one} {load.five} {load.fifteen} on {cores} cores"],
            )
        ]
