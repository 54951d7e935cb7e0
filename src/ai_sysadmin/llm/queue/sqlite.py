"""The durable queue of one machine: its own SQLite file (WAL), apart from the state database so
that queue traffic never blocks incident writes.

A worker claims the first pending request (priority, then arrival) in one ``BEGIN IMMEDIATE``
transaction (:meth:`Database.transaction`), which also returns expired leases to pending; while
the handler runs it renews its lease. A lease is timed on this boot's monotonic clock (with the
boot it is of), which every process of the machine shares and no setting of the wall clock
moves: a clock stepped forward (a VM resumed, NTP at boot) takes no request from the worker
answering it, one set back keeps none for a dead worker until the clock catches up, and a lease
from an earlier boot is over (its worker went with it). The attempt number is the fencing
token: renewing, completing and releasing all say ``WHERE id=? AND worker=? AND attempts=? AND
state='in_flight'``, so a worker that lost its lease can neither renew it nor store its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import StoreError, StoreRefused
from ...store.actions import boot_id
from ...store.db import Database
from ..types import Priority
from .base import (
    FAILED_SHOWN,
    FINAL_STATES,
    MAX_ATTEMPTS,
    RETENTION_SECONDS,
    STATS_WINDOW_SECONDS,
    QueueError,
    QueueStats,
    Request,
    Submitted,
    effective_state,
    empty_pending,
    exhausted_error,
    not_found,
)
from .leases import WORKER_SILENCE_SECONDS, Claim, LeasedQueue, Notice

#: how long opening the queue waits for another process's write lock before it leaves its
#: clean-up to a later write
TIDY_WAIT = 1.0
#: how often an idle worker looks whether another process committed to the queue file
NOTICE_POLL = 0.02

log = logging.getLogger("ai_sysadmin.service")

#: numbered, never edited once shipped: add the next one
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE requests (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        priority INTEGER NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL
            CHECK (state IN ('pending', 'in_flight', 'done', 'failed', 'cancelled')),
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        worker TEXT,
        lease_until REAL,
        coalesce_key TEXT,
        result TEXT,
        error TEXT
    );
    CREATE INDEX requests_next ON requests (state, priority, seq);
    CREATE INDEX requests_finished ON requests (finished_at);
    CREATE UNIQUE INDEX requests_coalesce ON requests (coalesce_key)
        WHERE coalesce_key IS NOT NULL AND state IN ('pending', 'in_flight');
    """,
    # 2: serving workers announce themselves, so a lone client knows to serve its own request
    """
    CREATE TABLE workers (
        name TEXT PRIMARY KEY,
        seen_at REAL NOT NULL
    );
    """,
    # 3: whether another caller joined a request (coalesced): its submitter may not abandon it
    """
    ALTER TABLE requests ADD COLUMN joined INTEGER NOT NULL DEFAULT 0;
    """,
    # 4: leases and announcements on the boot's monotonic clock too (see the module docstring)
    """
    ALTER TABLE requests ADD COLUMN lease_boot TEXT;
    ALTER TABLE requests ADD COLUMN lease_mono REAL;
    ALTER TABLE workers ADD COLUMN seen_boot TEXT;
    ALTER TABLE workers ADD COLUMN seen_mono REAL;
    """,
    # 5: what a worker says of itself (the LLM it serves, whether that answers)
    """
    ALTER TABLE workers ADD COLUMN says TEXT NOT NULL DEFAULT '';
    """,
    # 6: the pid of the asker's process where the lease is a private worker's (which runs
    # in it), else 0; an earlier version wrote 1 for any private lease, and pid 1 never ends
    """
    ALTER TABLE requests ADD COLUMN private_lease INTEGER NOT NULL DEFAULT 0;
    """,
)

_COLUMNS = (
    "id, kind, priority, payload, state, created_at, started_at, finished_at, attempts, worker, "
    "lease_until, coalesce_key, result, error, lease_boot, lease_mono"
)


