"""The SQLite database: WAL mode, foreign keys, numbered migrations applied on open."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .. import __version__
from ..errors import StoreError, StoreInUse, StoreRefused
from ..hosts.open_files import at_limit, open_files_limit
from .migrations import MIGRATIONS
from .sharing import described, opened_elsewhere

#: seconds a statement waits for another process's lock before it is refused
BUSY_TIMEOUT = 30
#: the program that migrates a file, as an older one that refuses the file names it
PROGRAM = f"ai-sysadmin {__version__}"
#: the migration runner's own table (version, program, at): which program brought the file to
#: each schema version. The runner's, not a numbered migration's, so that every file it
#: migrates has it; its shape never changes, since an older program reads it to say who
#: upgraded the file it refuses
HISTORY = "schema_history"

log = logging.getLogger("ai_sysadmin.service")


class Database:
    """One connection per thread of use; writes go through :meth:`transaction`."""

    def __init__(self, path: Path | str, migrations: Sequence[str] = MIGRATIONS,
                 what: str = "state database", *, service: bool = False,
                 durable: bool = True) -> None:
        """``migrations``/``what``: another file's own schema (the LLM queue's) and its name in
        messages. ``service``: this process is one of ai-sysadmin's services (the daemon, the
        LLM worker), which upgrade the file at their start whoever else has it open; a
        command refuses to while another process has it (:meth:`_not_under_others`).
        ``durable``: each commit on disk before it returns, through a power loss or a crash
        of the machine (``synchronous=FULL``), not only of the process (see :func:`connect`)."""
        self.path = Path(path)
        self.what = what
        self.durable = durable
        self._migrations = migrations
        self._service = service
        self._local = threading.local()
        #: this process's writers take turns here, not in SQLite's busy handler, which sleeps
        #: 1 to 100 ms between tries (a sweep's fifty checks would wait on each other's
        #: sleeps); other processes still meet the busy handler
        self._writing = threading.RLock()
        #: while migrating: a refusal is one to open the file, not to store a change
        self._opening = True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            self._migrate()
        except sqlite3.Error as exc:
            why = refusal(exc)
            raise (StoreError if why is None else StoreRefused)(
                f"cannot open the {what} {self.path}: {why or exc}{mending(exc, self.path)}"
            ) from exc
        except OSError as exc:
            raise StoreRefused(f"cannot open the {what} {self.path}: {exc}") from exc
        finally:
            self._opening = False

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = connect(self.path, durable=self.durable)
            except sqlite3.Error as exc:  # a thread's first use (a full disk's -shm file)
                if (why := refusal(exc)) is None:
                    raise
                raise StoreRefused(f"cannot open the {self.what} {self.path}: {why}") from exc
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
        with self._writing, self._refusals():
            conn.execute("BEGIN IMMEDIATE")
            self._local.after = []
            try:
                yield conn
            except BaseException:
                self._local.after = None
                # SQLite rolls back by itself on some errors (a full disk): a ROLLBACK then
                # would fail and hide the reason
                if conn.in_transaction:
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

    @contextlib.contextmanager
    def waiting_at_most(self, seconds: float) -> Iterator[None]:
        """In it, this thread waits ``seconds`` at most for another process's lock, not the
        busy timeout, before it is refused: for writes a command may leave undone (the tidy
        before a listing), which must not hold up what it shows behind a backup's lock."""
        conn = self.conn
        conn.execute(f"PRAGMA busy_timeout={int(seconds * 1000)}")
        try:
            yield
        finally:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT * 1000}")

    @contextlib.contextmanager
    def _refusals(self) -> Iterator[None]:
        """What the machine refuses (a read-only file, a full disk, a lock held past the busy
        timeout, a failing or damaged disk) is a StoreError naming the file and what to do,
        which a command says in one line: a bare sqlite3 error reached the terminal as a
        traceback, without the file. Other errors (a constraint, our SQL) stay as they are."""
        try:
            yield
        except sqlite3.Error as exc:
            if (why := refusal(exc)) is None:
                raise
            if self._opening:
                raise StoreRefused(f"cannot open the {self.what} {self.path}: {why}"
                                   f"{mending(exc, self.path)}") from exc
            raise StoreRefused(f"the {self.what} {self.path} cannot be written: {why}; "
                             f"nothing of this change was stored{mending(exc, self.path)}"
                             ) from exc

    def unreadable(self, exc: sqlite3.Error) -> str | None:
        """What the machine refused a read outside a transaction (a damaged page, a failing
        disk), which meets SQLite's own error, in the words of :meth:`_refusals`, naming the
        file; None for an error that is no refusal."""
        why = refusal(exc)
        return None if why is None else (f"the {self.what} {self.path} cannot be read: {why}"
                                         f"{mending(exc, self.path)}")

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
        # a file of this schema already is only read: opening it took the write lock, and a
        # command that only reads (`issues list`) waited out another process's write (a
        # check storing its journal) and was refused at the busy timeout. The version is
        # read again under the lock, where another process may have migrated it meanwhile
        if self.conn.execute("PRAGMA user_version").fetchone()[0] == len(self._migrations):
            return
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if 0 < version < len(self._migrations):
                self._not_under_others(schema, version)
            migrate(conn, self._migrations, f"{self.path} has {schema} version", self.path)

    def _not_under_others(self, schema: str, version: int) -> None:
        """Refuse to upgrade the file while another process has it open: after `pip install`
        the daemon and its worker still run the older program until restarted, and an
        upgraded file fails the older program's statements (a table a migration replaced),
        check after check. Their own restart upgrades it; a command cannot know what the
        other process runs, so it leaves the file as it is."""
        holder = opened_elsewhere(self.path)
        if holder is None:
            return
        if self._service:
            log.warning("%s: upgraded from %s version %d while another process has it open "
                        "(%s): restart it if it is an older ai-sysadmin", self.path, schema,
                        version, described(holder), extra={"event": "store_upgraded_in_use"})
            return
        raise StoreInUse(
            f"{self.path} has {schema} version {version}, older than this program's "
            f"{len(self._migrations)} ({PROGRAM}), and another process has it open "
            f"({described(holder)}): an older ai-sysadmin still running on it would fail on "
            f"the upgraded file, so nothing was changed. Where it is {StoreInUse.SERVICES}, "
            "restart them, whose start upgrades it; otherwise close it (a sqlite3 shell, a "
            "backup); then run this again")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def check_opens(path: Path, what: str = "state database") -> None:
    """Raise what a service's start would meet opening ``path`` (:class:`Database`): a file
    or file system read-only to this user, a damaged file. Nothing is made or changed: a
    file not there yet is judged by the directory it would be made in; one that is, by a
    write transaction begun and rolled back (a daemon must write its files). For the daemon's
    SIGHUP check of a changed config: a start that failed here exited 2, which its unit
    leaves stopped. Not its schema version: the daemon checking on SIGHUP is the old program
    after an upgrade, whose files the new one has migrated, and the start that follows is the
    new one's (refused, it kept the old code running and advised moving the state aside)."""
    if not path.exists():
        _check_makeable(path, what)
        return
    try:
        # mode=rw: never made here, even if it went away since
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=1,
                               isolation_level=None)
    except sqlite3.Error as exc:
        raise _not_opened(exc, path, what) from exc
    try:
        conn.execute("PRAGMA user_version").fetchone()  # a damaged file says so here
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY:
            return  # another process writes it now (the daemon itself): not refused
        raise _not_opened(exc, path, what) from exc
    finally:
        conn.close()


