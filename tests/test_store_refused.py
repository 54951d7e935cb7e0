"""A state database the machine will not let a command write (a read-only file system, a
full disk) is one line naming the file and why, exit 2, no traceback; what was stored stays
as it was."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ai_sysadmin.store import Database, IncidentStore
from tests.conftest import BIN, run_program
from tests.support.needs_root import needs_root
from tests.test_store import unit_failed

#: holds the database open, its -shm file made, as a running daemon does, until the command
#: is over (at most a minute)
_HOLD = """
import pathlib, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1])
conn.execute("SELECT count(*) FROM incidents").fetchone()
disk = pathlib.Path(sys.argv[2])
(disk / "held").touch()
deadline = time.monotonic() + 60
while not (disk / "done").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
"""

#: $1 where the command finds its state directory, $2 the directory the test keeps, then the
#: command: each script mounts there what the machine refuses, in a mount namespace of its own
READ_ONLY = ('state=$1 kept=$2; shift 2; mkdir -p "$state" && mount --bind "$kept" "$state" '
             '&& mount -o remount,ro,bind "$state" && exec "$@"')
# the command's write is what meets the full disk; what the command left is copied back
FULL = ('state=$1 kept=$2; shift 2; disk=${state%/*}; mount -t tmpfs -o size=4m tmpfs "$disk" '
        '&& cp -a "$kept" "$state" || exit 9; '
        '"$PYTHON" -c "$HOLD" "$state/state.db" "$disk" & holder=$!; '
        'while [ ! -e "$disk/held" ] && kill -0 $holder; do sleep 0.05; done; '
        'head -c 8M /dev/zero > "$disk/filler" 2>/dev/null; '
        '"$@"; rc=$?; rm "$disk/filler"; touch "$disk/done"; wait $holder; '
        'cp "$state"/state.db* "$kept/"; exit $rc')


@pytest.fixture
def kept(tmp_path: Path) -> Path:
    """A state directory with one open incident (id 1)."""
    needs_root("a mount of its own")
    kept = tmp_path / "kept"
    store = IncidentStore(Database(kept / "state.db"))
    assert store.record_check("web1", [unit_failed()], {"failed_unit"}).opened == [1]
    store.db.close()
    (tmp_path / "disk").mkdir()
    return kept


def _resolve(script: str, kept: Path) -> subprocess.CompletedProcess[str]:
    state = kept.parent / "disk" / "state"
    env = {**os.environ, "AI_SYSADMIN_STATE_DIR": str(state), "HOLD": _HOLD,
           "PYTHON": sys.executable}
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
         str(state), str(kept), str(BIN), "issues", "resolve", "1", "--reason", "by hand"],
        capture_output=True, text=True, timeout=120, env=env)


def test_a_read_only_state_directory_is_one_line_and_nothing_changes(kept: Path) -> None:
    done = _resolve(READ_ONLY, kept)
    state_db = kept.parent / "disk" / "state" / "state.db"
    assert (done.returncode, done.stderr) == (
        2, f"error: cannot open the state database {state_db}: the file, its directory or "
        "its file system is read-only to this user (uid 0) (unable to open database file)\n")
    assert IncidentStore(Database(kept / "state.db")).get(1).state == "open"


def test_a_full_disk_during_a_write_is_one_line_and_nothing_changes(kept: Path) -> None:
    done = _resolve(FULL, kept)
    state_db = kept.parent / "disk" / "state" / "state.db"
    assert (done.returncode, done.stderr) == (
        2, f"error: the state database {state_db} cannot be written: the disk is full "
        "(database or disk is full); nothing of this change was stored\n")
    assert IncidentStore(Database(kept / "state.db")).get(1).state == "open"


def _damage_incidents(path: Path) -> None:
    """Overwrite the head of the incidents table's root page, as a failing disk or a crash
    of a machine without write barriers leaves it; the file's schema still reads."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    at = _incidents_root(conn)
    conn.close()
    _overwrite(path, at)


def _incidents_root(conn: sqlite3.Connection) -> int:
    """Where in the file the incidents table's root page starts."""
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='incidents'"
                           ).fetchone()
    (size,) = conn.execute("PRAGMA page_size").fetchone()
    return int((root - 1) * size)


def _overwrite(path: Path, at: int) -> None:
    with path.open("r+b") as file:
        file.seek(at)
        file.write(b"\xff" * 200)