@dataclass(frozen=True)
class _Now:
    """One moment on both clocks: the wall clock's for what a person reads (and for leases
    an earlier version wrote), this boot's monotonic one for leases."""

    wall: float
    mono: float
    boot: str

    @classmethod
    def read(cls) -> _Now:
        return cls(time.time(), time.monotonic(), boot_id())

    def expired(self) -> tuple[str, tuple[Any, ...]]:
        """The SQL that says an in-flight request's lease is over, with its parameters."""
        return ("((lease_boot IS NOT NULL AND (lease_boot != ? OR lease_mono < ?)) "
                "OR (lease_boot IS NULL AND lease_until < ?))", (self.boot, self.mono, self.wall))

    def lease(self, seconds: float) -> tuple[float, str, float]:
        """``lease_until``, ``lease_boot``, ``lease_mono`` of a lease of ``seconds`` from now."""
        return self.wall + seconds, self.boot, self.mono + seconds

    def live(self) -> tuple[str, float, float]:
        """The parameters of :data:`_LIVE`."""
        return (self.boot, self.mono - WORKER_SILENCE_SECONDS,
                self.wall - WORKER_SILENCE_SECONDS)

    def left(self, row: sqlite3.Row) -> float | None:
        """Seconds left of the row's lease (less than 0: over); None where it has none."""
        if row["lease_boot"] is None:
            return None if row["lease_until"] is None else row["lease_until"] - self.wall
        return row["lease_mono"] - self.mono if row["lease_boot"] == self.boot else -1.0


#: a worker heard from within WORKER_SILENCE_SECONDS (:meth:`_Now.live` its parameters)
_LIVE = "((seen_boot = ? AND seen_mono > ?) OR (seen_boot IS NULL AND seen_at > ?))"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this boot still exists (a pid reused since counts as
    alive: the request is then requeued, as for any expired lease)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's: it exists
    return True


