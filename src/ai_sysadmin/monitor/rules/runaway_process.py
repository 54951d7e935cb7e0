from __future__ import annotations

from ..findings import Finding, Severity, in_unit, process_subject, program, quote
from ..parsers import same_process
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
    subject_is_unit = True  # the unit systemd (or its cgroup) names, or pid:N

    def _share(self, ctx: RuleContext, proc: Process,
               before: dict[int, Process]) -> tuple[float, float] | None:
        prev = ctx.rates_from
        if prev:
            span = ctx.snapshot.taken_at - prev.taken_at
            # a short gap (a check woken by the journal) says nothing about "sustained"
            sustained = max(ctx.thresholds.runaway_min_seconds, 1.0)
            used = _used_since(ctx, proc, before)
            if used is not None and span >= sustained:
                return 100.0 * used / span, span
        if proc.elapsed_seconds >= ctx.thresholds.runaway_min_seconds:
            return proc.cpu_percent, float(proc.elapsed_seconds)
        return None

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        # one finding per subject: several hogs of one unit are one problem, the busiest first
        hogs: dict[str, list[tuple[float, float, Process]]] = {}
        prev = ctx.rates_from
        before = {p.pid: p for p in prev.processes or []} if prev else {}
        for proc in ctx.snapshot.processes or []:
            measured = self._share(ctx, proc, before)
            if measured is None or measured[0] < ctx.thresholds.runaway_cpu_percent:
                continue
            hogs.setdefault(process_subject(proc.unit, proc.pid), []).append((*measured, proc))
        findings = []
        for subject, found in hogs.items():
            found.sort(key=lambda hog: hog[0], reverse=True)
            share, span, top = found[0]
            findings.append(self.finding(
                ctx, subject, Severity.WARNING,
                f"{quote(program(top.command), 60) or '?'} (pid {top.pid}){in_unit(top.unit)} "
                f"has used {share:.0f}% CPU for {span:.0f} s",
                [_evidence(*hog) for hog in found],
            ))
        return findings

    def judges(self, ctx: RuleContext) -> bool:
        # without an earlier look only lifetime averages are there, and a process that has
        # idled for days before it began to spin averages as idle
        prev = ctx.rates_from
        return prev is not None and prev.processes is not None


def _used_since(ctx: RuleContext, proc: Process, before: dict[int, Process]) -> int | None:
    """The CPU seconds the process used since the snapshot rates are measured from: by every
    process's CPU seconds listed then (whether or not that check kept the process), else by
    the processes it kept; None where it was not there then (a new process, a reused pid)."""
    prev = ctx.rates_from
    assert prev is not None
    if prev.cpu_seconds is not None:
        earlier = prev.cpu_seconds.get(proc.pid)
        start = round(ctx.snapshot.taken_at) - proc.elapsed_seconds
        if earlier is None or not same_process(earlier[0], start):
            return None
        return proc.cpu_seconds - earlier[1]
    kept = before.get(proc.pid)
    return proc.cpu_seconds - kept.cpu_seconds if kept and kept.command == proc.command \
        else None


def _evidence(share: float, span: float, proc: Process) -> str:
    return (f"pid {proc.pid}{in_unit(proc.unit)} user {proc.user} cpu {share:.0f}% over "
            f"{span:.0f} s, rss {proc.rss_kb} kB: {quote(proc.command, 200)}")
