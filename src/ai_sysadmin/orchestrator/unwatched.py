"""A check that fails for a reason of ai-sysadmin's own leaves its host watched by nobody.

A failure the host causes is a finding (``host_unreachable``) or a section's error the check
stores. Anything else a check raises is ai-sysadmin's (a parser that meets what nobody
expected, a store that fails): nothing of that check is stored, so its host would keep
showing its last good check for as long as the bug lasts. The store keeps that its checks
fail, since when and why (``systems`` shows it); a person is told, high priority, once the
checks have failed for a whole ``check_interval`` with none that worked between (the next
interval check failed too: not one passing failure), and told again, low, when one works.
What is said of a host is kept in the outbox, so a restart in the middle says it no second
time, and the next daemon says when it is over.

A check the machine refused the store (a full disk, a lock a backup held past the busy
timeout) is no bug: its error is the store's one line, and the log says it once while it
lasts. It counts as a failing check all the same: nothing the daemon finds of the host is
kept or told meanwhile, so the host is not watched. That record is tried too, though the
store that refused the check often refuses it (then the log is all there is); a lock that
was let go, or a small write the disk still takes, keeps it and tells a person. Where it
refuses that too, a person is told around the store (:mod:`.store_down`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from ..config import Settings
from ..monitor.findings import quote
from ..store import IncidentStore
from ..store.outbox import checks_of
from ..store.refused import RefusalLog, refused, refused_why
from .store_down import StoreDown

log = logging.getLogger("ai_sysadmin.service")

#: an exception's text in the host's last error and in a message: one line, this long at most
ERROR_LIMIT = 240


def failure_line(exc: BaseException) -> str:
    """What a person reads of a check that raised: one bounded line (an exception's text may
    quote a host's), and where the rest is. A store the machine refused (a full disk, a
    backup's lock) is no bug: its own line says what to mend."""
    if (why := refused(exc)) is not None:
        return f"the check could not be stored: {quote(why, ERROR_LIMIT)}"
    what = quote(f"{type(exc).__name__}: {exc}", ERROR_LIMIT)
    return f"the check failed: {what} (a bug in ai-sysadmin; the daemon's log has the traceback)"


@dataclass
class _Host:
    #: when the first of the checks that failed in a row did, on this process's clock
    failing_from: float | None = None
    #: whether a person is to be told the checks work again (their failing is the last said
    #: of them); None: not known since the start, the store may hold one from before
    told: bool | None = None


class CheckFailures:
    """What the daemon's checks of each host that raised mean to a person."""

    def __init__(self, settings: Settings, store: IncidentStore,
                 store_down: StoreDown | None = None) -> None:
        self.settings = settings
        self.store = store
        #: told around the store when it refuses the checks (their records and messages)
        self.store_down = store_down
        self._hosts: dict[str, _Host] = {}
        #: each host's checks the store refused, said once while it refuses
        self._said: dict[str, RefusalLog] = {}

    def forget(self, host: str) -> None:
        """A removed host: nothing of its checks is kept (a daemon runs for months)."""
        self._hosts.pop(host, None)
        self._said.pop(host, None)

    def _log(self, host: str) -> RefusalLog:
        if host not in self._said:
            self._said[host] = RefusalLog(log, f"check of {host}", host=host)
        return self._said[host]

    async def failed(self, host: str, exc: BaseException,
                     registered: float | None = None) -> None:
        """A check of ``host`` raised ``exc``: logged with its traceback, or, what the store
        refused, once while it refuses. ``registered``: the host's registration the check
        began for; a host added again since does not fail for it."""
        self._log(host).failed(exc)
        state = self._hosts.setdefault(host, _Host())
        now = time.monotonic()
        if state.failing_from is None:
            state.failing_from = now
        line = failure_line(exc)
        if self.store_down is not None and (why := refused(exc)) is not None:
            await self.store_down.refused(why, refused_why(exc))
        try:
            since = await asyncio.to_thread(self.store.record_check_failed, host, line,
                                            registered)
        except Exception as kept:  # the store is what fails: the log is all there is
            if refused(kept) is None:
                log.warning("the failed check of %s is not kept (%s)", host,
                            quote(f"{type(kept).__name__}: {kept}", ERROR_LIMIT),
                            extra={"host": host, "event": "check_failed_not_kept"})
            else:  # the check's own outcome could not be stored either: said once
                self._log(host).failed(kept)
            return
        if since is None or state.told or now - state.failing_from < self.settings.check_interval:
            return  # removed meanwhile, said already, or maybe one passing failure
        facts = {"host": host, "since": since, "error": line,
                 "unit": self.settings.own_units[0]}
        try:
            await asyncio.to_thread(self.store.tell_down, facts, checks_of(host))
        except Exception as not_told:  # the next failure tries again
            log.warning("the failing checks of %s are not told (%s)", host,
                        quote(f"{type(not_told).__name__}: {not_told}", ERROR_LIMIT),
                        extra={"host": host, "event": "check_failing_not_told"})
            return
        state.told = True
        log.warning("the checks of %s have failed for %.0f s: a person is told", host,
                    now - state.failing_from,
                    extra={"host": host, "event": "check_failing", "since": since})

    async def worked(self, host: str) -> None:
        """A check of ``host`` worked (its outcome is stored): a person told its checks fail
        is told they work again, after a restart too."""
        self._log(host).worked()
        if self.store_down is not None:
            await self.store_down.worked()
        state = self._hosts.setdefault(host, _Host())
        state.failing_from = None
        if state.told is False:
            return  # the usual case: nothing said, nothing to ask the store
        try:
            back = await asyncio.to_thread(self.store.tell_back, {"host": host},
                                           checks_of(host))
        except Exception as not_told:  # tried again with the next check that works
            log.warning("the checks of %s work again, not told (%s)", host,
                        quote(f"{type(not_told).__name__}: {not_told}", ERROR_LIMIT),
                        extra={"host": host, "event": "check_back_not_told"})
            return
        state.told = False
        if back:
            log.info("the checks of %s work again: a person is told", host,
                     extra={"host": host, "event": "check_back"})
