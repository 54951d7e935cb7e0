"""Checks into the store: many in one transaction, one hop to a worker thread for them all.

A fleet's replies land together (the hosts answer within milliseconds of each other), and a
check's writes take ~30 µs of SQLite. A hop to a thread for each of them cost several times
that: the waking, and the GIL passed back and forth with the event loop, which is parsing the
next reply. So the checks that arrive while one batch is written are written together, next,
each in a savepoint of its own: one that fails is rolled back alone and its caller gets the
error; the others are committed. One check alone is written at once, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from ..store import IncidentStore

T = TypeVar("T")

_SAVEPOINT = "check_recorded"


class CheckRecorder(Generic[T]):
    """Runs write functions against one store, batched as described above."""

    def __init__(self, store: IncidentStore) -> None:
        self.store = store
        self._pending: list[tuple[Callable[[], T], asyncio.Future[T]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def record(self, write: Callable[[], T]) -> T:
        """``write()`` in a worker thread, inside a transaction shared with other checks."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        self._pending.append((write, done))
        if self._draining is None or self._draining.done():
            self._draining = loop.create_task(self._drain(), name="record-checks")
        return await done

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await asyncio.to_thread(self._write, [w for w, _ in batch])
            except BaseException as exc:  # the transaction itself failed: every check did
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc if isinstance(exc, Exception)
                                           else asyncio.CancelledError())
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, done), result in zip(batch, results, strict=True):
                if done.done():
                    continue  # its caller was cancelled; the check is stored all the same
                if isinstance(result, Exception):
                    done.set_exception(result)
                else:
                    done.set_result(result)

    def _write(self, writes: list[Callable[[], T]]) -> list[T | Exception]:
        results: list[T | Exception] = []
        with self.store.db.transaction() as conn:
            if len(writes) == 1:  # its transaction is its own: no savepoint needed
                return [writes[0]()]
            for write in writes:
                conn.execute(f"SAVEPOINT {_SAVEPOINT}")
                try:
                    results.append(write())
                except Exception as exc:
                    if not conn.in_transaction:
                        # SQLite rolled the whole transaction back (a full disk when a big
                        # batch spilled its cache): the savepoint went with it, and ROLLBACK
                        # TO would fail as "no such savepoint", hiding why; every check of
                        # the batch failed with it
                        raise
                    conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
                    results.append(exc)
                conn.execute(f"RELEASE {_SAVEPOINT}")
        return results
