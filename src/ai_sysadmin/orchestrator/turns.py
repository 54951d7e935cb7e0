"""Turns of a fleet's checks: at most ``check_concurrency`` hosts collected at once.

The limit is there for this machine's sake (SSH handshakes, remote scripts being parsed),
not the hosts'. A host that does not answer (frozen, behind a partition that sends no reset)
costs this machine a socket and a timer, yet it held its turn through a 10 s connect or a
20 s command timeout: with 200 of 242 hosts frozen, the 42 healthy ones were checked every
54-92 s at a 30 s interval. A turn is therefore given back once it has been held for
:data:`TURN_SECONDS`, and a host whose last collection outlived its turn is asked without
one, until it answers within a turn again: in a pool of its own, :data:`SLOW_POOL` times
as large, so that hosts slow for good (a long way, a jump host) are not all asked at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

#: how long one host's collection holds its turn: a healthy host answers a warm check in
#: well under a second and a cold one (a handshake) in about one, even 64 at once
TURN_SECONDS = 3.0
#: the hosts asked without a turn at once, as a multiple of the turns
SLOW_POOL = 4


@dataclass
class Turn:
    #: whether the collection outlived :data:`TURN_SECONDS` (its turn, if it had one, was
    #: given back to the others meanwhile)
    outlived: bool = False


class Turns:
    """``size`` turns shared by a fleet's checkers, first come first served."""

    def __init__(self, size: int, hold: float = TURN_SECONDS) -> None:
        self.size = size
        self.hold = hold
        self._free = asyncio.Semaphore(size)
        self._slow = asyncio.Semaphore(size * SLOW_POOL)
        #: the hosts whose last collection outlived its turn
        self.outlived: set[str] = set()

    @contextlib.asynccontextmanager
    async def turn(self, host: str) -> AsyncIterator[Turn]:
        """A turn for one collection of ``host``, given back when it ends or once held for
        ``hold`` seconds, whichever comes first; none taken where the host's last collection
        outlived its turn (one of the slow pool's then)."""
        turn = Turn()
        wait = host not in self.outlived
        # a wait for the slow pool that is cancelled (a stop) leaves the host as it was
        async with contextlib.nullcontext() if wait else self._slow:
            try:
                async with self._held(turn, wait) as held_turn:
                    yield held_turn
            finally:
                if turn.outlived:
                    self.outlived.add(host)
                else:
                    self.outlived.discard(host)

    @contextlib.asynccontextmanager
    async def _held(self, turn: Turn, wait: bool) -> AsyncIterator[Turn]:
        """One of the turns for the block where ``wait``, given back once held for
        ``hold``; ``turn`` says whether the block outlived that."""
        loop = asyncio.get_running_loop()
        held = False

        def give_back() -> None:
            nonlocal held
            turn.outlived = True
            if held:
                held = False
                self._free.release()

        if wait:
            await self._free.acquire()
            held = True
        timer = loop.call_later(self.hold, give_back)
        try:
            yield turn
        finally:
            timer.cancel()
            if held:
                held = False
                self._free.release()
