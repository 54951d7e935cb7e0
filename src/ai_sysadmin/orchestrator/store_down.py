"""The state database refuses the daemon's checks (its disk full, commonly /var): told around it.

Everything a person hears goes through the outbox in the state database, so a full disk under
it silenced every message, the disk_space incident of that very disk included. Once the
daemon's checks have been refused for a whole ``check_interval`` (one passing refusal, a lock a
backup let go, says nothing), one message, high priority, goes straight to the channels: what
the store refuses, and how full the file system under it was at this machine's last check
(collected, just not stored). It is said once an outage, kept in memory, since the store
cannot keep it: a daemon restarted during the outage says it once more. When a check is
stored again, a low one says so through the outbox, recorded with the first in the same
transaction (``notify status`` shows both); a store that refuses that too is tried again at
the next check that works.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from ..config import Settings
from ..monitor.findings import percent, quote, size
from ..monitor.snapshot import Mount, Snapshot
from ..notify.message import PRIORITIES, Message, finish
from ..notify.notifier import Notifier

log = logging.getLogger("ai_sysadmin.service")

#: the store's line in a message: one line, this long at most
LINE_LIMIT = 300


def mount_of(snapshot: Snapshot | None, path: Path) -> Mount | None:
    """The file system ``path`` lies on, as the snapshot's df saw it: the mount with the
    longest target above it."""
    if snapshot is None or not snapshot.mounts:
        return None
    target = os.path.realpath(path)  # df names mounts by their real paths
    above = [m for m in snapshot.mounts
             if target == m.target or target.startswith(m.target.rstrip("/") + "/")]
    return max(above, key=lambda m: len(m.target), default=None)


class StoreDown:
    """``seen``: this machine's last collected snapshot (its checker's, stored or not)."""

    def __init__(self, settings: Settings, notifier: Notifier, database: Path,
                 seen: Callable[[], Snapshot | None]) -> None:
        self.settings = settings
        self.notifier = notifier
        self.database = database
        self.seen = seen
        #: since when the checks are refused, with none stored since (monotonic, wall)
        self._since: tuple[float, float] | None = None
        #: what was sent around the store and each channel's outcome, until the store keeps it
        self._told: tuple[Message, dict[str, str | None], float, float] | None = None
        #: when telling it last failed on every channel (monotonic)
        self._tried = 0.0
        #: the checks of several hosts meet the refusal at once: one of them tells it
        self._turn = asyncio.Lock()

    async def refused(self, line: str, why: str | None = None) -> None:
        """A check the store refused (``line``: its one line; ``why``: in a few words, "the
        disk is full", where known)."""
        async with self._turn:
            now = (time.monotonic(), time.time())
            if self._since is None:
                self._since = now
            since = self._since  # a check stored meanwhile ends the outage, not this message
            if self._told is not None or not self.notifier.channels:
                return  # said already, or nobody to tell but the log, which said it
            if now[0] - max(since[0], self._tried) < self.settings.check_interval:
                return  # maybe one passing refusal, or a channel failed a moment ago
            self._tried = now[0]
            message = self._down_message(line, why, since[1])
            results = await self.notifier.send_around(message)
            accepted = [name for name, why in results.items() if why is None]
            if not accepted:  # tried again a check_interval later: not once a check of each host
                log.warning("the state database refuses the checks; telling a person failed: "
                            "%s", "; ".join(f"{n}: {why}" for n, why in results.items()),
                            extra={"event": "store_refused_not_told"})
                return
            self._told = (message, results, now[1], since[1])
            log.warning("the state database refuses the checks: a person is told around it "
                        "(%s)", ", ".join(accepted),
                        extra={"event": "store_refused_told", "channels": accepted})

    async def worked(self) -> None:
        """A check stored: the outage is over; said if it was told."""
        self._since = None
        if self._told is None:
            return
        async with self._turn:
            await self._tell_back()

    async def _tell_back(self) -> None:
        if self._told is None:
            return  # another host's check told it meanwhile
        told, results, at, since = self._told
        back = self._back_message(since)
        channels = [c.name for c in self.notifier.channels]
        try:
            await self.notifier.queue_after(told, results, back, channels, at)
        except Exception as exc:  # the store refuses it still: the next stored check tries
            log.info("the state database works again, not told yet (%s)",
                     quote(str(exc), LINE_LIMIT), extra={"event": "store_back_not_told"})
            return
        self._told = None
        log.info("the state database takes the checks again: a person is told",
                 extra={"event": "store_back"})

    def _down_message(self, line: str, why: str | None, since: float) -> Message:
        name = self.settings.ai_name
        lines = [quote(line, LINE_LIMIT),
                 f"Since {time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(since))}: "
                 "nothing the checks find is kept or told, no incident is opened, no fix is "
                 "recorded."]
        mount = mount_of(self.seen(), self.database.parent)
        if mount is not None:
            lines.append(
                f"> {quote(mount.target, 100)} ({quote(mount.fstype, 20)} on "
                f"{quote(mount.source, 100)}) was {percent(mount.used_percent)} full at the "
                f"last check: {size(mount.used_bytes)} of "
                f"{size(mount.used_bytes + mount.avail_bytes)} used, "
                f"{size(mount.avail_bytes)} free")
        lines.append(f"Next: df -h {quote(str(self.database.parent), 200)}")
        # what to mend first, where a phone shows only the title
        title = (f"[{name}] cannot record anything: its state database cannot be written"
                 f"{f': {why}' if why else ''}; {name} is not watching until it is mended")
        return finish(title, lines, PRIORITIES["high"])

    def _back_message(self, since: float) -> Message:
        name = self.settings.ai_name
        return finish(
            f"[{name}] records again: its state database can be written",
            [f"The checks are stored again; nothing was recorded since "
             f"{time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(since))} or shortly "
             "before. What they find is kept and told again.", f"Next: {name}-issues list"],
            PRIORITIES["low"])
