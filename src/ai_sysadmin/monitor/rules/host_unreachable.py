from __future__ import annotations

from ..findings import Finding, Severity, quote
from .base import Rule, RuleContext

#: if none of these could be collected, the host itself could not be reached
CORE_SECTIONS = ("cpu", "memory", "load", "mounts", "units", "processes")


class HostUnreachable(Rule):
    """Nothing at all could be collected: the host (or the way to it) is down.

    It needs no section, so it always judges: the incident resolves on the first collection
    that gets anything back. Every other rule is skipped meanwhile, so an unreachable host
    never resolves its other incidents. A host that answered but would run nothing
    (``Snapshot.refused``: the login shell is nologin) is reached: its
    sections' errors say why, and no rule judges it. A host this machine could not ask
    (``Snapshot.unasked``) is neither: this rule does not judge it either.
    """

    name = "host_unreachable"
    requires = ()
    host_down = True
    description = "The host cannot be reached: nothing could be collected."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        snap = ctx.snapshot
        if snap.refused is not None or snap.unasked is not None or not snap.errors \
                or any(getattr(snap, s) is not None for s in CORE_SECTIONS):
            return []
        first = next(iter(snap.errors.values()))
        return [self.finding(ctx, ctx.host, Severity.CRITICAL, f"{ctx.host} is unreachable",
                             [quote(first)])]

    def judges(self, ctx: RuleContext) -> bool:
        # a host this machine could not ask (its own open files ran out) is no more reached
        # than unreachable: an incident of it stays as it is
        return ctx.snapshot.unasked is None
