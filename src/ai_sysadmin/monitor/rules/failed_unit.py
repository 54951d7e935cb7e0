from __future__ import annotations

from collections.abc import Collection, Sequence

from ..findings import Finding, Severity, quote
from ..snapshot import JournalEntry
from .base import Rule, RuleContext

#: the journal lines a failed unit's finding quotes, at most: its last warnings or worse
QUOTED = 3


class FailedUnit(Rule):
    name = "failed_unit"
    requires = ("units",)
    description = "A systemd unit is in the failed state."
    subject_is_unit = True

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        failed = ctx.snapshot.failed_units
        said = _last_said(ctx.window, {unit.name for unit in failed}) if failed else {}
        findings = []
        for unit in failed:
            lines = [f"{unit.name}: load={unit.load} active={unit.active} sub={unit.sub}"]
            lines += [quote(message) + (f" (logged {times} times)" if times > 1 else "")
                      for message, times in said.get(unit.name, {}).items()]
            findings.append(
                self.finding(ctx, unit.name, Severity.CRITICAL, f"{unit.name} has failed", lines)
            )
        return findings


def _last_said(window: Sequence[JournalEntry], units: Collection[str]
               ) -> dict[str, dict[str, int]]:
    """The last :data:`QUOTED` distinct warnings or worse of each of ``units`` in the window,
    in the order each was last logged, with how many times it was logged (since it was last
    one of them): a unit restarted in a loop logs the same failure each time, and three
    copies of one line left no room for the line before them that says why.

    One pass over the window, however many units failed (a bad deploy fails hundreds of
    instances, a flood fills the window with thousands of entries: a pass a unit cost a
    check 0.15 s at 800 failed units and 4000 entries), and only what is shown is quoted
    (masking secrets costs ~18 us an entry: a unit that logged 4000 errors cost 74 ms)."""
    said: dict[str, dict[str, int]] = {}
    for entry in window:
        unit = entry.unit
        if entry.priority <= 4 and unit is not None and unit in units:
            last = said.setdefault(unit, {})
            message = entry.message
            # the newest last: a repeat moves to the end, the oldest of four goes
            last[message] = last.pop(message, 0) + 1
            if len(last) > QUOTED:
                del last[next(iter(last))]
    return said