@pytest.mark.parametrize("command", [("issues", "list"), ("issues", "show", "1"),
                                     ("issues", "resolve", "1", "--reason", "by hand")])
def test_a_damaged_state_database_is_one_line_naming_it_and_what_to_do(
        tmp_path: Path, command: tuple[str, ...]) -> None:
    """A read of a damaged page met SQLite's own error: `issues list` and `issues show`
    ended in a traceback ("database disk image is malformed"), without the file."""
    state_db = tmp_path / "state" / "state.db"
    store = IncidentStore(Database(state_db))
    assert store.record_check("web1", [unit_failed()], {"failed_unit"}).opened == [1]
    store.db.close()
    _damage_incidents(state_db)
    done = run_program(str(BIN), *command)
    assert (done.returncode, done.stdout) == (2, "")
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"error: the state database {state_db} cannot be ")
    assert ": the file is damaged (database disk image is malformed)" in done.stderr
    assert done.stderr.endswith(
        "stop ai-sysadmin's services, then move it and its -wal and -shm files aside and put "
        "a backup of it in its place (or nothing, to begin with a new, empty one); "
        f"`sqlite3 {state_db} .recover`, run first, saves what it still holds\n")


#: a daemon storing checks when the machine crashed (killed, nothing closed): its -wal stays
#: beside the file, with what it wrote since its last checkpoint (over 4 MiB: past one);
#: web2 has no incident, so its checks touch none
_CRASHED_WRITER = """
import os, sys, time
from pathlib import Path
from ai_sysadmin.monitor.snapshot import JournalEntry
from ai_sysadmin.store import Database, IncidentStore
store = IncidentStore(Database(Path(sys.argv[1])))
for n in range(60):
    journal = [JournalEntry(cursor=f"{n}-{j}", timestamp=time.time(), priority=4,
                            message=f"line {j} " + "x" * 200, unit="app.service")
               for j in range(200)]
    store.record_check("web2", [], {"failed_unit"}, journal=journal, journal_cursor=f"{n}")
os._exit(0)
"""


def test_following_the_damaged_files_advice_brings_its_backup_back(tmp_path: Path) -> None:
    """Damaged after a crash, the file has its -wal beside it: the advice said to put a backup
    in its place, and SQLite replayed that -wal onto the backup, which then read as damaged
    too. It says to move the -wal and -shm aside with it; done so, the backup reads."""
    state_db = tmp_path / "state" / "state.db"
    store = IncidentStore(Database(state_db))
    assert store.record_check("web1", [unit_failed()], {"failed_unit"}).opened == [1]
    at = _incidents_root(store.db.conn)
    store.db.close()
    backup = tmp_path / "backup.db"
    backup.write_bytes(state_db.read_bytes())
    crashed = subprocess.run([sys.executable, "-c", _CRASHED_WRITER, str(state_db)],
                             capture_output=True, text=True, timeout=60)
    assert crashed.returncode == 0, crashed.stderr
    wal = Path(f"{state_db}-wal")
    assert wal.stat().st_size > 0
    _overwrite(state_db, at)  # no SQLite here: its close would take the -wal in
    # what a command says of it, read from a copy: the last connection to close a file
    # writes its -wal into it and removes it, which a crash did not leave to happen
    seen = tmp_path / "seen"
    seen.mkdir()
    for suffix in ("", "-wal"):
        (seen / f"state.db{suffix}").write_bytes(Path(f"{state_db}{suffix}").read_bytes())
    done = run_program(str(BIN), "issues", "list", env={"AI_SYSADMIN_STATE_DIR": str(seen)})
    assert done.returncode == 2 and "the file is damaged" in done.stderr, done.stderr
    assert "move it and its -wal and -shm files aside and put a backup" in done.stderr
    aside = tmp_path / "aside"
    aside.mkdir()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state_db}{suffix}").rename(aside / f"state.db{suffix}")
    state_db.write_bytes(backup.read_bytes())
    listed = run_program(str(BIN), "issues", "list")
    assert listed.returncode == 0, listed.stderr
    assert "nginx.service" in listed.stdout, listed.stdout
    # whole, not only its incidents: the crash's -wal, past a checkpoint of its own, holds
    # pages of a later file than the backup (replayed onto it, dozens read damaged)
    conn = sqlite3.connect(state_db)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