def _not_opened(exc: sqlite3.Error, path: Path, what: str) -> StoreError:
    """``exc`` said as :class:`Database` says a file it could not open."""
    why = refusal(exc)
    return (StoreError if why is None else StoreRefused)(
        f"cannot open the {what} {path}: {why or exc}{mending(exc, path)}")


def _check_makeable(path: Path, what: str) -> None:
    """Whether ``path``, not there, can be made where it is named, with the directories above
    it that are missing: the nearest one there must be a directory this user may write in."""
    there = path.parent
    while not there.exists() and there != there.parent:
        there = there.parent
    if not there.is_dir():
        code = errno.ENOTDIR
    elif os.access(there, os.W_OK | os.X_OK):
        return
    else:
        # access() says EROFS for a read-only mount (ProtectSystem=strict) as for a mode
        read_only = os.statvfs(there).f_flag & os.ST_RDONLY
        code = errno.EROFS if read_only else errno.EACCES
    raise StoreRefused(f"cannot open the {what} {path}: it cannot be made in {there} by this "
                       f"user (uid {os.geteuid()}): {os.strerror(code)}")


def connect(path: Path, *, any_thread: bool = False, durable: bool = True
            ) -> sqlite3.Connection:
    """A connection in WAL mode with rows by name; a file it creates is not world-readable.

    ``any_thread``: the caller serialises use with its own lock. ``durable``: every commit is
    synced to disk before it returns (``synchronous=FULL``). In WAL mode ``NORMAL`` keeps a
    commit through a crash of the process, not of the machine: a power loss after a fix's
    claim (its start, written before it runs) could roll the claim back, and the fix, which
    had run, was approvable and run again (a second ``nixos-rebuild switch --rollback`` goes
    one more generation back). One sync a commit: a sweep's checks are stored in one; the
    LLM queue, whose requests at worst are answered again, keeps ``NORMAL``.
    """
    new = not path.exists()
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None,
                           check_same_thread=not any_thread)
    if new:
        os.chmod(path, 0o640)
    conn.row_factory = sqlite3.Row
    _to_wal(conn)
    conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    return conn