class SqliteQueue(LeasedQueue):
    def __init__(
        self,
        path: Path | str,
        *,
        lease_seconds: float = 60.0,
        max_attempts: int = MAX_ATTEMPTS,
        idle_poll: float = 0.5,
        service: bool = False,
    ) -> None:
        """``service``: the daemon's or the worker's queue (:class:`Database`)."""
        self.path = Path(path)
        self.description = f"sqlite://{self.path}"
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.idle_poll = idle_poll
        try:
            # the store's connections and transactions, with the queue's own migrations
            self.db = Database(self.path, MIGRATIONS, "queue", service=service, durable=False)
        except StoreError as exc:
            raise QueueError(str(exc)) from exc
        self._pruned_at = 0.0
        self._tidy()

    def _tidy(self) -> None:
        """Prune at opening, left to a later write (``complete``) where another process holds
        the file's write lock more than a moment (a backup, a sqlite3 shell, a stopped
        process) or the file is read-only to this user: `queue`, and each `ask` or `chat`
        turn, waited the busy timeout (30 s) for it and then failed, where the reads alone
        would have done."""
        try:
            with self.db.waiting_at_most(TIDY_WAIT), self._tx("clean up") as conn:
                self._prune(conn)
        except QueueError as exc:
            if not isinstance(exc.__cause__, StoreRefused):
                raise
            self._pruned_at = 0.0
            log.debug("the queue's clean-up at opening skipped: %s", exc)

    #: how often finished requests past their retention are deleted, besides at opening: a
    #: daemon holds its queue open for months, and each request keeps its whole conversation
    prune_every_seconds = 3600.0

    def _prune(self, conn: sqlite3.Connection) -> None:
        now = time.monotonic()
        if self._pruned_at and now - self._pruned_at < self.prune_every_seconds:
            return
        self._pruned_at = now
        # finished more than a retention ahead of now: on a clock since set back, which would
        # keep it (and its whole conversation) until the clock caught up, a year maybe
        wall = time.time()
        conn.execute("DELETE FROM requests WHERE finished_at < ? OR finished_at > ?",
                     (wall - RETENTION_SECONDS, wall + RETENTION_SECONDS))

    @contextlib.contextmanager
    def _tx(self, doing: str) -> Iterator[sqlite3.Connection]:
        """One write transaction; a database error becomes a QueueError saying what failed."""
        try:
            with self.db.transaction() as conn:
                yield conn
        except sqlite3.Error as exc:
            raise QueueError(f"cannot {doing} in the queue {self.path}: {exc}") from exc
        except StoreError as exc:  # what the machine refused, said with its file already
            raise QueueError(f"cannot {doing}: {exc}") from exc

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            return self.db.conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise QueueError(f"cannot read the queue {self.path}: {exc}") from exc

    def close(self) -> None:
        self.db.close()

    @contextlib.asynccontextmanager
    async def _notices(self) -> AsyncIterator[Notice | None]:
        """Another process's commit (a new request) wakes an idle worker within
        :data:`NOTICE_POLL` instead of its next ``idle_poll``: ``PRAGMA data_version`` of one
        connection of its own changes when another connection commits, and reading it costs
        a few microseconds."""
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False)
        except sqlite3.Error:
            yield None
            return

        def version() -> int:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

        async def notice() -> object:
            try:
                seen = version()
                deadline = time.monotonic() + self.idle_poll
                while time.monotonic() < deadline:
                    await asyncio.sleep(NOTICE_POLL)
                    if version() != seen:
                        return True
            except sqlite3.Error:
                await asyncio.sleep(self.idle_poll)  # the next claim says what is wrong
            return None

        try:
            yield notice
        finally:
            conn.close()

    # -- callers ----------------------------------------------------------------------------

    def _add(self, kind: str, body: str, priority: Priority, key: str | None,
             request_id: str) -> Submitted:
        now = _Now.read()
        with self._tx("add a request") as conn:
            if key is not None:
                self._requeue_expired(conn, now)
                row = conn.execute(
                    "SELECT id FROM requests WHERE coalesce_key = ? "
                    "AND state IN ('pending', 'in_flight')",
                    (key,),
                ).fetchone()
                if row is not None:
                    conn.execute("UPDATE requests SET joined = 1 WHERE id = ?", (row["id"],))
                    return Submitted(row["id"], coalesced=True)
            conn.execute(
                "INSERT INTO requests (id, kind, priority, payload, state, created_at, "
                "coalesce_key) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                (request_id, kind, int(priority), body, now.wall, key),
            )
        return Submitted(request_id, coalesced=False)

    def get(self, request_id: str) -> Request:
        rows = self._read(f"SELECT {_COLUMNS} FROM requests WHERE id = ?", (request_id,))
        if not rows:
            raise not_found(request_id)
        return self._request(rows[0], _Now.read())

    def _finished(self, request_id: str) -> bool:
        # polled by wait(), by each investigation waiting for a worker: the state alone, not
        # the conversation in the payload (250 waiters decoding theirs took half a core)
        rows = self._read("SELECT state FROM requests WHERE id = ?", (request_id,))
        return not rows or rows[0][0] in FINAL_STATES

    def cancel(self, request_id: str) -> bool:
        return self._cancel(request_id, "cancel a request")

    def abandon(self, request_id: str) -> bool:
        return self._cancel(request_id, "abandon a request", unjoined=True)

    def _cancel(self, request_id: str, doing: str, unjoined: bool = False) -> bool:
        """Cancel a pending request; ``unjoined`` (its only caller stopped waiting): also one
        a worker is answering, whose lease then ends (no answer is stored, and a worker
        stopped meanwhile gives nothing back to answer later, for nobody)."""
        now = _Now.read()
        states = "('pending', 'in_flight') AND joined = 0" if unjoined else "('pending')"
        with self._tx(doing) as conn:
            self._requeue_expired(conn, now)
            done = conn.execute(
                "UPDATE requests SET state = 'cancelled', finished_at = ?, worker = NULL, "
                f"lease_until = NULL, lease_boot = NULL WHERE id = ? AND state IN {states}",
                (now.wall, request_id),
            ).rowcount
        self._wake()
        return bool(done)

    def pending_keyed(self, coalesce_key: str) -> list[str]:
        # a stored key is the caller's, '#', the content's digest (content_key)
        rows = self._read("SELECT id, coalesce_key FROM requests WHERE state = 'pending' "
                          "AND coalesce_key IS NOT NULL ORDER BY seq")
        return [row["id"] for row in rows
                if row["coalesce_key"].rpartition("#")[0] == coalesce_key]

    def requests_ahead(self, request: Request) -> int | None:
        expired, over = _Now.read().expired()
        rows = self._read(
            "SELECT COUNT(*) FROM requests AS r, (SELECT seq FROM requests WHERE id = ?) AS me "
            f"WHERE (r.state = 'pending' OR (r.state = 'in_flight' AND {expired})) "
            "AND (r.priority < ? OR (r.priority = ? AND r.seq < me.seq))",
            (request.id, *over, int(request.priority), int(request.priority)),
        )
        return int(rows[0][0]) if rows else None

    def stats(self) -> QueueStats:
        clock = _Now.read()
        now = clock.wall
        pending = empty_pending()
        in_flight: list[Request] = []
        oldest: float | None = None
        for row in self._read(
            f"SELECT {_COLUMNS} FROM requests WHERE state IN ('pending', 'in_flight') "
            "ORDER BY priority, seq"
        ):
            request = self._request(row, clock)
            if request.state == "pending":
                pending[request.priority.name.lower()] += 1
                # submitted before the clock was set back: it has waited, not for less than 0 s
                age = max(0.0, now - request.created_at)
                oldest = age if oldest is None else max(oldest, age)
            elif request.state == "in_flight":
                in_flight.append(request)
        row = self._read(
            "SELECT SUM(state = 'done'), SUM(state = 'failed'), "
            "AVG(CASE WHEN started_at IS NOT NULL THEN MAX(0, started_at - created_at) END) "
            "FROM requests WHERE finished_at >= ? AND state IN ('done', 'failed')",
            (now - STATS_WINDOW_SECONDS,),
        )[0]
        failed = [self._request(r, clock) for r in self._read(
            f"SELECT {_COLUMNS} FROM requests WHERE state = 'failed' AND finished_at >= ? "
            "ORDER BY finished_at DESC LIMIT ?", (now - STATS_WINDOW_SECONDS, FAILED_SHOWN))]
        return QueueStats(
            backend=self.description,
            pending=pending,
            in_flight=len(in_flight),
            oldest_pending_age=oldest,
            mean_wait_last_hour=row[2],
            done_last_hour=int(row[0] or 0),
            failed_last_hour=int(row[1] or 0),
            in_flight_requests=in_flight,
            failed_requests=failed,
        )

    # -- workers: the fenced steps ----------------------------------------------------------

    def claim(self, worker: str, only: Sequence[str] | None = None,
              most: Priority | None = None) -> Claim | None:
        now = _Now.read()
        expired, over = now.expired()
        # the ids as one JSON parameter: no limit on how many a conversation submitted
        among, ids = ("", ()) if only is None else (
            " AND id IN (SELECT value FROM json_each(?))", (json.dumps(list(only)),))
        if most is not None:
            among, ids = f"{among} AND priority <= ?", (*ids, int(most))
        if not self._read(
            "SELECT 1 FROM requests WHERE (state = 'pending' "
            f"OR (state = 'in_flight' AND {expired})){among} LIMIT 1",
            (*over, *ids),
        ):
            return None  # nothing to do: no write transaction
        with self._tx("claim a request") as conn:
            self._requeue_expired(conn, now)
            row = conn.execute(
                "UPDATE requests SET state = 'in_flight', worker = ?, lease_until = ?, "
                "lease_boot = ?, lease_mono = ?, started_at = ?, attempts = attempts + 1, "
                "private_lease = ? "
                f"WHERE id = (SELECT id FROM requests WHERE state = 'pending'{among} "
                "ORDER BY priority, seq LIMIT 1) "
                f"RETURNING {_COLUMNS}",
                (worker, *now.lease(self.lease_seconds), now.wall,
                 0 if only is None else os.getpid(), *ids),
            ).fetchone()
        if row is None:
            return None
        request = self._request(row, now)
        return Claim(request, worker, request.attempts)

    def renew(self, claim: Claim) -> bool:
        with self._tx("renew a lease") as conn:
            return bool(
                conn.execute(
                    "UPDATE requests SET lease_until = ?, lease_boot = ?, lease_mono = ? "
                    "WHERE id = ? AND worker = ? AND attempts = ? AND state = 'in_flight'",
                    (*_Now.read().lease(self.lease_seconds), claim.request.id, claim.worker,
                     claim.attempt),
                ).rowcount
            )

    def complete(
        self, claim: Claim, result: dict[str, Any] | None = None, error: str | None = None
    ) -> bool:
        state = "failed" if error is not None else "done"
        body = None if result is None else json.dumps(result)
        with self._tx("store an answer") as conn:
            stored = conn.execute(
                "UPDATE requests SET state = ?, result = ?, error = ?, finished_at = ?, "
                "lease_until = NULL, lease_boot = NULL WHERE id = ? AND worker = ? "
                "AND attempts = ? AND state = 'in_flight'",
                (state, body, error, time.time(), claim.request.id, claim.worker, claim.attempt),
            ).rowcount
            self._prune(conn)
        self._wake()
        return bool(stored)

    def release(self, claim: Claim) -> bool:
        with self._tx("give a request back") as conn:
            released = conn.execute(
                "UPDATE requests SET state = 'pending', worker = NULL, lease_until = NULL, "
                "lease_boot = NULL, attempts = attempts - 1 WHERE id = ? AND worker = ? "
                "AND attempts = ? "
                "AND state = 'in_flight'",
                (claim.request.id, claim.worker, claim.attempt),
            ).rowcount
        self._wake()
        return bool(released)

    def _requeue_expired(self, conn: sqlite3.Connection, now: _Now) -> None:
        expired, over = now.expired()
        for row in conn.execute(
            "SELECT id, attempts, worker, private_lease, lease_boot, joined FROM requests "
            f"WHERE state = 'in_flight' AND {expired}",
            over,
        ).fetchall():
            if (row["private_lease"] and not row["joined"] and row["lease_boot"] == now.boot
                    and not _alive(row["private_lease"])):
                # its worker ran in the asker's process, which is gone (`ask` killed): back
                # in the queue, it was answered later for nobody, ahead of the daemon's work.
                # An asker alive but stalled (Ctrl-Z, a held lock) gets it requeued instead
                log.warning("LLM request %s: lease of worker %s expired, and the process "
                            "that asked it is gone; withdrawn", row["id"], row["worker"])
                conn.execute(
                    "UPDATE requests SET state = 'cancelled', finished_at = ?, worker = NULL, "
                    "lease_until = NULL, lease_boot = NULL WHERE id = ?", (now.wall, row["id"]))
            elif row["attempts"] >= self.max_attempts:
                conn.execute(
                    "UPDATE requests SET state = 'failed', error = ?, finished_at = ?, "
                    "lease_until = NULL, lease_boot = NULL WHERE id = ?",
                    (exhausted_error(row["attempts"], row["worker"]), now.wall, row["id"]),
                )
            else:
                log.warning(
                    "LLM request %s: lease of worker %s expired; back to pending",
                    row["id"], row["worker"],
                )
                conn.execute(
                    "UPDATE requests SET state = 'pending', worker = NULL, lease_until = NULL, "
                    "lease_boot = NULL WHERE id = ?",
                    (row["id"],),
                )

    def announce(self, worker: str, serving: bool, says: str = "") -> None:
        with self._tx("announce a worker") as conn:
            if not serving:
                conn.execute("DELETE FROM workers WHERE name=?", (worker,))
            else:
                now = _Now.read()
                conn.execute("INSERT INTO workers(name, seen_at, seen_boot, seen_mono, says) "
                             "VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                             "seen_at=excluded.seen_at, seen_boot=excluded.seen_boot, "
                             "seen_mono=excluded.seen_mono, says=excluded.says",
                             (worker, now.wall, now.boot, now.mono, says))

    def live_workers(self) -> int:
        """Workers heard from lately, on this boot's monotonic clock: a clock set back a year
        made a daemon that died announce itself for that year, and a conversation waited for
        it instead of answering its own requests."""
        rows = self._read("SELECT COUNT(*) FROM workers WHERE " + _LIVE, _Now.read().live())
        return int(rows[0][0])

    def workers_say(self) -> dict[str, str]:
        rows = self._read("SELECT name, says FROM workers WHERE says != '' AND " + _LIVE,
                          _Now.read().live())
        return {row["name"]: row["says"] for row in rows}

    # -- helpers ----------------------------------------------------------------------------

    def _request(self, row: sqlite3.Row, now: _Now) -> Request:
        left = now.left(row)
        # the lease's end as a time of the wall clock now, however it was set before
        lease_until = None if left is None else now.wall + left
        state = effective_state(row["state"], lease_until, now.wall)
        return Request(
            id=row["id"],
            kind=row["kind"],
            priority=Priority(row["priority"]),
            payload=json.loads(row["payload"]),
            state=state,  # type: ignore[arg-type]
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            attempts=row["attempts"],
            worker=row["worker"],
            coalesce_key=row["coalesce_key"],
            result=None if row["result"] is None else json.loads(row["result"]),
            error=row["error"],
            lease_until=lease_until if state == "in_flight" else None,
        )
