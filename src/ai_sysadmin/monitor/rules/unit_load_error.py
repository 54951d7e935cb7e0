from __future__ import annotations

from ..findings import Finding, Severity
from .base import Rule, RuleContext

#: LoadState values meaning the unit file itself is broken (not merely absent)
BROKEN_LOAD_STATES = frozenset({"error", "bad-setting"})


class UnitLoadError(Rule):
    name = "unit_load_error"
    requires = ("units",)
    description = "A unit file fails to load (LoadState=error or bad-setting)."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        return [
            self.finding(
                ctx,
                unit.name,
                Severity.CRITICAL,
                f"the unit file of {unit.name} does not load ({unit.load})",
                [f"{unit.name}: LoadState={unit.load} active={unit.active}"],
            )
            for unit in ctx.snapshot.units or []
            if unit.load in BROKEN_LOAD_STATES
        ]