def _to_wal(conn: sqlite3.Connection) -> None:
    """``PRAGMA journal_mode=WAL``, tried again while another connection switches the same new
    file: SQLite refuses the switch at once, without its busy handler, where two connections
    make it together (each holds the read lock the other's upgrade waits on), so the daemon and
    its LLM worker starting together on a fresh machine had one of them refused, as if the
    file were held locked for the whole busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(0.002)


_READ_ONLY = "the file, its directory or its file system is read-only to this user (uid {uid})"
#: SQLite's primary result codes of what the machine refuses, and what a person can do
_REFUSED = {
    sqlite3.SQLITE_READONLY: _READ_ONLY,
    sqlite3.SQLITE_PERM: _READ_ONLY,
    # the file (or its -wal, -shm beside it) cannot be opened for writing
    sqlite3.SQLITE_CANTOPEN: _READ_ONLY,
    sqlite3.SQLITE_FULL: "the disk is full",
    sqlite3.SQLITE_BUSY: "another process has held it locked for over {timeout} s (a "
    "backup, a sqlite3 shell?)",
    sqlite3.SQLITE_IOERR: "the disk failed a read or write",
    # WAL's shared memory file could not grow: a full disk, said as an I/O error
    sqlite3.SQLITE_IOERR_SHMSIZE: "the disk is full",
    sqlite3.SQLITE_CORRUPT: "the file is damaged",
    sqlite3.SQLITE_NOTADB: "the file is not an SQLite database",
}


#: SQLite's primary result codes of a file that is no usable database, which no retry mends
_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def mending(exc: sqlite3.Error, path: Path) -> str:
    """What a person does about the file ``path`` that ``exc`` found damaged, after a ``; ``;
    nothing for any other error (what the others need is in their words)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(code, int) or code & 0xFF not in _DAMAGED:
        return ""
    # the -wal goes too, whatever takes the name's place: SQLite replays a -wal left beside
    # it (a crash's, the usual cause of the damage) onto a backup put there, which then read
    # as damaged as well
    return (f"; stop ai-sysadmin's services, then move it and its -wal and -shm files aside "
            f"and put a backup of it in its place (or nothing, to begin with a new, empty "
            f"one); `sqlite3 {path} .recover`, run first, saves what it still holds")


def refusal(exc: sqlite3.Error) -> str | None:
    """Why the machine refused a statement, in words, with SQLite's own; None for an error
    that is no refusal (a constraint, a mistake in our SQL)."""
    said = refusal_words(exc)
    return None if said is None else f"{said} ({exc})"


def refusal_words(exc: sqlite3.Error) -> str | None:
    """:func:`refusal` without SQLite's own words: short enough for a message's title."""
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(code, int):
        return None
    if code & 0xFF == sqlite3.SQLITE_CANTOPEN and at_limit():
        # SQLite says "unable to open database file" of any open that failed: a process
        # whose open files ran out (a large fleet) was told of a read-only file it had written
        return f"this process is out of open files (limit {open_files_limit()})"
    said = _REFUSED.get(code, _REFUSED.get(code & 0xFF))
    return None if said is None else said.format(uid=os.geteuid(), timeout=BUSY_TIMEOUT)


