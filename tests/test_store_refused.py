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
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='incidents'"
                           ).fetchone()
    (size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with path.open("r+b") as file:
        file.seek((root - 1) * size)
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
        "stop ai-sysadmin's services, then put a backup of it in its place, or move it and "
        "its -wal and -shm files aside to begin with a new, empty one "
        f"(`sqlite3 {state_db} .recover` saves what it still holds)\n")
