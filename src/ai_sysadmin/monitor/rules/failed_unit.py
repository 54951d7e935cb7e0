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
                      for message, times in _shown(*said.get(unit.name, ({}, {})))]
            findings.append(
                self.finding(ctx, unit.name, Severity.CRITICAL, f"{unit.name} has failed", lines)
            )
        return findings


#: a unit's distinct lines: message -> [times logged, its last place in the window]
_Lines = dict[str, list[int]]


def _last_said(window: Sequence[JournalEntry], units: Collection[str]
               ) -> dict[str, tuple[_Lines, _Lines]]:
    """The last :data:`QUOTED` distinct warnings or worse of each of ``units`` in the window,
    its own processes' apart from systemd's (PID 1's) about it, each with how many times it
    was logged (since it was last one of them) and where last.

    A unit restarted in a loop logs the same failure each time, and systemd ends it with
    three lines of its own ("Start request repeated too quickly.", "Failed with result
    'exit-code'.", "Failed to start ..."): the last three lines were those, and the line of
    the unit's own that says why was never quoted (:func:`_shown` keeps room for it).

    One pass over the window, however many units failed (a bad deploy fails hundreds of
    instances, a flood fills the window with thousands of entries: a pass a unit cost a
    check 0.15 s at 800 failed units and 4000 entries), and only what is shown is quoted
    (masking secrets costs ~18 us an entry: a unit that logged 4000 errors cost 74 ms)."""
    said: dict[str, tuple[_Lines, _Lines]] = {}
    for at, entry in enumerate(window):
        unit = entry.unit
        if entry.priority <= 4 and unit is not None and unit in units:
            lines = said.setdefault(unit, ({}, {}))[entry.pid == 1]
            message = entry.message
            # the newest last: a repeat moves to the end, the oldest of four goes
            times = lines.pop(message, (0, 0))[0] + 1
            lines[message] = [times, at]
            if len(lines) > QUOTED:
                del lines[next(iter(lines))]
    return said


def _shown(own: _Lines, systemd: _Lines) -> list[tuple[str, int]]:
    """At most :data:`QUOTED` lines, in the window's order: the unit's own last ones, but
    for one place kept for systemd's last word where it said any; what either leaves, the
    other fills."""
    mine, its = list(own.items()), list(systemd.items())
    take_mine = min(len(mine), QUOTED - min(len(its), 1))
    take_its = min(len(its), QUOTED - take_mine)
    picked = mine[len(mine) - take_mine:] + its[len(its) - take_its:]
    return [(message, times) for message, (times, _) in sorted(picked, key=lambda p: p[1][1])]
