from __future__ import annotations

from typing import NamedTuple

from ..findings import Finding, percent
from ..snapshot import KernelLimits, Load
from .base import Rule, RuleContext


class Use(NamedTuple):
    """One kernel-wide limit, how much of it is used, and what a finding says of it."""

    subject: str
    used: int
    limit: int
    #: "the host runs {used} of the {limit} {what}"
    what: str
    #: what fails at the limit
    fails: str
    evidence: str


def uses(load: Load, limits: KernelLimits) -> list[Use]:
    """The host's threads against the first of pid_max and threads-max, and its file
    handles against fs.file-max; threads only where /proc/loadavg gives their count."""
    found = []
    if load.threads is not None:
        which = ("kernel.pid_max" if limits.pid_max <= limits.threads_max
                 else "kernel.threads-max")
        found.append(Use(
            "threads", load.threads, limits.threads_limit,
            f"threads the kernel allows ({which})",
            "every fork and new thread on the host fails with 'Resource temporarily "
            "unavailable'",
            f"/proc/loadavg: {load.threads} threads; pid_max={limits.pid_max}, "
            f"threads-max={limits.threads_max}"))
    found.append(Use(
        "file-handles", limits.files_open, limits.files_max,
        "file handles the kernel allocates (fs.file-max)",
        "opening a file or socket fails everywhere with 'Too many open files in system'",
        f"/proc/sys/fs/file-nr: {limits.files_open} allocated of {limits.files_max}"))
    return found


class HostLimitsExhausted(Rule):
    """The host runs near the kernel's own limits: its threads (all of them, the total of
    /proc/loadavg) near the first of ``kernel.pid_max`` and ``kernel.threads-max``, or its
    allocated file handles (/proc/sys/fs/file-nr) near ``fs.file-max``. Past either, every
    process on the host fails to fork or to open a file, whatever its own limits.

    A warning at ``limit_warn_percent``, critical at ``limit_critical_percent``; one finding
    a limit (subject: ``threads``, ``file-handles``). Not judged in a container, whose
    /proc/loadavg and /proc/sys are its host's kernel's: the host, checked itself, reports
    them once, not once a container.
    """

    name = "host_limits_exhausted"
    requires = ("load", "kernel_limits", "container")
    of_the_host = True
    description = ("The host runs near the kernel's limit of threads (pid_max, threads-max) "
                   "or of open file handles (fs.file-max).")

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        snap, t = ctx.snapshot, ctx.thresholds
        if snap.load is None or snap.kernel_limits is None:
            return []
        findings = []
        for use in uses(snap.load, snap.kernel_limits):
            pct = 100.0 * use.used / use.limit if use.limit else 0.0
            if pct < self.warns_at(ctx, use.subject, t.limit_warn_percent):
                continue
            severity = self.severity_at(ctx, use.subject, pct, t.limit_critical_percent)
            findings.append(self.finding(
                ctx, use.subject, severity,
                f"the host runs {use.used} of the {use.limit} {use.what} ({percent(pct)}): "
                f"at the limit {use.fails}", [use.evidence]))
        return findings

