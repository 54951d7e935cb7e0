from __future__ import annotations

from ..findings import Finding, Severity
from .base import Rule, RuleContext


class UnitNeedsReload(Rule):
    """A service's unit file or a drop-in of it changed on disk since systemd loaded it
    (``NeedDaemonReload=yes``): someone edited it and did not run ``systemctl
    daemon-reload``, so systemd runs the old definition, and the next restart (or boot)
    runs one nobody has seen start: a surprise at the worst moment.

    A warning, one finding a unit, read from systemd's own word in the restarts section's
    ``systemctl show``: where that failed, nothing is judged (``requires``). The finding
    only says what loads the new definition; it runs nothing itself, and no fix of the
    unit is made automatic by it."""

    name = "unit_needs_reload"
    requires = ("restarts",)
    description = ("A service's unit file or drop-in changed on disk since systemd loaded it "
                   "(NeedDaemonReload=yes): it runs the old definition.")
    # not subject_is_unit: a restart (the automatic fix of a unit's own incident) runs the
    # old definition again and mends nothing; what does (a daemon-reload) a person decides

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        return [self.finding(
            ctx, unit, Severity.WARNING,
            f"the unit file of {unit} changed on disk since systemd loaded it: systemd runs "
            "the old definition until `systemctl daemon-reload` loads the new one",
            [f"{unit}: NeedDaemonReload=yes"],
        ) for unit in sorted(ctx.snapshot.needs_reload or ())]
