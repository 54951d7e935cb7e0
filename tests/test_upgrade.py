"""Upgrading and going back: a newer program migrates the state on disk, and a rollback (one
command on NixOS) brings the older program back to it. The newer program here is this one
with one migration more, as the next release will be."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ai_sysadmin import __version__
from ai_sysadmin.errors import StoreError, StoreInUse
from ai_sysadmin.store import ActionStore, Database, IncidentStore
from ai_sysadmin.store.migrations import MIGRATIONS
from ai_sysadmin.store.sharing import opened_elsewhere
from tests.test_store import unit_failed

NEWER = (*MIGRATIONS, "CREATE TABLE later_things (id INTEGER PRIMARY KEY);")


def _upgraded(path: Path) -> int:
    """A state database of this version with one incident, then opened by the next release,
    which records one incident more; returns the first incident's id."""
    store = IncidentStore(Database(path))
    (kept,) = store.record_check("web1", [unit_failed()], {"failed_unit"}).opened
    store.db.close()
    later = IncidentStore(Database(path, NEWER))
    later.record_check("web2", [unit_failed("web2")], {"failed_unit"})
    later.db.close()
    return kept


def _schema(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def test_a_rolled_back_program_names_both_versions_and_the_copy_it_can_go_back_to(
        tmp_path: Path) -> None:
    """The older program refuses the upgraded file untouched, naming the versions and the
    copy the upgrade kept; done as it says, the older program runs on the state it left."""
    path = tmp_path / "state.db"
    kept = _upgraded(path)
    copy = tmp_path / f"state.db.schema-{len(MIGRATIONS)}"
    before = path.read_bytes()

    with pytest.raises(StoreError) as refused:
        Database(path)
    said = str(refused.value)
    assert f"has schema version {len(NEWER)} (a later build of ai-sysadmin {__version__} " \
        "upgraded it on " in said
    assert f"newer than this program's {len(MIGRATIONS)} (ai-sysadmin {__version__})" in said
    assert "upgrade ai-sysadmin again" in said and f"then move {copy} to {path}" in said
    assert path.read_bytes() == before and _schema(path) == len(NEWER)

    # what it says: the newer file aside, the copy in its place
    shutil.move(path, tmp_path / "newer.db")
    shutil.move(copy, path)
    store = IncidentStore(Database(path))
    assert [(i.id, i.host) for i in store.incidents()] == [(kept, "web1")]
    # the newer state is all there, for an upgrade again
    assert {i.host for i in IncidentStore(Database(tmp_path / "newer.db", NEWER)).incidents()} \
        == {"web1", "web2"}


def test_each_upgrade_keeps_one_copy_and_a_fresh_or_current_file_none(tmp_path: Path) -> None:
    def copies() -> list[str]:
        return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("state.db."))

    path = tmp_path / "state.db"
    Database(path).close()
    Database(path).close()
    assert copies() == []
    Database(tmp_path / "old.db", MIGRATIONS[:5]).close()
    shutil.move(tmp_path / "old.db", path)
    Database(path).close()  # 5 -> this version
    assert copies() == ["state.db.schema-5"] and _schema(tmp_path / "state.db.schema-5") == 5
    Database(path, NEWER).close()  # this version -> the next: only the newest copy is kept
    assert copies() == [f"state.db.schema-{len(MIGRATIONS)}"]


