"""The durable queue of one machine: its own SQLite file (WAL), apart from the state database so
that queue traffic never blocks incident writes.

A worker claims the first pending request (priority, then arrival) in one ``BEGIN IMMEDIATE``
transaction, which also returns expired leases to pending; while the handler runs it renews its
lease. The attempt number is the fencing token: renewing, completing and releasing all say
``WHERE id=? AND worker=? AND attempts=? AND state='in_flight'``, so a worker that lost its lease
can neither renew it nor store its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import StoreError
from ...store.db import connect, migrate
from ..types import Priority
from .base import (
    MAX_ATTEMPTS,
    RETENTION_SECONDS,
    STATS_WINDOW_SECONDS,
    Handler,
    QueueError,
    QueueStats,
    Request,
    RequestQueue,
    Submitted,
    as_priority,
    effective_state,
    empty_pending,
    exhausted_error,
    new_request_id,
    not_found,
    run_handler,
)

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
)

#: a worker that has not announced itself for this long is gone
WORKER_SILENCE_SECONDS = 5.0

_COLUMNS = (
    "id, kind, priority, payload, state, created_at, started_at, finished_at, attempts, worker, "
    "lease_until, coalesce_key, result, error"
)


@dataclass(frozen=True)
class Claim:
    """One attempt at one request: the worker and the attempt number fence every later write."""

    request: Request
    worker: str
    attempt: int


class SqliteQueue(RequestQueue):
    def __init__(
        self,
        path: Path | str,
        *,
        lease_seconds: float = 60.0,
        max_attempts: int = MAX_ATTEMPTS,
        idle_poll: float = 0.5,
    ) -> None:
        self.path = Path(path)
        self.description = f"sqlite://{self.path}"
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.idle_poll = idle_poll
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            with self._tx() as conn:
                migrate(conn, MIGRATIONS, f"{self.path} has queue schema version")
                conn.execute(
                    "DELETE FROM requests WHERE finished_at < ?", (time.time() - RETENTION_SECONDS,)
                )
        except StoreError as exc:
            raise QueueError(str(exc)) from exc
        except (sqlite3.Error, OSError) as exc:
            raise QueueError(f"cannot open the queue database {self.path}: {exc}") from exc

    # -- connection -------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self.path, any_thread=True)
        return self._conn

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT under this object's lock (one connection, many threads)."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._connection().execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- callers ----------------------------------------------------------------------------

    def submit(
        self,
        kind: str,
        payload: Mapping[str, Any],
        priority: Priority | str | int,
        coalesce_key: str | None = None,
    ) -> Submitted:
        prio = as_priority(priority)
        body = json.dumps(dict(payload))
        now = time.time()
        try:
            with self._tx() as conn:
                if coalesce_key is not None:
                    self._requeue_expired(conn, now)
                    row = conn.execute(
                        "SELECT id FROM requests WHERE coalesce_key = ? "
                        "AND state IN ('pending', 'in_flight')",
                        (coalesce_key,),
                    ).fetchone()
                    if row is not None:
                        return Submitted(row["id"], coalesced=True)
                request_id = new_request_id()
                conn.execute(
                    "INSERT INTO requests (id, kind, priority, payload, state, created_at, "
                    "coalesce_key) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                    (request_id, kind, int(prio), body, now, coalesce_key),
                )
        except sqlite3.Error as exc:
            raise QueueError(f"cannot add a request to {self.path}: {exc}") from exc
        self._wake()
        return Submitted(request_id, coalesced=False)

    def get(self, request_id: str) -> Request:
        rows = self._read(f"SELECT {_COLUMNS} FROM requests WHERE id = ?", (request_id,))
        if not rows:
            raise not_found(request_id)
        return self._request(rows[0], time.time())

    def cancel(self, request_id: str) -> bool:
        now = time.time()
        with self._tx() as conn:
            self._requeue_expired(conn, now)
            done = conn.execute(
                "UPDATE requests SET state = 'cancelled', finished_at = ?, worker = NULL, "
                "lease_until = NULL WHERE id = ? AND state = 'pending'",
                (now, request_id),
            ).rowcount
        self._wake()
        return bool(done)

    def requests_ahead(self, request: Request) -> int | None:
        now = time.time()
        rows = self._read(
            "SELECT COUNT(*) FROM requests AS r, (SELECT seq FROM requests WHERE id = ?) AS me "
            "WHERE (r.state = 'pending' OR (r.state = 'in_flight' AND r.lease_until < ?)) "
            "AND (r.priority < ? OR (r.priority = ? AND r.seq < me.seq))",
            (request.id, now, int(request.priority), int(request.priority)),
        )
        return int(rows[0][0]) if rows else None

    def stats(self) -> QueueStats:
        now = time.time()
        pending = empty_pending()
        in_flight: list[Request] = []
        oldest: float | None = None
        for row in self._read(
            f"SELECT {_COLUMNS} FROM requests WHERE state IN ('pending', 'in_flight') "
            "ORDER BY priority, seq"
        ):
            request = self._request(row, now)
            if request.state == "pending":
                pending[request.priority.name.lower()] += 1
                age = now - request.created_at
                oldest = age if oldest is None else max(oldest, age)
            elif request.state == "in_flight":
                in_flight.append(request)
        row = self._read(
            "SELECT SUM(state = 'done'), SUM(state = 'failed'), "
            "AVG(CASE WHEN started_at IS NOT NULL THEN started_at - created_at END) "
            "FROM requests WHERE finished_at >= ? AND state IN ('done', 'failed')",
            (now - STATS_WINDOW_SECONDS,),
        )[0]
        return QueueStats(
            backend=self.description,
            pending=pending,
            in_flight=len(in_flight),
            oldest_pending_age=oldest,
            mean_wait_last_hour=row[2],
            done_last_hour=int(row[0] or 0),
            failed_last_hour=int(row[1] or 0),
            in_flight_requests=in_flight,
        )

    # -- workers: the fenced steps serve() is made of -------------------------------------

    def claim(self, worker: str) -> Claim | None:
        """Take the first pending request (priority, then arrival) and lease it to ``worker``."""
        now = time.time()
        if not self._read(
            "SELECT 1 FROM requests WHERE state = 'pending' "
            "OR (state = 'in_flight' AND lease_until < ?) LIMIT 1",
            (now,),
        ):
            return None  # nothing to do: no write transaction
        with self._tx() as conn:
            self._requeue_expired(conn, now)
            row = conn.execute(
                "UPDATE requests SET state = 'in_flight', worker = ?, lease_until = ?, "
                "started_at = ?, attempts = attempts + 1 "
                "WHERE id = (SELECT id FROM requests WHERE state = 'pending' "
                "ORDER BY priority, seq LIMIT 1) "
                f"RETURNING {_COLUMNS}",
                (worker, now + self.lease_seconds, now),
            ).fetchone()
        if row is None:
            return None
        request = self._request(row, now)
        return Claim(request, worker, request.attempts)

    def renew(self, claim: Claim) -> bool:
        """Extend the lease; False when the worker lost it (the request is someone else's)."""
        with self._tx() as conn:
            return bool(
                conn.execute(
                    "UPDATE requests SET lease_until = ? WHERE id = ? AND worker = ? "
                    "AND attempts = ? AND state = 'in_flight'",
                    (time.time() + self.lease_seconds, claim.request.id, claim.worker,
                     claim.attempt),
                ).rowcount
            )

    def complete(
        self, claim: Claim, result: dict[str, Any] | None = None, error: str | None = None
    ) -> bool:
        """Store the answer (or the error) if this claim still holds the request; else refuse it
        (False): the request is answered once, by the current lease holder."""
        state = "failed" if error is not None else "done"
        body = None if result is None else json.dumps(result)
        with self._tx() as conn:
            stored = conn.execute(
                "UPDATE requests SET state = ?, result = ?, error = ?, finished_at = ?, "
                "lease_until = NULL WHERE id = ? AND worker = ? AND attempts = ? "
                "AND state = 'in_flight'",
                (state, body, error, time.time(), claim.request.id, claim.worker, claim.attempt),
            ).rowcount
        self._wake()
        return bool(stored)

    def release(self, claim: Claim) -> bool:
        """Give a claimed request back unanswered (worker shutting down); not counted as an
        attempt."""
        with self._tx() as conn:
            released = conn.execute(
                "UPDATE requests SET state = 'pending', worker = NULL, lease_until = NULL, "
                "attempts = attempts - 1 WHERE id = ? AND worker = ? AND attempts = ? "
                "AND state = 'in_flight'",
                (claim.request.id, claim.worker, claim.attempt),
            ).rowcount
        self._wake()
        return bool(released)

    def _requeue_expired(self, conn: sqlite3.Connection, now: float) -> None:
        for row in conn.execute(
            "SELECT id, attempts, worker FROM requests WHERE state = 'in_flight' "
            "AND lease_until < ?",
            (now,),
        ).fetchall():
            if row["attempts"] >= self.max_attempts:
                conn.execute(
                    "UPDATE requests SET state = 'failed', error = ?, finished_at = ?, "
                    "lease_until = NULL WHERE id = ?",
                    (exhausted_error(row["attempts"], row["worker"]), now, row["id"]),
                )
            else:
                log.warning(
                    "LLM request %s: lease of worker %s expired; back to pending",
                    row["id"], row["worker"],
                )
                conn.execute(
                    "UPDATE requests SET state = 'pending', worker = NULL, lease_until = NULL "
                    "WHERE id = ?",
                    (row["id"],),
                )

    async def serve(
        self,
        handler: Handler,
        *,
        concurrency: int = 1,
        worker_name: str,
        stop: asyncio.Event,
    ) -> None:
        if concurrency < 1:
            raise QueueError(f"concurrency must be at least 1, not {concurrency}")
        running: set[asyncio.Task[None]] = set()
        wake = asyncio.Event()
        waker = (asyncio.get_running_loop(), wake)
        self._register(waker)
        stop_task = asyncio.create_task(stop.wait())
        announced = 0.0
        try:
            while not stop.is_set():
                wake.clear()
                if time.time() - announced > WORKER_SILENCE_SECONDS / 5:
                    announced = time.time()
                    await asyncio.to_thread(self._announce, worker_name, announced)
                while len(running) < concurrency and not stop.is_set():
                    claim = await asyncio.to_thread(self.claim, worker_name)
                    if claim is None:
                        break
                    running.add(asyncio.create_task(self._answer(handler, claim)))
                wake_task = asyncio.create_task(wake.wait())
                done, _ = await asyncio.wait(
                    {stop_task, wake_task, *running},
                    timeout=self.idle_poll,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                wake_task.cancel()
                running -= {t for t in done if t in running}
            if running:
                await asyncio.wait(running)
        finally:
            self._unregister(waker)
            await asyncio.to_thread(self._announce, worker_name, None)
            stop_task.cancel()
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    def _announce(self, worker: str, now: float | None) -> None:
        with self._tx() as conn:
            if now is None:
                conn.execute("DELETE FROM workers WHERE name=?", (worker,))
            else:
                conn.execute("INSERT INTO workers(name, seen_at) VALUES (?, ?) ON CONFLICT(name) "
                             "DO UPDATE SET seen_at=excluded.seen_at", (worker, now))

    def live_workers(self) -> int:
        with self._tx() as conn:
            row = conn.execute("SELECT COUNT(*) FROM workers WHERE seen_at>?",
                               (time.time() - WORKER_SILENCE_SECONDS,)).fetchone()
        return int(row[0])

    async def _answer(self, handler: Handler, claim: Claim) -> None:
        request = claim.request
        work = asyncio.create_task(run_handler(handler, request))
        lost = False
        try:
            while True:
                done, _ = await asyncio.wait({work}, timeout=self.lease_seconds / 3)
                if done:
                    break
                if not await asyncio.to_thread(self.renew, claim):
                    lost = True
                    work.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await work
                    break
        except asyncio.CancelledError:
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            await asyncio.to_thread(self.release, claim)
            raise
        if lost:
            log.warning("LLM request %s: lease lost by %s; its answer is not stored",
                        request.id, claim.worker)
            return
        result, error = work.result()
        if not await asyncio.to_thread(self.complete, claim, result, error):
            log.warning("LLM request %s: lease lost by %s; its late answer was refused",
                        request.id, claim.worker)

    # -- helpers ----------------------------------------------------------------------------

    def _request(self, row: sqlite3.Row, now: float) -> Request:
        state = effective_state(row["state"], row["lease_until"], now)
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
            lease_until=row["lease_until"] if state == "in_flight" else None,
        )

