"""``ai-sysadmin run``: periodic checks of every host plus journal followers, until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from ..config import Settings
from ..hosts.transport import Transport
from ..monitor.follower import JournalFollower
from ..monitor.snapshot import JournalEntry
from ..store import IncidentStore
from .checker import HostChecker

log = logging.getLogger("ai_sysadmin.service")

#: a burst of journal lines becomes one check: wait this long for the rest of the burst
DEBOUNCE_SECONDS = 0.2


class Daemon:
    def __init__(
        self, settings: Settings, store: IncidentStore, transports: list[Transport]
    ) -> None:
        self.settings = settings
        self.store = store
        self.checkers = [HostChecker(t, settings, store) for t in transports]
        self.stop_event = asyncio.Event()
        self.followers: list[JournalFollower] = []

    async def _interval_loop(self, checker: HostChecker) -> None:
        while not self.stop_event.is_set():
            await self._safe_check(checker, "interval")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), self.settings.check_interval)

    async def _safe_check(self, checker: HostChecker, reason: str) -> None:
        try:
            await checker.check(reason)
        except Exception:
            log.exception("check of %s failed", checker.host, extra={"host": checker.host})

    async def _triggered_loop(self, checker: HostChecker, wake: asyncio.Event) -> None:
        while True:
            await wake.wait()
            await asyncio.sleep(DEBOUNCE_SECONDS)
            wake.clear()
            await self._safe_check(checker, "journal")

    def _follow(self, checker: HostChecker) -> list[asyncio.Task[None]]:
        wake = asyncio.Event()

        def on_trigger(entry: JournalEntry) -> None:
            wake.set()

        follower = JournalFollower(checker.transport, self.settings, on_trigger)
        self.followers.append(follower)
        return [
            asyncio.create_task(follower.run(), name=f"follow:{checker.host}"),
            asyncio.create_task(self._triggered_loop(checker, wake), name=f"wake:{checker.host}"),
        ]

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop_event.set)
        log.info(
            "%s starting: %d host(s), interval %.0f s, autonomy %s, journal follower %s",
            self.settings.ai_name, len(self.checkers), self.settings.check_interval,
            self.settings.autonomy_level, "on" if self.settings.journal_follow else "off",
        )
        tasks: list[asyncio.Task[None]] = []
        for checker in self.checkers:
            if self.settings.journal_follow:
                tasks += self._follow(checker)
            tasks.append(asyncio.create_task(self._interval_loop(checker)))
        try:
            await self.stop_event.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for checker in self.checkers:
                await checker.transport.close()
            log.info("%s stopped cleanly", self.settings.ai_name)
