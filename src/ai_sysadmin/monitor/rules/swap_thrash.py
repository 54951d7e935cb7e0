from __future__ import annotations

from ..findings import Finding, Severity
from .base import Rule, RuleContext


class SwapThrash(Rule):
    """Pages moving in and out of swap fast, measured since the baseline snapshot."""

    name = "swap_thrash"
    requires = ("swap",)
    description = "Pages swap in and out faster than the threshold."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        now, prev = ctx.snapshot, ctx.rates_from
        if now.swap is None or prev is None or prev.swap is None:
            return []
        seconds = now.taken_at - prev.taken_at
        if seconds <= 0:
            return []
        moved = now.swap.pages_in - prev.swap.pages_in + now.swap.pages_out - prev.swap.pages_out
        rate = moved / seconds
        if rate < ctx.thresholds.swap_thrash_pages_per_second:
            return []
        return [
            self.finding(
                ctx,
                "swap",
                Severity.WARNING,
                f"swap thrashing: {rate:.0f} pages/s",
                [f"pswpin+pswpout rose by {moved} pages in {seconds:.0f} s"],
            )
        ]
