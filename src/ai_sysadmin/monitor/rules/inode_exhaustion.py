from __future__ import annotations

from ..findings import Finding, percent
from ..snapshot import distinct_filesystems
from .base import Rule, RuleContext

#: file systems that make inodes as they need them, however many: df's count of them is what
#: is used plus what the free space could hold, so one that is full shows every inode used,
#: which is its disk's finding, not another (btrfs says 0 inodes, and is passed over as such)
INODES_AS_NEEDED = frozenset({"zfs"})


class InodeExhaustion(Rule):
    name = "inode_exhaustion"
    requires = ("mounts",)
    subject_is_mount = True
    description = "A file system is running out of inodes."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        t = ctx.thresholds
        findings = []
        for fs in distinct_filesystems(ctx.snapshot.mounts or [], self.found_subjects(ctx)):
            m = fs.mount
            pct = m.inodes_percent
            # a read-only file system cannot run out of what it is never asked for
            if m.read_only or not m.inodes or m.fstype in INODES_AS_NEEDED \
                    or pct < self.warns_at(ctx, m.target, t.inode_warn_percent):
                continue
            severity = self.severity_at(ctx, m.target, pct, t.inode_critical_percent)
            findings.append(
                self.finding(
                    ctx,
                    m.target,
                    severity,
                    f"{m.target} has used {percent(pct)} of its inodes",
                    [f"{m.target} ({m.fstype}): {m.inodes_used} of {m.inodes} inodes used",
                     *fs.also_mounted()],
                )
            )
        return findings
