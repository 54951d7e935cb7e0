"""Delivery: the daemon's loops that drain the outbox, and sending at once for `notify`.

One loop turns outbox events into messages (:mod:`.storm`); one loop per channel sends that
channel's deliveries in order. A channel that fails is paused with exponential backoff, per
channel: a Gotify that hangs or answers 500 delays neither Apprise nor any check or fix (they
are other tasks; the database work runs in threads). A channel that cannot send at all (its
token file unreadable, or its token refused, or an Apprise send given up on still running)
spends no delivery's attempts: what is queued waits until it is mended. A message that fails
its ``max_attempts`` tries is given up only once the next one goes (it was the message the
service could not take): while that one fails too, the channel is down, and the first waits
on in its place, the next spending nothing, so a long outage loses nothing and keeps the
order. A message the far end refuses (an HTTP 4xx about the message: too long, a WAF's rule)
holds up no other. Delivery is at least once: a message whose send was cut off by a crash or
a stop is sent again after the restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import cached_property

from ..config import Settings
from ..store import Database
from ..store.outbox import LONGEST_BACKOFF_SECONDS, Delivery, Outbox
from ..store.refused import RefusalLog
from .channels import (
    Channel,
    ChannelUnready,
    DeliveryError,
    MessageRefused,
    build_channels,
    public_name,
    successor,
)
from .message import PRIORITIES, Message
from .storm import Dispatcher

log = logging.getLogger("ai_sysadmin.service")

#: how often the outbox is looked at (events also come from other processes: `approve`)
POLL_SECONDS = 1.0
MAX_BACKOFF_SECONDS = LONGEST_BACKOFF_SECONDS
#: deliveries read at once per channel
BATCH = 20
#: settled events, messages and deliveries are kept this long for `notify status`, and events
#: that wait for a channel while they are news (store/outbox.py: Outbox.prune)
RETENTION_SECONDS = 30 * 86400
#: why a delivery to a channel taken out of the configuration was given up
NOT_CONFIGURED = "channel no longer configured"


def backoff(first: float, attempts: int) -> float:
    """The wait after the ``attempts``-th failed attempt: first, 2x, 4x, ... up to an hour."""
    return min(first * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)


async def _wait(events: Sequence[asyncio.Event], seconds: float) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=max(seconds, 0.0),
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class Notifier:
    """``channels``: given (tests), else built from the settings when first needed."""

    def __init__(self, settings: Settings, db: Database,
                 channels: Sequence[Channel] | None = None) -> None:
        self.settings = settings
        self.outbox = Outbox(db)
        self._given = list(channels) if channels is not None else None
        self._wake: dict[str, asyncio.Event] = {}
        #: per channel, until when it is paused after a failure (monotonic: a clock set back
        #: a year while a channel waited out its backoff silenced it for that year)
        self._paused_until: dict[str, float] = {}
        #: per channel, the message delivered whose delivery the store refused to record (a
        #: full disk): recorded before anything else is sent, never sent again meanwhile
        self._unrecorded: dict[str, int] = {}

    @cached_property
    def channels(self) -> list[Channel]:
        return self._given if self._given is not None else build_channels(self.settings)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.settings, self.outbox, [c.name for c in self.channels])

    # -- the daemon's loops ---------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: dispatch the outbox and deliver, each channel on its own."""
        tasks = [asyncio.create_task(self._dispatch_loop(stop), name="notify:dispatch")]
        for channel in self.channels:
            self._wake[channel.name] = asyncio.Event()
            tasks.append(asyncio.create_task(self._channel_loop(channel, stop),
                                             name=f"notify:{channel.name}"))
        log.info("notifications: %s", ", ".join(c.shown for c in self.channels) or
                 "no channel configured: what is to be told waits in the outbox for one "
                 "(notify status), and what is still true then is sent")
        stopped = asyncio.create_task(stop.wait())
        try:
            # a send in flight is cut off at the stop: it is sent again after the restart
            await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stopped, *tasks):
                task.cancel()
            await asyncio.gather(stopped, *tasks, return_exceptions=True)
        for task in tasks:
            if not task.cancelled() and (failure := task.exception()) is not None:
                raise failure

    async def _dispatch_loop(self, stop: asyncio.Event) -> None:
        pruned: float | None = None  # monotonic: a clock set back a year pruned nothing
        said = RefusalLog(log, "notifications: dispatching the outbox")
        while not stop.is_set():
            try:
                more = bool(await asyncio.to_thread(self.dispatcher.dispatch))
                if pruned is None or time.monotonic() - pruned > 3600:
                    await asyncio.to_thread(self._settle_strays)
                    if pruned is None:
                        more = await asyncio.to_thread(self._retry_at_start) or more
                    await asyncio.to_thread(self.outbox.prune, time.time() - RETENTION_SECONDS)
                    pruned = time.monotonic()
                if more:
                    for wake in self._wake.values():
                        wake.set()
            except Exception as exc:  # a locked or full disk: said, and tried again
                said.failed(exc)
            else:
                said.worked()
            await _wait([stop], POLL_SECONDS)

    def _settle_strays(self) -> None:
        """Deliveries no channel loop will ever read: those of a channel an earlier version
        named otherwise are its channel's (the old name, which may hold a secret such as an
        ntfy topic, leaves the database); those of a channel taken out of the configuration
        are given up saying why: never pending for good, unseen."""
        configured = {c.name for c in self.channels}
        for name in sorted(self.outbox.channels() - configured):
            heir = successor(name, self.channels)
            if heir is not None:
                moved = self.outbox.hand_over(name, heir)
                log.info("notifications: %d pending under the name an earlier version gave %s "
                         "handed to it", moved, heir, extra={"notify_channel": heir})
            given_up = self.outbox.give_up(name, NOT_CONFIGURED)
            if given_up:
                log.warning("notifications: %d pending for %s given up: %s", given_up,
                            public_name(name), NOT_CONFIGURED,
                            extra={"notify_channel": public_name(name)})

    def _retry_at_start(self) -> bool:
        """This process's start tries at once what waits out a backoff (up to an hour): the
        operator may have mended a channel (its URL, its token file) and restarted to see it
        work. A channel that still fails stops at its first delivery and backs off again, as
        far as that delivery's attempts say. True: some were waiting."""
        waiting = self.outbox.due_now([c.name for c in self.channels], time.time())
        if waiting:
            log.info("notifications: %d pending deliveries tried now, not after their backoff",
                     waiting, extra={"event": "notify_retry_at_start"})
        return waiting > 0

    async def _channel_loop(self, channel: Channel, stop: asyncio.Event) -> None:
        wake = self._wake[channel.name]
        said = RefusalLog(log, f"notifications: deliveries to {channel.name}",
                          channel=channel.name)
        while not stop.is_set():
            wake.clear()
            more = False
            if time.monotonic() >= self._paused_until.get(channel.name, 0.0):
                try:
                    more = await self._drain(channel)
                except Exception as exc:  # the database: said, and tried again
                    said.failed(exc)
                else:
                    said.worked()
            paused = self._paused_until.get(channel.name, 0.0) - time.monotonic()
            if more:
                continue
            if paused > 0:
                await _wait([stop], min(paused, POLL_SECONDS))
            else:
                await _wait([stop, wake], POLL_SECONDS)

    async def _drain(self, channel: Channel) -> bool:
        """Send what is due for one channel, oldest first; stop at the first failure of the
        channel. A message the far end refuses (:class:`MessageRefused`) stops nothing: it
        waits a backoff of its own while those behind it go, and is given up at once when one
        after it is accepted. True: a full batch went out and more may be due."""
        if (sent := self._unrecorded.get(channel.name)) is not None:
            # read as due again, it was sent each pass for as long as the disk was full
            await asyncio.to_thread(self.outbox.delivered, sent, channel.name)
            del self._unrecorded[channel.name]
            log.info("notification %d delivered to %s (recorded now that the store takes it)",
                     sent, channel.name,
                     extra={"notification": sent, "notify_channel": channel.name})
        due = await asyncio.to_thread(self.outbox.due, channel.name, time.time(), BATCH)
        refused: list[tuple[Delivery, str]] = []
        #: failed on their last attempt: the channel's failure or theirs (a message its
        #: server cannot take answers 500 every time), told by the next one's fate
        spent: list[tuple[Delivery, str]] = []
        stopped = False
        for delivery in due:
            message = Message(delivery.title, delivery.body, delivery.priority)
            try:
                await channel.send(message)
            except MessageRefused as exc:
                refused.append((delivery, str(exc)))
                continue
            except ChannelUnready as exc:
                self._unready(channel)
                await asyncio.to_thread(self.outbox.waiting_on, channel.name, str(exc))
                stopped = True
                break
            except Exception as exc:
                # a failure of the channel, or its own bug (whose text may hold the URL)
                why = str(exc) if isinstance(exc, DeliveryError) else \
                    f"unexpected {type(exc).__name__} in {channel.name}"
                if spent:
                    # the one after a spent one failed too: the channel's failure, which
                    # spends nothing of this one, and it keeps its place behind the other
                    stopped = True
                    break
                if delivery.attempts + 1 >= self.settings.notify.max_attempts:
                    spent.append((delivery, why))
                    continue  # the next one tells whose failure it was
                await asyncio.to_thread(self._failed, channel, delivery, why)
                stopped = True
                break
            self._unrecorded[channel.name] = delivery.message_id
            await asyncio.to_thread(self.outbox.delivered, delivery.message_id, channel.name)
            del self._unrecorded[channel.name]
            log.info("notification %d delivered to %s", delivery.message_id, channel.name,
                     extra={"notification": delivery.message_id, "notify_channel": channel.name})
            # the channel works: what it refused, or failed on to the last attempt, before
            # this one it will not take
            for earlier, why in (*refused, *spent):
                await asyncio.to_thread(self._given_up, channel, earlier, why)
            refused.clear()
            spent.clear()
        # nothing after them went: a refusal of every message (a proxy's) is not known from
        # one message's, so they are retried, each on its own, as far as max_attempts
        for delivery, why in refused:
            await asyncio.to_thread(self._failed, channel, delivery, why, pause=False)
        # nor after these: the channel is down (or nothing came after one it cannot take),
        # and a message given up for a long outage was lost while those after it went
        for delivery, why in spent:
            await asyncio.to_thread(self._failed, channel, delivery, why, give_up=False)
        return not stopped and not spent and len(due) == BATCH

    def _unready(self, channel: Channel) -> None:
        """No attempt is counted: the deliveries would be given up after ``max_attempts``
        while the file is broken (or an earlier send still runs), and a mended file finds
        nothing left to send. The channel said why once; it is looked at again each first
        backoff, a local file read or a look at a thread."""
        self._paused_until[channel.name] = (time.monotonic() +
                                            self.settings.notify.retry_backoff_seconds)

    def _failed(self, channel: Channel, delivery: Delivery, error: str,
                pause: bool = True, give_up: bool = True) -> None:
        """One failed attempt, the delivery due again after its backoff; ``pause``: the
        channel's too (it failed, not the message); ``give_up``: at ``max_attempts`` it is
        given up, else it waits on (the channel failed the messages after it as well)."""
        attempts = delivery.attempts + 1
        delay = backoff(self.settings.notify.retry_backoff_seconds, attempts)
        retry_at = time.time() + delay
        if pause:
            self._paused_until[channel.name] = time.monotonic() + delay
        extra = {"notification": delivery.message_id, "notify_channel": channel.name,
                 "attempts": attempts}
        if attempts >= self.settings.notify.max_attempts and not give_up:
            # due again as the channel's pause ends: the first of its queue, before the one
            # that failed after it
            self.outbox.attempt_failed(delivery.message_id, channel.name, error, time.time())
            log.warning("notification %d to %s failed (attempt %d), channel paused %.1f s; "
                        "kept: the channel takes none after it either: %s",
                        delivery.message_id, channel.name, attempts, delay, error, extra=extra)
            return
        if attempts >= self.settings.notify.max_attempts:
            self.outbox.attempt_failed(delivery.message_id, channel.name, error, None)
            log.error("notification %d to %s given up after %d attempts: %s",
                      delivery.message_id, channel.name, attempts, error, extra=extra)
            return
        self.outbox.attempt_failed(delivery.message_id, channel.name, error, retry_at)
        log.warning("notification %d to %s failed (attempt %d), %s %.1f s: %s",
                    delivery.message_id, channel.name, attempts,
                    "channel paused" if pause else "the others go on, it waits", delay, error,
                    extra=extra)

    def _given_up(self, channel: Channel, delivery: Delivery, error: str) -> None:
        """A message the channel refused (or failed on to its last attempt) while it took a
        later one: no retry would change it (its body, its length), so it is not tried for
        hours."""
        self.outbox.attempt_failed(delivery.message_id, channel.name, error, None)
        log.error("notification %d to %s given up: it failed while later ones were accepted: "
                  "%s", delivery.message_id, channel.name, error,
                  extra={"notification": delivery.message_id, "notify_channel": channel.name,
                         "attempts": delivery.attempts + 1})

    async def tell(self, kind: str, title: str, body: str,
                   priority: int = PRIORITIES["high"]) -> None:
        """A message of the daemon's own to every channel, through the outbox: delivered and
        retried as any other, said by `notify status`."""
        names = [c.name for c in self.channels]
        if names:
            await asyncio.to_thread(self.outbox.queue_message, kind, title, body, priority,
                                    names)
            for wake in self._wake.values():
                wake.set()

    # -- `notify TITLE MESSAGE` -----------------------------------------------------------------
    async def send_now(self, message: Message) -> dict[str, str | None]:
        """Through every channel at once; {channel: None if accepted, else why not}. Recorded
        in the outbox (for `notify status`), never retried: the caller sees the outcome."""
        results = await self.send_around(message)
        await asyncio.to_thread(self.outbox.record_sent, "manual", message.title,
                                message.body, message.priority, results)
        return results

    async def queue_after(self, sent: Message, results: dict[str, str | None],
                          queued: Message, channels: list[str], at: float) -> None:
        """``sent`` (by :meth:`send_around` at ``at``, with its ``results``) recorded, and
        ``queued`` left to the channels' loops, in one transaction: the store may refuse
        both, never keep one alone."""
        await asyncio.to_thread(
            self.outbox.record_sent_then_queue,
            ("store_refused", sent.title, sent.body, sent.priority), results,
            ("store_back", queued.title, queued.body, queued.priority), channels, at)
        for wake in self._wake.values():
            wake.set()

    async def send_around(self, message: Message) -> dict[str, str | None]:
        """Through every channel at once, around the outbox, recording nothing: what the
        daemon says when the state database refuses it, so the outbox cannot hold it.
        {channel: None if accepted, else why not}."""
        return await send_around(self.channels, message)


async def send_around(channels: Sequence[Channel], message: Message) -> dict[str, str | None]:
    """``message`` through every channel at once, recording nothing (no outbox: the state
    database refuses, or does not open). {channel: None if accepted, else why not}."""
    async def one(channel: Channel) -> str | None:
        try:
            await channel.send(message)
        except DeliveryError as exc:
            return str(exc)
        except Exception as exc:  # a channel's own bug: its text may hold the URL
            return f"unexpected {type(exc).__name__} in {channel.name}"
        return None

    outcomes = await asyncio.gather(*(one(c) for c in channels))
    return {c.name: why for c, why in zip(channels, outcomes, strict=True)}
