"""Event-driven detection: follow a host's journal and wake the checker on what matters.

The follower never stores entries or moves cursors: it only says "look now". The check that
follows reads the journal from its persisted cursor, so nothing is lost or repeated.

Following starts at the journal's end, some time after the check before it collected (the
daemon starts both at once; a follower that stopped starts again after a pause): a unit that
failed in between would wait for the next interval check (300 s by default). So the first entry a
follower reads, the last one logged before it began, wakes a check whatever it says: that
check collects after the follower began reading, and what comes later the follower sees.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..aio import check_cancelled
from ..config import Settings
from ..errors import TransportError
from ..hosts.transport import Transport
from .parsers import parse_journal_line
from .sections import JournalQuery, journal_argv
from .snapshot import JournalEntry

log = logging.getLogger("ai_sysadmin.orchestrator")

#: a follower that keeps stopping remembers at most this many reasons, each cut this short
SAID_MAX = 16
SAID_LIMIT = 500

#: systemd's own words when a unit goes wrong (MESSAGE_ID-independent, stable across
#: versions), of those it logs at warning or worse, which the follower reads ("Main process
#: exited" is a notice, "Scheduled restart job" info: a crash wakes a check by its "Failed
#: with result", which systemd logs at every failure, a restart after it or none)
_UNIT_TROUBLE = (
    "Failed with result",
    "Start request repeated too quickly",
    "bad unit file setting",
    "Failed to start",
)


def is_trigger(entry: JournalEntry) -> bool:
    """Worth an immediate check: an error, or systemd reporting a unit in trouble."""
    return entry.priority <= 3 or any(marker in entry.message for marker in _UNIT_TROUBLE)


class JournalFollower:
    def __init__(
        self,
        transport: Transport,
        settings: Settings,
        on_trigger: Callable[[JournalEntry], None],
        max_backoff: float = 60.0,
        journal_there: Callable[[], bool] | None = None,
    ) -> None:
        self.transport = transport
        self.settings = settings.on_host(transport.local_programs)
        self.on_trigger = on_trigger
        #: whether the host has a journal to follow, as its last check saw it (no systemd
        #: runs there: no journald, no journalctl); asked before each start
        self.journal_there = journal_there
        self.max_backoff = max_backoff
        #: set once journalctl has been started (tests and benchmarks wait on it); it reads
        #: the journal a moment later, and its first entry wakes a check (the docstring)
        self.started = asyncio.Event()

    async def run(self) -> None:
        """Follow until cancelled; restart journalctl with backoff when it exits."""
        # without --all journalctl writes a field of 4096 bytes or more as null: a follower
        # only learns that something happened (the check reads it whole), and no line can
        # outgrow the stream's limit (any local user can log a 400 KiB message, 1.6 MB of
        # JSON, which ended the follower)
        argv = [arg for arg in journal_argv(self.settings, JournalQuery(), follow=True)
                if arg != "--all"]
        backoff = 1.0
        #: the stops said since it last followed, and the pause said last: a host down for a
        #: week, or a journalctl that keeps ending, is said as it begins and as the pause
        #: grows, then not again at each restart until something new is met or it follows
        said: dict[str, None] = {}
        paused: float | None = None
        while True:
            check_cancelled()  # cancelled at a moment a library lost it: stop all the same
            if self.journal_there is not None and not self.journal_there():
                await self._none_there()
                continue
            lines, reading = 0, False
            why = "journalctl ended"
            try:
                stream = self.transport.stream_lines(argv)
                self.started.set()
                async for line in stream:
                    lines += 1
                    entry = parse_journal_line(line)
                    if entry is None:
                        continue
                    if lines > 1 and said:
                        log.info("journal follower of %s follows again", self.transport.host,
                                 extra={"host": self.transport.host,
                                        "event": "follower_back"})
                    if lines > 1:
                        said, paused = {}, None
                    # the first: following has begun (the module's docstring)
                    if not reading or is_trigger(entry):
                        self.on_trigger(entry)
                    reading = True
            except TransportError as exc:
                why = f"cannot start: {exc}"
            except Exception as exc:  # whatever the stream met, following goes on
                why = f"failed: {type(exc).__name__}: {exc}"
            # followed (read past its first entry): restart at once; else, pause longer each
            # time, so that a journalctl that keeps ending after its first entry does not
            # wake a check a second
            backoff = 1.0 if lines > 1 else min(backoff * 2, self.max_backoff)
            self._say_stop(why, backoff, said, paused)
            said[why[:SAID_LIMIT]] = None
            if len(said) > SAID_MAX:  # texts that never repeat (a changing port): kept bounded
                del said[next(iter(said))]
            paused = backoff
            await asyncio.sleep(backoff)

    async def _none_there(self) -> None:
        """A host whose last check saw no systemd runs no journalctl: one started there
        failed, and another a minute later, for good (on a fleet of 240 such hosts, four SSH
        sessions a second). Looked at again every ``max_backoff`` seconds, no session
        opened, until a check sees systemd there."""
        host = self.transport.host
        log.info("journal follower of %s waits: systemd does not run there (its last check); "
                 "looked at again every %.0f s", host, self.max_backoff,
                 extra={"host": host, "event": "follower_waits"})
        assert self.journal_there is not None
        while not self.journal_there():
            await asyncio.sleep(self.max_backoff)

    def _say_stop(self, why: str, backoff: float, said: dict[str, None],
                  paused: float | None) -> None:
        """A stop whose reason is news since it last followed, and, as stops begin, the
        pauses that follow: said once, not at each pause (a host down for an hour is six
        lines less, a fleet's outage a thousand)."""
        host = self.transport.host
        if why[:SAID_LIMIT] not in said and why != "journalctl ended":
            log.warning("journal follower of %s %s", host, why,
                        extra={"host": host, "event": "follower_failed"})
        if paused is not None:  # said as these stops began
            return
        then = (f"every {self.max_backoff:.0f} s" if backoff >= self.max_backoff else
                f"after pauses twice as long each time, up to every {self.max_backoff:.0f} s,")
        log.info("journal follower of %s stopped; restarting in %.0f s, then %s while it "
                 "stops so (said again when it follows)", host, backoff, then,
                 extra={"host": host, "event": "follower_stopped"})
