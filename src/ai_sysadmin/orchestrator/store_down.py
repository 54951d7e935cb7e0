"""The state database refuses the daemon's checks (its disk full, commonly /var): told around it.

Everything a person hears goes through the outbox in the state database, so a full disk under
it silenced every message, the disk_space incident of that very disk included. Once the
daemon's checks have been refused for a whole ``check_interval`` (one passing refusal, a lock a
backup let go, says nothing), one message, high priority, goes straight to the channels: what
the store refuses, and how full the file system under it was at this machine's last check
(collected, just not stored). A daemon that cannot even open its state database (restarted,
or the machine rebooted, on the full disk: its WAL's files cannot be made) exits to be started
again by its unit every few seconds, and says so the same way (:func:`tell_not_opened`).

Either is said once an outage: what was told is kept in the unit's runtime directory
(:class:`OutageRecord`, a tmpfs that outlives the daemon's restarts, not a reboot), since the
store cannot keep it; a daemon run by hand has none and keeps it in memory. When a check is
stored again, a low one says so through the outbox, recorded with the first in the same
transaction (``notify status`` shows both); a store that refuses that too is tried again at
the next check that works.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..config import Settings
from ..monitor.findings import percent, quote, size
from ..monitor.snapshot import Mount, Snapshot
from ..notify.channels import build_channels
from ..notify.message import PRIORITIES, Message, finish
from ..notify.notifier import Notifier, send_around

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


@dataclass(frozen=True)
class Told:
    """A message sent around the store: each channel's outcome (None: accepted), when it was
    sent and since when the store refused (wall clock)."""

    message: Message
    results: dict[str, str | None]
    at: float
    since: float


#: the file of :class:`OutageRecord` in the unit's runtime directory
RECORD_NAME = "store-down.json"


class OutageRecord:
    """What was told around the store in this outage, kept off the state database's disk: in
    the unit's runtime directory (``RuntimeDirectory=``, kept across the daemon's restarts by
    ``RuntimeDirectoryPreserve=restart``, emptied at boot). ``directory`` None (a daemon run
    by hand): nothing is kept, each start may say it again. Its failures are logged, never
    raised: telling matters more than remembering it."""

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / RECORD_NAME if directory is not None else None

    @classmethod
    def of_unit(cls) -> OutageRecord:
        """The record in the directory systemd names in ``$RUNTIME_DIRECTORY`` (its first)."""
        first = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
        return cls(Path(first) if os.path.isabs(first) else None)

    def told(self) -> Told | None:
        if self.path is None:
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return Told(Message(**data["message"]), dict(data["results"]),
                        float(data["at"]), float(data["since"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("what was told of the state database is not readable in %s (%s): it "
                        "may be told again", self.path, exc, extra={"event": "store_told_lost"})
            return None

    def keep(self, told: Told) -> None:
        if self.path is None:
            return
        partial = self.path.with_suffix(".partial")
        try:
            # systemd gives the directory's files to root and the unit's group at each start:
            # the group (the daemon's) must still read and replace it
            handle = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o660)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                os.fchmod(out.fileno(), 0o660)  # whatever the umask
                out.write(json.dumps(asdict(told)))
            partial.replace(self.path)
        except OSError as exc:
            log.warning("what was told of the state database is not kept in %s (%s): a "
                        "restart may tell it again", self.path.parent, exc.strerror or exc,
                        extra={"event": "store_told_not_kept"})

    def clear(self) -> None:
        if self.path is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("the record of what was told of the state database stays in %s (%s)",
                        self.path, exc.strerror or exc, extra={"event": "store_told_kept"})


class StoreDown:
    """``seen``: this machine's last collected snapshot (its checker's, stored or not);
    ``record``: where what was told is kept across restarts (none by default)."""

    def __init__(self, settings: Settings, notifier: Notifier, database: Path,
                 seen: Callable[[], Snapshot | None],
                 record: OutageRecord | None = None) -> None:
        self.settings = settings
        self.notifier = notifier
        self.database = database
        self.seen = seen
        self.record = record or OutageRecord(None)
        #: since when the checks are refused, with none stored since (monotonic, wall)
        self._since: tuple[float, float] | None = None
        #: what was sent around the store, until the store keeps it: told before a restart
        #: (the daemon, or one that could not open its database) is not told again
        self._told: Told | None = self.record.told()
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
            message = self._down_message(line, why, since[1])
            results = await self.notifier.send_around(message)
            # an interval from the failure, not from the try: a channel that took seconds to
            # fail is not tried again by the next host's check
            self._tried = time.monotonic()
            accepted = [name for name, why in results.items() if why is None]
            if not accepted:  # tried again a check_interval later: not once a check of each host
                log.warning("the state database refuses the checks; telling a person failed: "
                            "%s", "; ".join(f"{n}: {why}" for n, why in results.items()),
                            extra={"event": "store_refused_not_told"})
                return
            self._told = Told(message, results, now[1], since[1])
            self.record.keep(self._told)
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
        told = self._told
        back = self._back_message(told.since)
        channels = [c.name for c in self.notifier.channels]
        try:
            await self.notifier.queue_after(told.message, told.results, back, channels,
                                            told.at)
        except Exception as exc:  # the store refuses it still: the next stored check tries
            log.info("the state database works again, not told yet (%s)",
                     quote(str(exc), LINE_LIMIT), extra={"event": "store_back_not_told"})
            return
        self._told = None
        self.record.clear()
        log.info("the state database takes the checks again: a person is told",
                 extra={"event": "store_back"})

    def _down_message(self, line: str, why: str | None, since: float) -> Message:
        name = self.settings.ai_name
        lines = [quote(line, LINE_LIMIT),
                 f"Since {_clock(since)}: nothing the checks find is kept or told, no "
                 "incident is opened, no fix is recorded."]
        mount = mount_of(self.seen(), self.database.parent)
        if mount is not None:
            lines.append(
                f"> {quote(mount.target, 100)} ({quote(mount.fstype, 20)} on "
                f"{quote(mount.source, 100)}) was {percent(mount.used_percent)} full at the "
                f"last check: {_amounts(mount.used_bytes, mount.avail_bytes)}")
        lines.append(_next(self.database.parent))
        # what to mend first, where a phone shows only the title
        title = (f"[{name}] cannot record anything: its state database cannot be written"
                 f"{f': {why}' if why else ''}; {name} is not watching until it is mended")
        return finish(title, lines, PRIORITIES["high"])

    def _back_message(self, since: float) -> Message:
        name = self.settings.ai_name
        return finish(
            f"[{name}] records again: its state database can be written",
            [f"The checks are stored again; nothing was recorded since {_clock(since)} or "
             "shortly before. What they find is kept and told again.", f"Next: {name}-issues list"],
            PRIORITIES["low"])


def _clock(at: float) -> str:
    """A moment as a person reads it in a message: this machine's local time, its zone."""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(at))