def migrate(conn: sqlite3.Connection, migrations: Sequence[str], what: str,
            path: Path | None = None) -> None:
    """Apply the numbered migrations the file lacks, inside the caller's transaction.

    A file from a newer program is refused untouched: ``what`` starts the message
    (``"/var/lib/x.db has schema version"``). ``path``: the file, of which a copy is kept
    before a migration changes it (:func:`copy_name`), the way back for the older program.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise StoreError(_newer(conn, what, version, len(migrations), path))
    if version == len(migrations):
        return
    if path is not None and version > 0:
        _keep_copy(path, version)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {HISTORY} (version INTEGER PRIMARY KEY, "
                 "program TEXT NOT NULL, at REAL NOT NULL)")
    now = time.time()
    for number, script in enumerate(migrations[version:], start=version + 1):
        for statement in _statements(script):
            conn.execute(statement)
        conn.execute(f"INSERT OR REPLACE INTO {HISTORY} (version, program, at) VALUES (?, ?, ?)",
                     (number, PROGRAM, now))
        conn.execute(f"PRAGMA user_version = {number}")


def copy_name(path: Path, version: int) -> Path:
    """Where an upgrade keeps ``path`` as it was at schema ``version``: the way back for a
    program of that version (a NixOS rollback is one command), which names it in its refusal."""
    return path.with_name(f"{path.name}.schema-{version}")


def _keep_copy(path: Path, version: int) -> None:
    """``path`` as it is, beside it, before a migration changes it: the older program cannot
    open the migrated file, and without a copy its only way on was an empty state.

    Called inside the migration's transaction, which keeps every other writer out, and read
    by a connection of its own (SQLite's backup does not read through the one holding the
    write lock). Written under another name and renamed: a copy cut short (a full disk, a
    crash) never passes for the way back. A copy that cannot be made is logged and the
    upgrade goes on: refusing it would stop the daemon of a host whose disk is nearly full.
    Copies of older versions go: the copy now made is newer than all of them."""
    final = copy_name(path, version)
    part = final.with_name(f"{final.name}.part")
    try:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        # as private as the file it copies: the state holds the hosts' journal lines
        os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                         stat.S_IMODE(path.stat().st_mode)))
        source, target = sqlite3.connect(path), sqlite3.connect(part)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        os.replace(part, final)
    except (OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):
            part.unlink()
        log.warning("%s: no copy of schema version %d kept before its upgrade (%s): an older "
                    "ai-sysadmin cannot go back to it", path, version, exc,
                    extra={"event": "store_copy_failed"})
        return
    prefix = f"{path.name}.schema-"
    for older in path.parent.iterdir():
        # an older copy, and its -wal and -shm where a person opened it
        number = older.name.removeprefix(prefix).partition("-")[0]
        if older.name.startswith(prefix) and number.isdigit() and int(number) < version:
            with contextlib.suppress(OSError):
                older.unlink()


def _newer(conn: sqlite3.Connection, what: str, version: int, ours: int,
           path: Path | None) -> str:
    """The refusal of a file a newer program migrated: both versions, and the ways on."""
    said = f"{what} {version}{_upgraded_by(conn, version)}, newer than this program's {ours} " \
        f"({PROGRAM}), which leaves it untouched: upgrade ai-sysadmin again"
    if path is None:
        return said
    copy = copy_name(path, ours)
    if copy.is_file():
        return (f"{said}, or go back to the copy that upgrade kept (what happened since is only "
                f"in the newer file): stop every ai-sysadmin service and command, move {path} "
                f"and its -wal and -shm files aside, then move {copy} to {path}")
    return (f"{said}; no copy from before that upgrade is kept ({copy.name}), so going back "
            f"means starting afresh: move {path} and its -wal and -shm files aside (what it "
            "holds stays in them)")


def _upgraded_by(conn: sqlite3.Connection, version: int) -> str:
    """`` (ai-sysadmin 0.2.0 upgraded it on ...)`` from the file's history, or nothing where
    it does not say who made ``version`` (a runner from before the history)."""
    try:
        row = conn.execute(f"SELECT program, at FROM {HISTORY} WHERE version = ?",
                           (version,)).fetchone()
    except sqlite3.Error:  # no such table: a runner from before the history
        return ""
    if row is None:
        return ""
    when = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(row[1]))
    # a development build moves the schema on before the release number does
    who = f"a later build of {row[0]}" if row[0] == PROGRAM else row[0]
    return f" ({who} upgraded it on {when})"


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
