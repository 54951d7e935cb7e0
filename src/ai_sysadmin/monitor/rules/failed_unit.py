from __future__ import annotations

from ..findings import Finding, Severity, quote
from .base import Rule, RuleContext


class FailedUnit(Rule):
    name = "failed_unit"
    requires = ("units",)
    description = "A systemd unit is in the failed state."
    subject_is_unit = True

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        findings = []
        for unit in ctx.snapshot.failed_units:
            lines = [f"{unit.name}: load={unit.load} active={unit.active} sub={unit.sub}"]
            lines += [
                quote(e.message) for e in ctx.window if e.unit == unit.name and e.priority <= 4
            ][-3:]
            findings.append(
                self.finding(ctx, unit.name, Severity.CRITICAL, f"{unit.name} has failed", lines)
            )
        return findings
