from __future__ import annotations

from ..findings import Finding, percent
from ..snapshot import distinct_filesystems
from .base import Rule, RuleContext


class InodeExhaustion(Rule):
    name = "inode_exhaustion"
    requires = ("mounts",)
    subject_is_mount = True
    description = "A file system is running out of inodes."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        t = ctx.thresholds
        findings = []
        for fs in distinct_filesystems(ctx.snapshot.mounts or []):
            m = fs.mount
            pct = m.inodes_percent
            # a read-only file system cannot run out of what it is never asked for
            if m.read_only or not m.inodes or pct < self.warns_at(ctx, m.target,
                                                                   t.inode_warn_percent):
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
