from __future__ import annotations

from ..findings import Finding, Severity, in_unit, process_subject, program, quote
from ..snapshot import ZombieParent
from .base import Rule, RuleContext


class ZombieProcesses(Rule):
    """A process lets its exited children pile up as zombies: it never waits for them.

    A zombie holds no memory, but a pid; only its parent can reap it, by waiting, or by
    ending (then PID 1 adopts and reaps them). So the subject is the parent: the service it
    runs in (its cgroup), which a restart clears, else ``pid:N``.
    """

    name = "zombie_processes"
    requires = ("zombies",)
    description = "A process has many zombie children it never reaps."
    subject_is_unit = True  # the unit systemd (or its cgroup) names, or pid:N

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        limit = ctx.thresholds.zombie_processes
        by_subject: dict[str, list[ZombieParent]] = {}
        for parent in ctx.snapshot.zombies or []:
            subject = process_subject(parent.unit, parent.pid)
            # a parent that reaps in batches (21 zombies, then 19) is one incident: once
            # found, half as many keep it
            if parent.zombies >= self.count_kept_at(ctx, subject, limit):
                by_subject.setdefault(subject, []).append(parent)
        findings = []
        for subject, parents in by_subject.items():
            # the worst parent first, named with its own count: several in one unit (a
            # pool's workers) are one finding, their total said beside it
            parents.sort(key=lambda p: (-p.zombies, p.pid))
            top = parents[0]
            total = sum(p.zombies for p in parents)
            among = (f" ({total} in all, of {len(parents)} processes in {top.unit})"
                     if len(parents) > 1 else "")
            findings.append(self.finding(
                ctx, subject, Severity.WARNING,
                f"{quote(program(top.command), 60) or '?'} (pid {top.pid})"
                f"{in_unit(top.unit)} has {top.zombies} zombie children it does not reap"
                f"{among}",
                [_evidence(p) for p in parents]))
        return findings


def _evidence(parent: ZombieParent) -> str:
    name = quote(program(parent.command), 100) or "?"
    return (f"pid {parent.pid}{in_unit(parent.unit)} ({name}): {parent.zombies} zombie "
            "children (state Z)")
