from __future__ import annotations

import functools
from collections.abc import Callable

from ..findings import Finding, Severity
from .base import Rule, RuleContext


class CrashLoop(Rule):
    """A unit systemd keeps restarting after failures: its restart count is high and still
    rising, and its runs fail (under ``Restart=always`` a clean exit is restarted too). Once
    found, it stays found while the count rose within ``crash_loop_window_seconds`` (after
    the last fix of it): a unit that runs longer between crashes than the checks are apart
    shows no rise between two of them."""

    name = "crash_loop"
    #: without the restart counts no unit can be judged, and none may be cleared
    requires = ("units", "restarts")
    description = "A unit fails and is restarted again and again (NRestarts rising)."
    subject_is_unit = True
    reads_fixes = True

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        limit = ctx.thresholds.crash_loop_restarts
        counts = ctx.snapshot.restarts or {}
        # rising since the last look: a fix's verification sees it stop rising
        before = (ctx.previous.restarts or {}) if ctx.previous else {}
        # read from the journal once, and only where a unit needs it
        said = functools.cache(lambda: _results_said(ctx))
        findings = []
        for unit in ctx.snapshot.units or []:
            restarts = counts.get(unit.name)
            if restarts is None or restarts < limit:
                continue
            earlier = before.get(unit.name)
            # lower than before: systemd counts from 0 again after a start by hand (or a
            # reboot), and the unit restarted this many times since
            rising = earlier is not None and restarts != earlier
            # waiting to be restarted again, or starting again: looping now, however recent
            # the last look (a check seconds after another, for an approval, may fall
            # between two restarts)
            restarting = unit.sub == "auto-restart" or unit.active == "activating"
            # its runs were judged to fail when it was found
            kept = (self.name, unit.name) in ctx.found_before and _rose_lately(ctx, unit.name)
            if not (rising or restarting or kept):
                continue
            failed = _failure(ctx, unit.name, said)
            if failed is None and not kept:
                continue  # restarted after clean exits, as a getty is after each logout
            evidence = [f"{unit.name}: NRestarts={restarts} active={unit.active} "
                        f"sub={unit.sub}"]
            if earlier is not None:
                evidence.append(f"NRestarts was {earlier} at the previous check" + (
                    ", then counted from 0 again" if restarts < earlier else ""))
            if kept and not (rising or restarting):
                evidence.append(f"NRestarts rose within the last "
                                f"{ctx.thresholds.crash_loop_window_seconds:g} s")
            if failed:
                evidence.append(failed)
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

    def judges(self, ctx: RuleContext) -> bool:
        # "still rising" needs the counts of an earlier look: without them only a unit
        # seen restarting right now is found, and one between two crashes is not healthy
        return ctx.previous is not None and ctx.previous.restarts is not None


def _rose_lately(ctx: RuleContext, name: str) -> bool:
    """Its restart count rose within the window, and after the last fix of it: a fix is
    judged by the restarts that follow it."""
    after = ctx.restarts_rose_after.get(name)
    if after is None or after < ctx.snapshot.taken_at - ctx.thresholds.crash_loop_window_seconds:
        return False
    fixed = ctx.fixed.get((CrashLoop.name, name))
    return fixed is None or after >= fixed


def _failure(ctx: RuleContext, name: str, said: Callable[[], dict[str, str]]) -> str | None:
    """What says the unit's restarts follow failures ("" where its restart setting alone
    does); None where nothing does.

    Under ``Restart=on-failure`` (and the like) every restart follows a failure. Under
    ``always`` or ``on-success`` one must be seen: the last run's result is not success, or
    PID 1 wrote since the last look that a run failed. Where the journal was not read, the
    count decides alone: a crash loop is never missed for want of it.
    """
    snap = ctx.snapshot
    if snap.clean_restarts is None or name not in snap.clean_restarts:
        return ""
    result = (snap.service_results or {}).get(name)
    if result is not None:
        return f"its last run ended: {result.result}"
    if snap.journal is None or "journal" in snap.errors:
        return ""
    result_said = said().get(name)
    if result_said is not None:
        return f"systemd: a run failed with result '{result_said}'"
    return None


def _results_said(ctx: RuleContext) -> dict[str, str]:
    """The last result of a failed run PID 1 wrote of each unit, in the window and this
    check's journal. One pass for all the units: one a unit cost a check 58 ms where 400
    workers under ``Restart=always`` rose over a window of 4000 entries."""
    entries = (*ctx.window, *(ctx.snapshot.journal or ()))
    return {e.unit: e.unit_result for e in entries if e.unit and e.unit_result}