def _amounts(used: int, avail: int) -> str:
    return f"{size(used)} of {size(used + avail)} used, {size(avail)} free"


def _next(directory: Path) -> str:
    """What a person runs first: how full the disks are, the state directory's first."""
    return f"Next: df -h {quote(str(directory), 200)}"


def _disk_line(path: Path) -> str | None:
    """How full the file system under ``path`` is now, as this machine sees it (the daemon
    has no check of its own to tell it)."""
    point = Path(os.path.realpath(path))
    while not os.path.ismount(point) and point != point.parent:
        point = point.parent
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    total, avail = stat.f_blocks * stat.f_frsize, stat.f_bavail * stat.f_frsize
    used = total - stat.f_bfree * stat.f_frsize
    fill = 100.0 * used / (used + avail) if used + avail else 0.0
    return f"> {quote(str(point), 100)} is {percent(fill)} full: {_amounts(used, avail)}"


async def tell_not_opened(settings: Settings, record: OutageRecord, what: str, line: str,
                          why: str | None) -> str:
    """A daemon that cannot open ``what`` ("the state database", "its queue"; ``line``: the
    error, ``why``: in a few words) tells a person around the store, once an outage (its
    unit starts it again every few seconds): the clause its error line ends with."""
    told = record.told()
    if told is not None:
        at = time.strftime("%H:%M:%S", time.localtime(told.at))
        return f"a person was told at {at}"
    channels = build_channels(settings)
    if not channels:
        return "nobody to tell: no notification channel is configured"
    if record.path is None:
        return "nobody is told (started by hand: no runtime directory keeps it once)"
    name, now = settings.ai_name, time.time()
    lines = [quote(line, LINE_LIMIT),
             f"Since {_clock(now)}: {name} starts again every few seconds and watches once "
             "it opens; until then nothing is checked, kept or told."]
    if (disk := _disk_line(settings.db_path.parent)) is not None:
        lines.append(disk)
    lines.append(_next(settings.db_path.parent))
    message = finish(f"[{name}] cannot start: {what} cannot be opened"
                     f"{f': {why}' if why else ''}; {name} is not watching until it is "
                     "mended", lines, PRIORITIES["high"])
    results = await send_around(channels, message)
    accepted = [channel for channel, failed in results.items() if failed is None]
    if not accepted:
        failures = "; ".join(f"{channel}: {failed}" for channel, failed in results.items())
        return f"telling a person failed ({failures}), tried again at the next start"
    record.keep(Told(message, results, now, now))
    return f"a person is told ({', '.join(accepted)})"
