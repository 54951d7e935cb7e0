"""What the machine refuses the state database, in a loop that meets it again each pass.

A read-only file system, a full disk or a failing one lasts until a person mends it, and the
daemon's loops (notifications every second, checks, housekeeping) meet it at every pass. A
traceback a pass said nothing new and, with the logs on the same disk, became a flood of
"Logging error" on stderr. So it is said once, at warning, in the store's one line, and
once more when the loop works again; a bug of ours keeps its traceback every time.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any

from ..errors import StoreRefused
from .db import refusal, refusal_words


def refused(exc: BaseException) -> str | None:
    """The one line of what the machine refused the store; None for anything else (a bug, a
    constraint, an action decided meanwhile)."""
    if isinstance(exc, StoreRefused):
        return str(exc)
    # a read outside a transaction meets it as SQLite's own error
    if isinstance(exc, sqlite3.Error) and (why := refusal(exc)) is not None:
        return f"the state database cannot be read: {why}"
    return None


def refused_why(exc: BaseException) -> str | None:
    """What the machine refused the store, in a few words ("the disk is full"); None where
    it is not known (a refusal said in our own words, or none)."""
    cause = exc if isinstance(exc, sqlite3.Error) else exc.__cause__
    return refusal_words(cause) if isinstance(cause, sqlite3.Error) else None


#: what a refusal's SQLite error is when it is none of the daemon's to mend, nor lasting: a
#: full disk (something else's logs grew; its WAL's shared memory file could not be made) and
#: a lock a backup holds pass once the disk has room or the backup ends
_PASSING = (sqlite3.SQLITE_FULL, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_IOERR_SHMSIZE)


def passing(exc: BaseException) -> bool:
    """Whether the machine's refusal ``exc`` passes without anything done to ai-sysadmin or
    its configuration (a full disk, a backup's lock), as opposed to a file read-only to its
    user or a damaged database, which a person must mend."""
    cause = exc if isinstance(exc, sqlite3.Error) else exc.__cause__
    code = getattr(cause, "sqlite_errorcode", None)
    return isinstance(code, int) and (code in _PASSING or code & 0xFF in _PASSING)


class RefusalLog:
    """One loop's failures: ``what`` is what the loop does ("notifications: dispatching the
    outbox")."""

    def __init__(self, log: logging.Logger, what: str, **extra: Any) -> None:
        self.log = log
        self.what = what
        self.extra = extra
        #: when the store began to refuse this loop (wall clock); None while it works
        self.since: float | None = None

    def failed(self, exc: BaseException) -> None:
        """A pass that raised ``exc``: a refusal said at its first pass only; anything else
        with its traceback."""
        why = refused(exc)
        if why is None:
            self.log.error("%s failed", self.what, exc_info=exc, extra=self.extra)
            return
        if self.since is not None:
            return
        self.since = time.time()
        self.log.warning("%s failed: %s; said again once it works", self.what, why,
                         extra={**self.extra, "event": "store_refused"})

    def worked(self) -> None:
        """A pass that worked: said when the store had refused it."""
        if self.since is None:
            return
        self.log.warning("%s works again, after %.0f s", self.what, time.time() - self.since,
                         extra={**self.extra, "event": "store_works_again"})
        self.since = None