def test_rolled_back_commands_and_daemon_refuse_in_one_line(
        cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    path = tmp_path / "state" / "state.db"
    path.parent.mkdir()
    _upgraded(path)
    before = path.read_bytes()
    for command in (("run",), ("approve", "list"), ("issues", "list"), ("check",)):
        code, out, err = cli(*command)
        assert code == 2, command
        assert "Traceback" not in out + err
        [line] = err.strip().splitlines()
        assert f"newer than this program's {len(MIGRATIONS)} (ai-sysadmin {__version__})" in line
        assert f"state.db.schema-{len(MIGRATIONS)}" in line
    assert path.read_bytes() == before and _schema(path) == len(NEWER)


def _boot_time() -> float:
    with open("/proc/stat", encoding="ascii") as stat:
        return float(next(line.split()[1] for line in stat if line.startswith("btime ")))


def test_what_a_daemon_from_before_owners_still_holds_is_left_to_it_after_an_upgrade(
        cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    """`pip install` of the new version while the old daemon runs: a release that kept no
    owner (schema 5) runs a fix, and a person's approval waits for its `approve` to start it,
    when the new `approve list` migrates the file and settles what gone processes left. Those
    are not failed under the old process (a false "interrupted", escalated, investigated
    again, fixed a second time) nor handed back to a person; what it took before this boot,
    or longer ago than any fix runs, is settled as before."""
    now, boot = time.time(), _boot_time()
    path = tmp_path / "state" / "state.db"
    old = Database(path, MIGRATIONS[:5])
    taken = {"running": ("executing", None, now - 30), "starting": ("approved", "alice", now - 5),
             "before boot": ("executing", None, boot - 60),
             "long ago": ("approved", "bob", now - 7200)}
    ids = {}
    with old.transaction() as conn:  # as that release wrote them
        for what, (state, person, at) in taken.items():
            ids[what] = conn.execute(
                "INSERT INTO actions(host, kind, params, subject, risk, plan, outcome, reason, "
                "state, created_at, decided_by, decided_at, started_at) "
                "VALUES ('web1', 'restart_unit', '{\"unit\": \"nginx.service\"}', "
                "'nginx.service', 'low', '{}', 'approval', 'needs approval', ?, ?, ?, ?, ?)",
                (state, at - 60, person, at if person else None,
                 at if state == "executing" else None)).lastrowid
    old.close()

    code, _, err = cli("approve", "list")
    assert code == 0, err
    actions = ActionStore(Database(path))
    assert {what: actions.get(ids[what]).state for what in taken} == {
        "running": "executing", "starting": "approved", "before boot": "failed",
        "long ago": "pending"}


def test_a_daemon_still_running_reads_its_actions_after_the_next_release_adds_a_column(
        tmp_path: Path) -> None:
    """`pip install` of the next release while the daemon runs: the first new command
    migrates the file the daemon holds open. A column added to actions made every read of an
    action fail in the running daemon (unexpected keyword argument) until it was restarted:
    no approval, no fix, no housekeeping."""
    path = tmp_path / "state.db"
    running = Database(path)
    actions = ActionStore(running)
    waiting = actions.create(
        incident_id=None, proposal_id=None, host="web1", kind="restart_unit",
        params={"unit": "nginx.service"}, subject="nginx.service", risk="low", plan={},
        outcome="approval", reason="needs approval", state="pending", ttl_seconds=3600)
    Database(path, (*MIGRATIONS, "ALTER TABLE actions ADD COLUMN later TEXT;")).close()
    assert [a.id for a in actions.find(("pending",))] == [waiting.id]
    actions.move(waiting.id, "approved", "alice", "ok")
    claimed = actions.claim(waiting.id, "executor")
    assert claimed is not None and claimed.state == "executing"


class _OlderProgram:
    """Another process holding ``path`` open at an older schema, as the daemon of the last
    release does after `pip install` of this one, until it is restarted."""

    def __init__(self, path: Path, migrations: tuple[str, ...]) -> None:
        script = ("import sys; from ai_sysadmin.store import Database; "
                  f"db = Database({str(path)!r}, {list(migrations)!r}); "
                  "db.conn.execute('SELECT COUNT(*) FROM sqlite_master').fetchone(); "
                  "print('open', flush=True); sys.stdin.read()")
        self.process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        assert self.process.stdout.readline() == "open\n"

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def older_daemon(tmp_path: Path) -> Iterator[_OlderProgram]:
    """The state of the last release (one migration less), held open by its daemon."""
    path = tmp_path / "state" / "state.db"
    found, now = unit_failed(), time.time()
    with Database(path, MIGRATIONS[:-1]).transaction() as conn:  # as its check kept it
        conn.execute(
            "INSERT INTO incidents(fingerprint, host, rule, subject, severity, summary, state, "
            "opened_at, updated_at, last_seen) VALUES (?,?,?,?,?,?,'open',?,?,?)",
            (found.fingerprint, found.host, found.rule, found.subject, found.severity.label,
             found.summary, now, now, now))
    older = _OlderProgram(path, MIGRATIONS[:-1])
    yield older
    older.stop()


def test_a_command_of_the_new_release_leaves_the_state_an_older_daemon_holds_open(
        cli: Callable[..., tuple[int, str, str]], tmp_path: Path,
        older_daemon: _OlderProgram) -> None:
    """`pip install` while the daemon runs: the first new command upgraded the file under
    the old daemon, whose next checks failed on a table the upgrade had replaced. Now the
    command says who holds it and how to go on, and changes nothing; once the old daemon is
    gone (restarted as the new one), the command works."""
    path = tmp_path / "state" / "state.db"
    before = path.read_bytes()
    code, out, err = cli("issues", "list")
    assert code == 2 and "Traceback" not in out + err
    [line] = err.strip().splitlines()
    assert f"schema version {len(MIGRATIONS) - 1}, older than this program's " \
        f"{len(MIGRATIONS)}" in line
    assert f"another process has it open (pid {older_daemon.process.pid}, " in line
    assert "nothing was changed" in line and "systemctl restart " in line
    assert "-ai.service " in line and "-llm-worker.service" in line
    assert _schema(path) == len(MIGRATIONS) - 1 and path.read_bytes() == before
    assert not list(path.parent.glob("state.db.schema-*"))  # not even its copy

    older_daemon.stop()
    code, out, err = cli("issues", "list")
    assert code == 0, err
    assert "web1" in out and _schema(path) == len(MIGRATIONS)


def test_the_services_upgrade_at_their_start_whoever_holds_the_file(
        tmp_path: Path, older_daemon: _OlderProgram, caplog: pytest.LogCaptureFixture) -> None:
    """The daemon and the worker are what upgrades the file (their restart is the way on the
    command's refusal names), so another holder, an older worker not yet restarted, does not
    stop them; the log names it."""
    path = tmp_path / "state" / "state.db"
    with pytest.raises(StoreInUse):
        Database(path)
    with caplog.at_level("WARNING", "ai_sysadmin.service"):
        store = IncidentStore(Database(path, service=True))
    assert f"another process has it open (pid {older_daemon.process.pid}" in caplog.text
    assert _schema(path) == len(MIGRATIONS)
    assert [i.host for i in store.incidents()] == ["web1"]


def test_a_file_opened_again_by_this_process_is_no_other_holder(tmp_path: Path) -> None:
    """This process's own connections (a daemon's second Database on its file) never count,
    and asking leaves them their locks: a connection opened before still reads and writes."""
    path = tmp_path / "state.db"
    own = Database(path, MIGRATIONS[:-1])
    own.conn.execute("SELECT 1").fetchone()
    assert opened_elsewhere(path) is None
    Database(path).close()
    assert _schema(path) == len(MIGRATIONS)
    other = _OlderProgram(path, MIGRATIONS)
    try:
        assert opened_elsewhere(path) == other.process.pid
    finally:
        other.stop()
    assert opened_elsewhere(path) is None


def test_a_queue_file_an_older_worker_holds_is_left_to_it_by_a_conversation(
        tmp_path: Path) -> None:
    """`ask` beside an older worker leaves its queue file as it is; the worker's and the
    daemon's own queue (``service``) upgrades it."""
    from ai_sysadmin.llm.queue import QueueError
    from ai_sysadmin.llm.queue.sqlite import MIGRATIONS as QUEUE
    from ai_sysadmin.llm.queue.sqlite import SqliteQueue

    path = tmp_path / "queue.db"
    Database(path, QUEUE[:-1], "queue").close()
    worker = _OlderProgram(path, QUEUE[:-1])
    try:
        with pytest.raises(QueueError, match="another process has it open"):
            SqliteQueue(path)
        assert _schema(path) == len(QUEUE) - 1
        SqliteQueue(path, service=True).close()
        assert _schema(path) == len(QUEUE)
    finally:
        worker.stop()


#: the state migrations shipped before migrations only added (11 replaced a table)
_ADDING_FROM = 12


@pytest.mark.parametrize("what", ["state", "queue"])
def test_a_migration_only_adds_so_a_process_of_the_release_before_keeps_working(
        what: str) -> None:
    """An older process may still run on the file a newer one upgraded (an `approve`
    verifying its fix while the services restart): a table or column it uses must still be
    there, of the shape it knows."""
    from ai_sysadmin.llm.queue.sqlite import MIGRATIONS as QUEUE

    migrations = MIGRATIONS[_ADDING_FROM - 1:] if what == "state" else QUEUE
    for script in migrations:
        words = script.upper().split()
        assert "DROP" not in words and "RENAME" not in words, script


def test_a_process_of_schema_8_to_10_still_finds_the_table_migration_11_replaced(
        tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Database(path, MIGRATIONS[:10]).close()
    Database(path).close()
    conn = sqlite3.connect(path)
    try:  # as those releases wrote and read it
        conn.execute("INSERT OR REPLACE INTO restart_rises(host, unit, rose_after) "
                     "VALUES ('web1', 'nginx.service', 1.0)")
        assert conn.execute("SELECT unit, rose_after FROM restart_rises WHERE host = 'web1'"
                            ).fetchall() == [("nginx.service", 1.0)]
    finally:
        conn.close()


def test_a_holder_is_seen_after_the_file_was_closed_and_opened_again(tmp_path: Path) -> None:
    """The last connection to close removes the -shm file and the next makes another: a
    process that had asked of the first asked it again, and saw no holder of the second."""
    path = tmp_path / "state.db"
    Database(path).close()
    for _ in range(2):
        holder = _OlderProgram(path, MIGRATIONS)
        try:
            assert opened_elsewhere(path) == holder.process.pid
        finally:
            holder.stop()
