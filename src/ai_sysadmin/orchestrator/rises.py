"""When each service's (or file system's) count of one counter last rose, as a checker
remembers it: a rule that keeps a finding while the count rose within its window (a crash
loop slower than the checks, OOM kills an hour apart, a disk failing now and then) judges
by it, and the store keeps it for the checkers that start later (a restarted daemon,
another process)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: the counters, as the store names them (``rises.counter``)
RESTARTS = "restarts"
OOM_KILLS = "oom_kills"
#: a file system's error count, by its mount point
FS_ERRORS = "fs_errors"


class RiseMemory:
    """One counter's rises within ``window`` seconds, and those the store has yet to keep."""

    def __init__(self, counter: str, window: float) -> None:
        self.counter = counter
        self.window = window
        #: service -> the latest look after which its count rose (the next saw it)
        self.after: dict[str, float] = {}
        #: those of them the store has yet to keep
        self.unsaved: dict[str, float] = {}

    def saw(self, units: Iterable[str], after: float) -> None:
        """The counts of ``units`` rose since the look at ``after``."""
        for unit in units:
            self.after[unit] = self.unsaved[unit] = after

    def within(self, now: float) -> dict[str, float]:
        """The rises within the window before ``now``; the older are forgotten. One ahead of
        now was seen before the clock was set back, recently: it counts as now, so it holds
        no judgement until the clock catches up."""
        oldest = now - self.window
        self.after = {u: min(at, now) for u, at in self.after.items() if at >= oldest}
        return dict(self.after)

    def take_up(self, stored: Mapping[str, float]) -> None:
        """What the store kept (the checks of other processes, of the daemon before)."""
        for unit, at in stored.items():
            self.after[unit] = max(at, self.after.get(unit, at))

    def saved(self, kept: Mapping[str, float]) -> None:
        """The store kept ``kept``: those not seen again since are saved."""
        for unit, at in kept.items():
            if self.unsaved.get(unit) == at:
                del self.unsaved[unit]

    def carried_on(self, window: float) -> RiseMemory:
        """A copy that knows the same rises and stores nothing of what this one has yet to,
        judged over ``window``: the receiving checker's settings, not this one's."""
        copy = RiseMemory(self.counter, window)
        copy.after = dict(self.after)
        return copy
