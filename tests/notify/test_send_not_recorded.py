"""`notify TITLE MESSAGE` says what each channel did with the message, and exits by that,
whatever the state database does with its record: a full disk or one that will not open is a
note on stderr, and a lock held on it delays the record, not what is said. A cron script that
retries on an error sent the message twice."""

from __future__ import annotations

import os
import selectors
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ai_sysadmin.store import Database, IncidentStore
from tests.conftest import BIN
from tests.notify.conftest import TOKEN, secret_file
from tests.notify.servers import GotifyServer
from tests.support.needs_root import needs_root
from tests.test_store_refused import _HOLD, FULL, READ_ONLY


def _env(gotify: GotifyServer, tmp_path: Path, state: Path) -> dict[str, str]:
    return {**os.environ, "AI_SYSADMIN_AI_NAME": "hal", "AI_SYSADMIN_STATE_DIR": str(state),
            "AI_SYSADMIN_GOTIFY_URL": gotify.url,
            "AI_SYSADMIN_GOTIFY_TOKEN_FILE": str(secret_file(tmp_path / "gotify.token",
                                                             TOKEN + "\n"))}


def _line_while_running(process: subprocess.Popen[str], timeout: float) -> str:
    """The first line the process prints, read while it still runs (None: it did not print
    one within ``timeout``)."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if selector.select(0.05):
                return process.stdout.readline()
    raise AssertionError(f"nothing printed while it ran (exit status {process.poll()})")


def test_a_held_lock_delays_the_record_not_the_outcome(tmp_path: Path,
                                                       gotify: GotifyServer) -> None:
    state = tmp_path / "state"
    store = IncidentStore(Database(state / "state.db"))
    holder = sqlite3.connect(state / "state.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # a backup, a sqlite3 shell: held for a while
    try:
        process = subprocess.Popen([str(BIN), "notify", "backup failed", "x"], text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=_env(gotify, tmp_path, state))
        try:
            # said while the record waits on the lock (30 s at most)
            assert _line_while_running(process, 20) == "gotify: accepted\n"
        finally:
            holder.execute("ROLLBACK")
        _, err = process.communicate(timeout=60)
    finally:
        holder.close()
    assert (process.returncode, err) == (0, "")
    assert gotify.titles() == ["[hal] backup failed"]
    # recorded once the lock was let go
    (told,) = store.db.conn.execute("SELECT title FROM notify_messages").fetchall()
    assert told[0] == "[hal] backup failed"


@pytest.mark.parametrize(("script", "refused"), [
    (FULL, "the state database {db} cannot be written: the disk is full (database or disk "
           "is full); nothing of this change was stored"),
    (READ_ONLY, "cannot open the state database {db}: the file, its directory or its file "
                "system is read-only to this user (uid 0) (unable to open database file)"),
], ids=["full-disk", "read-only"])
def test_a_store_that_refuses_the_record_is_a_note(tmp_path: Path, gotify: GotifyServer,
                                                   script: str, refused: str) -> None:
    needs_root("a mount of its own")
    kept = tmp_path / "kept"
    IncidentStore(Database(kept / "state.db")).db.close()
    (tmp_path / "disk").mkdir()
    state = tmp_path / "disk" / "state"
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
         str(state), str(kept), str(BIN), "notify", "disk full", "x"],
        capture_output=True, text=True, timeout=120,
        env={**_env(gotify, tmp_path, state), "HOLD": _HOLD, "PYTHON": sys.executable})
    assert (done.returncode, done.stdout) == (0, "gotify: accepted\n"), done.stderr
    assert done.stderr == ("note: the outcome above is not recorded for `notify status`: "
                           + refused.format(db=state / "state.db") + "\n")
    assert gotify.titles() == ["[hal] disk full"]
