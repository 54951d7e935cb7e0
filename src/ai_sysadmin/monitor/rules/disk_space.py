from __future__ import annotations

from ..findings import Finding, percent, size
from ..snapshot import FileSystem, distinct_filesystems
from .base import Rule, RuleContext


class DiskSpace(Rule):
    name = "disk_space"
    requires = ("mounts",)
    subject_is_mount = True
    description = "A file system is nearly full."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        t = ctx.thresholds
        findings = []
        for fs in distinct_filesystems(ctx.snapshot.mounts or [], self.found_subjects(ctx)):
            m = fs.mount
            pct = m.used_percent
            # a read-only one cannot fill up
            if m.read_only or pct < self.warns_at(ctx, m.target, t.disk_warn_percent):
                continue
            severity = self.severity_at(ctx, m.target, pct, t.disk_critical_percent)
            findings.append(
                self.finding(
                    ctx,
                    m.target,
                    severity,
                    f"{m.target} is {percent(pct)} full",
                    [_figures(fs), *fs.also_mounted()],
                )
            )
        return findings


def _figures(fs: FileSystem) -> str:
    m = fs.mount
    # a pool's used figure is what its datasets df lists hold (not its snapshots')
    held = f"used by its {fs.datasets} mounted datasets" if fs.pool else "used"
    where = f"ZFS pool {fs.pool}" if fs.pool else f"{m.fstype} on {m.source}"
    return (f"{m.target} ({where}): {size(m.used_bytes)} of "
            f"{size(m.used_bytes + m.avail_bytes)} {held}, {size(m.avail_bytes)} free")
