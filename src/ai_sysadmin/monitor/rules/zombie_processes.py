from __future__ import annotations

from ..findings import Finding, Severity, quote
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

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        limit = ctx.thresholds.zombie_processes
        by_subject: dict[str, list[ZombieParent]] = {}
        for parent in ctx.snapshot.zombies or []:
            if parent.zombies >= limit:
                by_subject.setdefault(_subject(parent), []).append(parent)
        findings = []
        for subject, parents in by_subject.items():
            total = sum(p.zombies for p in parents)
            top = parents[0]
            findings.append(self.finding(
                ctx, subject, Severity.WARNING,
                f"{quote(top.command, 60) or 'pid ' + str(top.pid)} (pid {top.pid})"
                f"{_where(top)} has {total} zombie children it does not reap",
                [_evidence(p) for p in parents]))
        return findings


def _subject(parent: ZombieParent) -> str:
    # as the runaway rule: a scope or a user's manager is no service of the host's to restart
    unit = parent.unit or ""
    if unit.endswith(".service") and not unit.startswith("user@"):
        return unit
    return f"pid:{parent.pid}"


def _where(parent: ZombieParent) -> str:
    return f" in {parent.unit}" if parent.unit else ""


def _evidence(parent: ZombieParent) -> str:
    return (f"pid {parent.pid}{_where(parent)} ({quote(parent.command, 100) or '?'}): "
            f"{parent.zombies} zombie children (state Z)")
