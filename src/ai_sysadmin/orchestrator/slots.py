"""How many investigations ask the model at once, and which one goes next.

The queue serves autonomous requests in the order they came, ``queue.concurrency`` at a time,
and each waits ``queue.wait_timeout`` at most. A burst of incidents (after an outage of the
LLM, a host that came back with a dozen failed units) that all asked at once had most of
their first turns time out in the queue, while the few that got through finished and the
model then sat idle: so the investigations themselves wait here, most severe first, then the
oldest, and ask only when one of the slots is free.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class Slots:
    """At most ``limit`` holders at once; the others wait, the lowest ``(rank, since)`` first
    (ties: the first to come)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 1)
        self.taken = 0
        self._waiting: list[tuple[int, float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for *_, future in self._waiting if not future.done())

    async def take(self, rank: int, since: float) -> None:
        """Wait for a slot; give it back with :meth:`give_back`, once, whatever happens."""
        if self.taken < self.limit and not self.waiting:
            self.taken += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (rank, since, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            # handed the slot just as it was cancelled: the next one gets it, or it is lost
            if future.done() and not future.cancelled():
                self.give_back()
            raise

    def give_back(self) -> None:
        """A slot free again: the first that waits gets it (one cancelled meanwhile does not)."""
        while self._waiting:
            *_, future = heapq.heappop(self._waiting)
            if not future.done():
                future.set_result(None)
                return
        self.taken -= 1
