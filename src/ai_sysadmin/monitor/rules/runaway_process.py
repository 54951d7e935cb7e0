from __future__ import annotations

from ..findings import Finding, Severity, quote
from ..snapshot import Process
from .base import Rule, RuleContext


class RunawayProcess(Rule):
    """A process that has burned CPU for a sustained time.

    Since the baseline snapshot (the last periodic check), if at least ``runaway_min_seconds``
    ago, the share is the CPU seconds it used over the wall seconds passed; otherwise it is its
    lifetime average, once it has lived ``runaway_min_seconds``.

    The subject is the service the process runs in (its cgroup) when there is one: a service
    that restarts its hog keeps one incident, not one per pid.
    """

    name = "runaway_process"
    requires = ("processes",)
    description = "A process keeps using a whole core (sustained CPU)."

    def _share(self, ctx: RuleContext, proc: Process) -> tuple[float, float] | None:
        prev = ctx.rates_from
        if prev and prev.processes:
            earlier = next((p for p in prev.processes if p.pid == proc.pid), None)
            span = ctx.snapshot.taken_at - prev.taken_at
            # a short gap (a check woken by the journal) says nothing about "sustained"
            sustained = max(ctx.thresholds.runaway_min_seconds, 1.0)
            if earlier and earlier.command == proc.command and span >= sustained:
                return 100.0 * (proc.cpu_seconds - earlier.cpu_seconds) / span, span
        if proc.elapsed_seconds >= ctx.thresholds.runaway_min_seconds:
            return proc.cpu_percent, float(proc.elapsed_seconds)
        return None

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        # one finding per subject: several hogs of one unit are one problem, the busiest first
        hogs: dict[str, list[tuple[float, float, Process]]] = {}
        for proc in ctx.snapshot.processes or []:
            measured = self._share(ctx, proc)
            if measured is None or measured[0] < ctx.thresholds.runaway_cpu_percent:
                continue
            hogs.setdefault(_subject(proc), []).append((*measured, proc))
        findings = []
        for subject, found in hogs.items():
            found.sort(key=lambda hog: hog[0], reverse=True)
            share, span, top = found[0]
            findings.append(self.finding(
                ctx, subject, Severity.WARNING,
                f"{_name(top)} (pid {top.pid}){_where(top)} has used {share:.0f}% CPU "
                f"for {span:.0f} s",
                [_evidence(*hog) for hog in found],
            ))
        return findings


def _subject(proc: Process) -> str:
    """The service the process runs in; else its pid. A scope (a login session, a desktop app)
    or a user's manager is no service of the host's to restart, and the incident's unit is
    the one automation may touch."""
    unit = proc.unit or ""
    if unit.endswith(".service") and not unit.startswith("user@"):
        return unit
    return f"pid:{proc.pid}"


def _name(proc: Process) -> str:
    return proc.command.split()[0].rsplit("/", 1)[-1] if proc.command else "?"


def _where(proc: Process) -> str:
    return f" in {proc.unit}" if proc.unit else ""


def _evidence(share: float, span: float, proc: Process) -> str:
    return (f"pid {proc.pid}{_where(proc)} user {proc.user} cpu {share:.0f}% over {span:.0f} s, "
            f"rss {proc.rss_kb} kB: {quote(proc.command, 200)}")
