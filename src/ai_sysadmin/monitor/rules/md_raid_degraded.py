from __future__ import annotations

from ..findings import Finding, Severity, quote
from ..snapshot import MdArray
from .base import Rule, RuleContext


class MdRaidDegraded(Rule):
    """A Linux md array runs on fewer members than it is made of (``[2/1] [U_]`` in
    /proc/mdstat): its redundancy is gone, and the next disk to fail takes its data. Critical,
    rebuilding or not: a rebuild reads every other member, the moment a second weak disk
    fails most often; its progress is said. A resync or check of a whole array is md's
    routine, no finding.

    An inactive array is a warning: md holds its members but did not start it (too few of
    them came up at boot, or an old disk's superblock was found), so whatever lives on it is
    not served. It is not known to have lost a member: md names no count for it.

    One finding an array (subject: its name). Judged only where /proc/mdstat exists: a host
    without the md driver has no array to judge, and none of its incidents resolve there.
    """

    name = "md_raid_degraded"
    requires = ("md_arrays",)
    description = "A Linux md RAID array has lost a member (or is inactive): no redundancy left."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        findings = []
        for array in ctx.snapshot.md_arrays or []:
            if not array.active:
                findings.append(self.finding(
                    ctx, array.name, Severity.WARNING,
                    f"md array {array.name} is inactive: md holds its members but did not "
                    "start it, so nothing on it is served",
                    [_members(array)]))
            elif array.degraded:
                findings.append(self.finding(ctx, array.name, Severity.CRITICAL,
                                             _degraded(array), _evidence(array)))
        return findings


def _degraded(array: MdArray) -> str:
    summary = (f"md array {array.name} ({array.level}) is degraded: {array.working} of its "
               f"{array.slots} members work [{array.status}]")
    if array.failed:
        summary += f"; failed: {', '.join(array.failed)}"
    if array.sync_action in ("recovery", "recover"):
        return f"{summary}; rebuilding, {quote(array.sync_progress, 120)}"
    return f"{summary}; no rebuild runs"


def _members(array: MdArray) -> str:
    listed = [*array.members, *(f"{m} (failed)" for m in array.failed),
              *(f"{m} (spare)" for m in array.spares)]
    return f"members: {', '.join(listed) if listed else 'none listed'}"


def _evidence(array: MdArray) -> list[str]:
    evidence = [f"/proc/mdstat: {array.name} : active {array.level}, "
                f"[{array.slots}/{array.working}] [{array.status}]", _members(array)]
    if array.sync_action:
        evidence.append(f"{array.sync_action} = {quote(array.sync_progress, 200)}")
    return evidence
