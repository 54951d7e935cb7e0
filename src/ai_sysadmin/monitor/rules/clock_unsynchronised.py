from __future__ import annotations

from datetime import UTC, datetime

from ..findings import Finding, Severity
from ..snapshot import ClockSync
from .base import Rule, RuleContext

#: seconds without a synchronisation after which the kernel itself calls the clock
#: unsynchronised (``STA_UNSYNC``, what ``timedatectl`` shows as "System clock synchronized:
#: no"): its estimated error grows 500 µs a second from the last adjustment and passes its
#: limit of 16 s. systemd-timesyncd synchronises at least every PollIntervalMaxSec (2048 s)
#: while it reaches a server
UNSYNC_AFTER_SECONDS = 32_000.0


class ClockUnsynchronised(Rule):
    """The time service that runs on the host does not keep its clock synchronised: it has
    not synchronised it since the host booted or it started, ``clock_sync_grace_seconds``
    ago or more, or it last did so longer ago than the kernel keeps calling the clock
    synchronised. TLS, Kerberos, log times and timers all go wrong on a clock that drifts.

    A warning, one a host (subject ``clock``). A host where no time service that tells runs
    is not judged unsynchronised: its clock may be kept by something this check cannot ask
    (a container's is its host's), and a service stopped on purpose says nothing either way.
    """

    name = "clock_unsynchronised"
    requires = ("clock_sync", "cpu", "uptime_seconds")
    description = "The host's time service has not synchronised its clock for too long."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        now = ctx.snapshot.kernel_files_read_at()
        uptime = ctx.snapshot.uptime_seconds
        if now is None or uptime is None:
            return []
        findings = []
        for sync in ctx.snapshot.clock_sync or []:
            said = _unsynchronised(sync, now, now - uptime,
                                   ctx.thresholds.clock_sync_grace_seconds)
            if said is not None:
                findings.append(self.finding(ctx, "clock", Severity.WARNING, *said))
        return findings

    def judges(self, ctx: RuleContext) -> bool:
        # the host's own time (its boot time from /proc/stat) is what the ages are measured on
        return ctx.snapshot.kernel_files_read_at() is not None


def _unsynchronised(sync: ClockSync, now: float, booted: float,
                    grace: float) -> tuple[str, list[str]] | None:
    """What is wrong with the clock ``sync`` keeps (summary and evidence), or None."""
    if sync.synced is not None:
        age = now - sync.synced
        if age <= UNSYNC_AFTER_SECONDS:
            return None
        return (f"the clock is not synchronised: {sync.service} last synchronised it "
                f"{_span(age)} ago", [f"last synchronisation at {_when(sync.synced)} on the "
                                      f"host's clock, {age:.0f} s before this check"])
    since = max(booted, sync.started) if sync.started is not None else booted
    waited = now - since
    if waited < grace:
        return None  # a clock just booted, or a service just started, is not synchronised yet
    what = "the host booted" if since == booted else "it started"
    return (f"the clock is not synchronised: {sync.service} has not synchronised it since "
            f"{what}, {_span(waited)} ago", [
                f"{sync.service} runs, and has not synchronised the clock since {what} at "
                f"{_when(since)} on the host's clock"])


def _span(seconds: float) -> str:
    if seconds >= 7200:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 60:.0f} min"


def _when(moment: float) -> str:
    return f"{datetime.fromtimestamp(moment, UTC):%Y-%m-%d %H:%M:%S} UTC"
