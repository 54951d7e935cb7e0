from __future__ import annotations

from ..findings import Finding, Severity, quote
from ..snapshot import MdArray
from .base import Rule, RuleContext

#: why md has not started a sync it says it will run (``resync=DELAYED``, ``=PENDING``)
_WAITS = {
    "DELAYED": "md runs it once another array on the same disks has synced",
    "PENDING": "md starts it at the array's first write, or once its sync is let run",
}
#: md's words for a rebuild onto a new member
_REBUILD = ("recovery", "recover")


class MdRaidDegraded(Rule):
    """A Linux md array runs on fewer members than it is made of (``[2/1] [U_]`` in
    /proc/mdstat): its redundancy is gone, and the next disk to fail takes its data. Critical,
    rebuilding or not: a rebuild reads every other member, the moment a second weak disk
    fails most often; its progress is said, or that it waits to start, or what md runs
    instead. A resync or check of a whole array is md's routine, no finding; a member md
    marked failed (``(F)``) beside a whole array (a spare, a journal device) is a warning:
    redundancy holds, but a disk failed.

    An inactive array is a warning: md holds its members but did not start it (too few of
    them came up at boot, or an old disk's superblock was found), so whatever lives on it is
    not served. It is not known to have lost a member: md names no count for it. An Intel
    RST (IMSM) or DDF container, listed inactive beside the arrays in it for as long as they
    exist, is no array: never a finding (the arrays in it are judged).

    One finding an array (subject: its name). Judged only where /proc/mdstat exists (a host
    without the md driver has no array to judge, and none of its incidents resolve there),
    and not in a container, which sees its host's /proc/mdstat: the host, checked itself,
    reports its arrays once, not once a container.
    """

    name = "md_raid_degraded"
    requires = ("md_arrays", "container")
    of_the_host = True
    description = "A Linux md RAID array has lost a member (or is inactive): no redundancy left."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        findings = []
        for array in ctx.snapshot.md_arrays or []:
            if array.container:
                continue
            if not array.active:
                findings.append(self.finding(
                    ctx, array.name, Severity.WARNING,
                    f"md array {array.name} is inactive: md holds its members but did not "
                    "start it, so nothing on it is served",
                    [_members(array)]))
            elif array.degraded:
                findings.append(self.finding(ctx, array.name, Severity.CRITICAL,
                                             _degraded(array), _evidence(array)))
            elif array.failed:
                findings.append(self.finding(ctx, array.name, Severity.WARNING,
                                             _failed(array), _evidence(array)))
        return findings



def _degraded(array: MdArray) -> str:
    summary = (f"md array {array.name} ({array.level}) is degraded: {array.working} of its "
               f"{array.slots} members work [{array.status}]")
    if array.failed:
        summary += f"; failed: {', '.join(array.failed)}"
    return f"{summary}; {_sync(array)}"


def _sync(array: MdArray) -> str:
    """What md does to a degraded array: rebuild it, wait to, or something else."""
    action, progress = array.sync_action, array.sync_progress
    said = progress.split()[0] if progress else ""
    if said in _WAITS:
        # md says resync=DELAYED for a rebuild that waits too: one waits where a device is
        # there to rebuild onto (a spare, or a member beyond those that work)
        onto = bool(array.spares) or len(array.members) > (array.working or 0)
        what = "its rebuild" if action in _REBUILD or onto else f"no rebuild runs; a {action}"
        return f"{what} waits to start ({action}={said}: {_WAITS[said]})"
    if action in _REBUILD:
        return f"rebuilding, {quote(progress, 120)}"
    if action:
        return f"no rebuild runs, a {action} does: {quote(progress, 120)}"
    return "no rebuild runs"


def _failed(array: MdArray) -> str:
    whole = (f"all {array.slots} of its members work [{array.status}]"
             if array.slots is not None else "its members work")
    return (f"md array {array.name} ({array.level}) has a failed device: md marked "
            f"{', '.join(array.failed)} faulty; {whole}, so its redundancy holds, but the "
            "failed disk needs replacing")


def _members(array: MdArray) -> str:
    listed = [*array.members, *(f"{m} (failed)" for m in array.failed),
              *(f"{m} (spare)" for m in array.spares)]
    return f"members: {', '.join(listed) if listed else 'none listed'}"


def _evidence(array: MdArray) -> list[str]:
    counts = (f", [{array.slots}/{array.working}] [{array.status}]"
              if array.slots is not None else "")
    evidence = [f"/proc/mdstat: {array.name} : active {array.level}{counts}", _members(array)]
    if array.metadata.startswith("external:/"):
        container = array.metadata.removeprefix("external:/").split("/")[0]
        evidence.append(f"in container {container} (super {array.metadata})")
    if array.sync_action:
        evidence.append(f"{array.sync_action} = {quote(array.sync_progress, 200)}")
    return evidence
