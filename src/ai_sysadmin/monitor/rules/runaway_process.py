from __future__ import annotations

from ..findings import Finding, Severity, quote
from ..snapshot import Process
from .base import Rule, RuleContext


class RunawayProcess(Rule):
    """A process that has burned CPU for a sustained time.

    Since the baseline snapshot (the last periodic check), if at least ``runaway_min_seconds``
    ago, the share is the CPU seconds it used over the wall seconds passed; otherwise it is its
    lifetime average, once it has lived ``runaway_min_seconds``.
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
        findings = []
        for proc in ctx.snapshot.processes or []:
            measured = self._share(ctx, proc)
            if measured is None or measured[0] < ctx.thresholds.runaway_cpu_percent:
                continue
            share, span = measured
            name = proc.command.split()[0].rsplit("/", 1)[-1] if proc.command else "?"
            findings.append(
                self.finding(
                    ctx,
                    f"pid:{proc.pid}",
                    Severity.WARNING,
                    f"{name} (pid {proc.pid}) has used {share:.0f}% CPU for {span:.0f} s",
                    [f"pid {proc.pid} user {proc.user} cpu {share:.0f}% over {span:.0f} s, "
                     f"rss {proc.rss_kb} kB: {quote(proc.command, 200)}"],
                )
            )
        return findings
