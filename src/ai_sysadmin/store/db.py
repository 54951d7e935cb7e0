"""The SQLite database: WAL mode, foreign keys, numbered migrations applied on open."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..errors import StoreError
from .migrations import MIGRATIONS


class Database:
    """One connection per thread of use; writes go through :meth:`transaction`."""

    def __init__(self, path: Path | str, migrations: Sequence[str] = MIGRATIONS,
                 what: str = "state database") -> None:
        """``migrations``/``what``: another file's own schema (the LLM queue's) and its name in
        messages."""
        self.path = Path(path)
        self.what = what
        self._migrations = migrations
        self._local = threading.local()
        #: this process's writers take turns here, not in SQLite's busy handler, which sleeps
        #: 1 to 100 ms between tries (a sweep's fifty checks would wait on each other's
        #: sleeps); other processes still meet the busy handler
        self._writing = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the {what} {self.path}: {exc}") from exc

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: all or nothing, and writers queue instead of failing."""
        conn = self.conn
        if conn.in_transaction:
            yield conn
            return
        with self._writing:
            conn.execute("BEGIN IMMEDIATE")
            self._local.after = []
            try:
                yield conn
            except BaseException:
                self._local.after = None
                conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except BaseException:
                # a COMMIT that failed (a busy or failing disk) leaves the transaction open:
                # later ones on this thread would nest in it and never commit
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
            finally:
                after, self._local.after = self._local.after, None
            for said in after if not conn.in_transaction else ():
                said()

    def after_commit(self, said: Callable[[], None]) -> None:
        """``said()`` once what this thread writes now is committed, at once outside a
        transaction, never if it is rolled back: a log line must not tell of a change that
        did not happen (a command cut short by Ctrl-C)."""
        pending = getattr(self._local, "after", None)
        if pending is None or not self.conn.in_transaction:
            said()
        else:
            pending.append(said)

    def _migrate(self) -> None:
        schema = "schema" if self.what == "state database" else f"{self.what} schema"
        with self.transaction() as conn:
            migrate(conn, self._migrations, f"{self.path} has {schema} version")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def connect(path: Path, *, any_thread: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode with rows by name; a file it creates is not world-readable.

    ``any_thread``: the caller serialises use with its own lock.
    """
    new = not path.exists()
    conn = sqlite3.connect(path, timeout=30, isolation_level=None,
                           check_same_thread=not any_thread)
    if new:
        os.chmod(path, 0o640)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def migrate(conn: sqlite3.Connection, migrations: Sequence[str], what: str) -> None:
    """Apply the numbered migrations the file lacks, inside the caller's transaction.

    A file from a newer program is refused untouched: ``what`` starts the message
    (``"/var/lib/x.db has schema version"``).
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise StoreError(f"{what} {version}, newer than this program ({len(migrations)}): "
                         "upgrade ai-sysadmin")
    for number, script in enumerate(migrations[version:], start=version + 1):
        for statement in _statements(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")


def _statements(script: str) -> Iterator[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer.strip()
            buffer = ""
    if buffer.strip():
        yield buffer.strip()
