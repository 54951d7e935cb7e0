"""How often a host's journal may wake a check: a token bucket, pure (the caller's clock).

A failure wakes a check at once; a few more in a row do too (a fix that fails, a unit
that fails again). Errors that keep coming (a scanner at sshd, a unit restarting every
100 ms) wake one check per ``gap`` seconds, not one after another: the interval would
otherwise become a loop of full collections on the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WakeBudget:
    #: seconds to earn one more check woken out of turn
    gap: float
    #: checks that may be woken one right after another
    burst: int = 3
    tokens: float = field(init=False)
    stamp: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def _earn(self, now: float) -> None:
        if self.stamp is not None and self.gap > 0:
            earned = max(0.0, now - self.stamp) / self.gap
            self.tokens = min(float(self.burst), self.tokens + earned)
        elif self.gap <= 0:
            self.tokens = float(self.burst)
        self.stamp = now

    def wait(self, now: float) -> float:
        """Seconds from ``now`` until a woken check may run."""
        self._earn(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) * self.gap

    def spend(self, now: float) -> None:
        """A woken check runs at ``now``."""
        self._earn(now)
        self.tokens = max(0.0, self.tokens - 1)


def next_due(due: float, now: float, interval: float) -> float:
    """When the interval check after the one due at ``due`` is due, at ``now`` as it ended:
    every ``interval`` from the first (a check's own time does not push the next later: a
    host whose connect timed out in 10 s was checked every 310 s, and schedules slid apart);
    one that overran skips to the next due time after ``now``, no burst to catch up."""
    missed = max(1, -(-(now - due) // interval))
    return due + interval * missed
