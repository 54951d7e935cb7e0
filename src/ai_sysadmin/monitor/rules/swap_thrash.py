from __future__ import annotations

from ..findings import Finding, Severity
from ..parsers import VMSTAT
from ..snapshot import Snapshot
from .base import Rule, RuleContext


class SwapThrash(Rule):
    """Pages moving in and out of swap fast, measured since the baseline snapshot, over the
    time between the two reads of /proc/vmstat on the host's clock (:func:`_between_reads`)."""

    name = "swap_thrash"
    # a container's /proc/vmstat is the machine's (Snapshot.machine_wide): its check finds
    # nothing, the machine's own judges it
    requires = ("swap", "container")
    description = "Pages swap in and out faster than the threshold."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        now, prev = ctx.snapshot, ctx.rates_from
        if now.swap is None or prev is None or prev.swap is None or now.machine_wide(VMSTAT):
            return []
        since_now = now.swap.pages_in + now.swap.pages_out
        moved = since_now - prev.swap.pages_in - prev.swap.pages_out
        seconds = _between_reads(prev, now)
        how = f"pswpin+pswpout rose by {moved} pages in {seconds:.0f} s"
        # a reboot in between starts the counters again: the rate is the new boot's own
        up, up_before = now.uptime_seconds, prev.uptime_seconds
        if moved < 0 or (up is not None and up_before is not None and up < up_before):
            if not up:
                return []
            moved, seconds = since_now, up
            how = f"pswpin+pswpout are {moved} pages {seconds:.0f} s after the host booted"
        if seconds <= 0:
            return []
        rate = moved / seconds
        # a rate that hovers at the level (510 and 490 pages/s in turn) is one incident, not
        # one that opens, resolves and reopens (a new investigation each time) check after
        # check: once found, it is over only a share of the level below it
        if rate < self.kept_at(ctx, "swap", ctx.thresholds.swap_thrash_pages_per_second):
            return []
        return [self.finding(ctx, "swap", Severity.WARNING,
                             f"swap thrashing: {rate:.0f} pages/s", [how])]

    def judges(self, ctx: RuleContext) -> bool:
        # a rate needs the counters of an earlier look
        prev = ctx.rates_from
        return prev is not None and prev.swap is not None


def _between_reads(prev: Snapshot, now: Snapshot) -> float:
    """The seconds between two reads of /proc/vmstat: by the host's uptime, read with it in
    one ``tail``, where both checks read it in one boot (a clock the host steps moves its
    boot time, not its uptime: 290 s set back between two looks 300 s apart made 100 pages/s
    a 3000 pages/s "thrashing"); else on the host's clock (boot time plus uptime); else between
    the checks' ``taken_at``, which is when a collection began or its reply came back: a
    journal backlog that held one reply 40 s made a steady rate look 15 % faster or slower."""
    up_before, up_now = prev.uptime_seconds, now.uptime_seconds
    if up_before is not None and up_now is not None and up_now > up_before:
        return up_now - up_before
    read_before, read_now = prev.kernel_files_read_at(), now.kernel_files_read_at()
    if read_before is not None and read_now is not None and read_now > read_before:
        return read_now - read_before
    return now.taken_at - prev.taken_at
