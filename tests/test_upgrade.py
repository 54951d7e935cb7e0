"""Upgrading and going back: a newer program migrates the state on disk, and a rollback (one
command on NixOS) brings the older program back to it. The newer program here is this one
with one migration more, as the next release will be."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_sysadmin import __version__
from ai_sysadmin.errors import StoreError
from ai_sysadmin.store import ActionStore, Database, IncidentStore
from ai_sysadmin.store.migrations import MIGRATIONS
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
    assert f"has schema version {len(NEWER)} (ai-sysadmin {__version__} upgraded it on " in said
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
