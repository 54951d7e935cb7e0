from __future__ import annotations

from ..findings import Finding, percent
from .base import Rule, RuleContext


class TasksExhausted(Rule):
    """A service runs near the most tasks (processes and threads) its cgroup's pids
    controller lets it have: systemd's ``TasksMax=``, 15 % of the host's limit by default
    (4915 on many hosts). At the limit its forks and new threads fail ("fork: Resource
    temporarily unavailable", "can't create thread"), while it still runs: a thread or
    connection leak, a worker pool grown past what its unit allows.

    Read from ``pids.current`` and ``pids.max`` of each service's cgroup; one without a
    limit (``max``) is never a finding. A warning at ``limit_warn_percent`` of its limit,
    critical at ``limit_critical_percent``; one finding a service (subject: the unit).
    Judged only where the host has a pids controller under system.slice.
    """

    name = "tasks_exhausted"
    requires = ("service_tasks",)
    description = "A service is near the most tasks its cgroup allows (TasksMax=)."
    subject_is_unit = True

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        t = ctx.thresholds
        findings = []
        for unit, tasks in sorted((ctx.snapshot.service_tasks or {}).items()):
            if not tasks.limit:
                continue
            pct = 100.0 * tasks.current / tasks.limit
            if pct < self.warns_at(ctx, unit, t.limit_warn_percent):
                continue
            severity = self.severity_at(ctx, unit, pct, t.limit_critical_percent)
            findings.append(self.finding(
                ctx, unit, severity,
                f"{unit} runs {tasks.current} of the {tasks.limit} tasks (processes and "
                f"threads) its cgroup allows ({percent(pct)}): at the limit its forks and "
                "new threads fail with 'Resource temporarily unavailable'",
                [f"{unit}: pids.current={tasks.current}, pids.max={tasks.limit} "
                 "(TasksMax=; systemctl show -p TasksCurrent,TasksMax tells)"]))
        return findings
