from __future__ import annotations

from ..findings import Finding, Severity
from .base import Rule, RuleContext


class CrashLoop(Rule):
    """A unit systemd keeps restarting: its restart count is high and still rising."""

    name = "crash_loop"
    #: without the restart counts no unit can be judged, and none may be cleared
    requires = ("units", "restarts")
    description = "A unit restarts again and again (NRestarts rising)."
    subject_is_unit = True

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        limit = ctx.thresholds.crash_loop_restarts
        counts = ctx.snapshot.restarts or {}
        # rising since the last look: a fix's verification sees it stop rising
        before = (ctx.previous.restarts or {}) if ctx.previous else {}
        findings = []
        for unit in ctx.snapshot.units or []:
            restarts = counts.get(unit.name)
            if restarts is None or restarts < limit:
                continue
            earlier = before.get(unit.name)
            rising = earlier is not None and restarts > earlier
            # waiting to be restarted again, or starting again: looping now, however recent
            # the last look (a check seconds after another, for an approval, may fall
            # between two restarts)
            restarting = unit.sub == "auto-restart" or unit.active == "activating"
            if not (rising or restarting):
                continue
            evidence = [f"{unit.name}: NRestarts={restarts} active={unit.active} "
                        f"sub={unit.sub}"]
            if earlier is not None:
                evidence.append(f"NRestarts was {earlier} at the previous check")
            findings.append(
                self.finding(
                    ctx,
                    unit.name,
                    Severity.CRITICAL,
                    f"{unit.name} is crash-looping ({restarts} restarts)",
                    evidence,
                )
            )
        return findings
