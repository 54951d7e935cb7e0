"""The daemon's knowledge base sees what other processes wrote into it while it runs: an
entry a person added with `knowledge add`, a lesson an `approve` learned."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.context import KnowledgeRecall
from ai_sysadmin.knowledge.models import KnowledgeEntry
from ai_sysadmin.knowledge.store import WRITERS_LOCK, KnowledgeBase
from tests.conftest import BIN

#: opening a knowledge base (ChromaDB, the embedding model, the seed) costs seconds
pytestmark = pytest.mark.slow


def test_an_entry_another_process_added_is_recalled_by_the_running_daemon(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state")
    daemon = KnowledgeRecall(settings)  # as the daemon holds it, open for months
    before = daemon.search_text("frobnicator wedged with a stale lock file")
    assert "frobnicator" not in before
    added = subprocess.run(
        [str(BIN), "knowledge", "add", "--topic", "frobnicator.service wedges",
         "--text", "When frobnicator.service wedges, its lock file /run/frob.lock is stale: "
         "remove it, then restart the unit.", "--category", "service"],
        env={**os.environ, "AI_SYSADMIN_STATE_DIR": str(settings.state_dir)},
        capture_output=True, text=True, timeout=300)
    assert added.returncode == 0, added.stderr
    with caplog.at_level("INFO", logger="ai_sysadmin"):
        after = daemon.search_text("frobnicator wedged with a stale lock file")
        assert "/run/frob.lock is stale" in after
        # opened again once: its own reads and writes are no news to it
        daemon.search_text("frobnicator")
    reopened = [r for r in caplog.records if getattr(r, "event", "") == "knowledge_reopened"]
    assert len(reopened) == 1


def _entry_code(state_dir: Path) -> list[str]:
    """Another process that adds one entry to the store under ``state_dir``, as `knowledge
    add` does (without the CLI's start-up, which costs seconds more)."""
    code = ("import sys; from pathlib import Path; from ai_sysadmin.config import Settings; "
            "from ai_sysadmin.knowledge.models import KnowledgeEntry; "
            "from ai_sysadmin.knowledge.store import KnowledgeBase; "
            "kb = KnowledgeBase.open(Settings(ai_name='hal', state_dir=Path(sys.argv[1]), "
            "knowledge={'seed': False})); "
            "kb.add(KnowledgeEntry(id='frob', topic='frobnicator.service wedges', "
            "text='its lock file /run/frob.lock is stale: remove it, restart the unit'))")
    return [sys.executable, "-c", code, str(state_dir)]


def test_opening_one_store_again_leaves_the_other_stores_of_the_process_answering(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # ChromaDB's cache of systems is the process's, and opening one store again clears all
    # of it: every other client of the process must still read and write what it holds,
    # a store of the same table (opened again with it) and one opened apart alike
    def settings(name: str) -> Settings:
        return Settings(ai_name="hal", state_dir=tmp_path / name, knowledge={"seed": False})

    daemon, other = KnowledgeRecall(settings("a")), KnowledgeRecall(settings("b"))
    apart = KnowledgeBase.open(settings("c"))
    other.kb.add(KnowledgeEntry(id="zorb", topic="zorblax.service leaks sockets",
                                text="zorblax leaks a socket per reload: restart it weekly"))
    apart.add(KnowledgeEntry(id="quux", topic="quuxer fills /var/tmp",
                             text="quuxer never removes its spool files in /var/tmp"))
    assert "frobnicator" not in daemon.search_text("frobnicator wedged with a stale lock")

    added = subprocess.run(_entry_code(settings("a").state_dir), capture_output=True,
                           text=True, timeout=300)
    assert added.returncode == 0, added.stderr
    with caplog.at_level("INFO", logger="ai_sysadmin"):
        assert "/run/frob.lock is stale" in daemon.search_text("frobnicator wedged stale lock")
    assert [r for r in caplog.records if getattr(r, "event", "") == "knowledge_reopened"]

    assert "zorblax leaks a socket" in other.search_text("zorblax socket leak")
    assert [e.id for e in other.kb.list()] == ["zorb"]
    assert apart.count()["knowledge"] == 1
    assert [e.id for e in apart.list()] == ["quux"]
    assert [h.item.id for h in apart.search("quuxer spool files")] == ["quux"]
    # and each writes on, seen by its own searches
    apart.add(KnowledgeEntry(id="blorp", topic="blorpd eats disk",
                             text="blorpd keeps every core dump in /var/crash"))
    assert [h.item.id for h in apart.search("blorpd core dumps in /var/crash", 1)] == ["blorp"]
    other.kb.add(KnowledgeEntry(id="wib", topic="wibble hangs on NFS",
                                text="wibble hangs when its NFS mount is gone"))
    assert "wibble hangs when its NFS" in other.search_text("wibble NFS hang")


def _knowledge(settings: Settings, *args: str) -> str:
    """A person's `knowledge` command on the daemon's store (another process)."""
    done = subprocess.run(
        [str(BIN), "knowledge", *args],
        env={**os.environ, "AI_SYSADMIN_STATE_DIR": str(settings.state_dir)},
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_note_added_before_the_daemon_writes_a_host_profile_is_still_recalled(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tests.knowledge.test_learning import _snapshot

    settings = Settings(ai_name="hal", state_dir=tmp_path / "state")
    daemon = KnowledgeRecall(settings)
    assert "zorblax" not in daemon.search_text("zorblax frobnicates")  # open, as it stays
    _knowledge(settings, "add", "--topic", "zorblax frobnication daemon",
               "--text", "restart zorblax.service when it frobnicates")
    with caplog.at_level("INFO", logger="ai_sysadmin"):
        # the daemon's next check writes the host's profile: its own write, after another's
        assert daemon.note_system(_snapshot("41")) is True
        assert "restart zorblax.service when it frobnicates" in daemon.search_text(
            "zorblax frobnicates")
        # its own writes are no news: opened again for the person's note alone
        assert daemon.note_system(_snapshot("42")) is True
        assert daemon.kb.get_system("nix1").facts["nixos_generation"] == "42"
    reopened = [r for r in caplog.records if getattr(r, "event", "") == "knowledge_reopened"]
    assert len(reopened) == 1


def test_what_another_process_writes_while_the_daemon_uses_the_store_is_not_taken_for_its_own(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ai_sysadmin.knowledge.profiles import profile_of
    from tests.knowledge.test_learning import _snapshot

    settings = Settings(ai_name="hal", state_dir=tmp_path / "state")
    daemon = KnowledgeRecall(settings)
    assert "zorblax" not in daemon.search_text("zorblax frobnicates")
    said: list[str] = []

    def add_beside(kb: KnowledgeBase) -> None:  # a person's add while the daemon writes
        said.append(_knowledge(settings, "add", "--topic", "zorblax frobnication daemon",
                               "--text", "restart zorblax.service when it frobnicates"))
        kb.upsert_system(profile_of(_snapshot("41")))

    daemon._with_kb(add_beside)
    note = said[0].split()[1].rstrip(":")
    assert "restart zorblax.service when it frobnicates" in daemon.search_text(
        "zorblax frobnicates")

    # a removal while the daemon searches: its vector was still in the daemon's index
    daemon._with_kb(lambda kb: _knowledge(settings, "remove", note))
    with caplog.at_level("WARNING", logger="ai_sysadmin"):
        assert "zorblax.service" not in daemon.search_text("zorblax frobnicates")
    assert not [r for r in caplog.records if getattr(r, "event", "") == "knowledge_unreadable"]


def test_a_search_of_a_store_another_process_removed_an_entry_from_leaves_it_out(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # a client that never opens again (a `knowledge` command of its own) keeps the removed
    # entry's vector in its index: the entry is gone, not unreadable, and no search fails
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", knowledge={"seed": False})
    kb = KnowledgeBase.open(settings)
    kb.add(KnowledgeEntry(id="frob", topic="frobnicator.service wedges",
                          text="its lock file /run/frob.lock is stale: remove it"))
    kb.add(KnowledgeEntry(id="quux", topic="quuxer fills /var/tmp",
                          text="quuxer never removes its spool files in /var/tmp"))
    assert [h.item.id for h in kb.search("frobnicator wedged", 1)] == ["frob"]
    _knowledge(settings, "remove", "frob")
    with caplog.at_level("WARNING", logger="ai_sysadmin"):
        assert [h.item.id for h in kb.search("frobnicator wedged")] == []
    assert kb.unreadable == {}


def _rows(store: Path) -> int:
    """Records the embedded store at ``store`` holds now, read as another process may."""
    try:
        conn = sqlite3.connect(f"{(store / 'chroma.sqlite3').as_uri()}?mode=ro", uri=True,
                               timeout=30)
    except sqlite3.Error:
        return 0
    try:
        return int(conn.execute("SELECT count(*) FROM embeddings").fetchone()[0])
    except sqlite3.Error:  # not made yet, or being written: asked again
        return 0
    finally:
        conn.close()


def _writers_lock_taken(store: Path, deadline: float) -> int:
    """The store's writers' lock, held by this process (its descriptor) once no other holds
    it: a blocking flock, handed over the moment its holder lets go."""
    fd = os.open(store / WRITERS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    taken = threading.Event()

    def take() -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        taken.set()

    threading.Thread(target=take, daemon=True).start()
    assert taken.wait(max(deadline - time.monotonic(), 0)), "the writers' lock was never free"
    return fd


def test_a_note_added_while_an_import_runs_leaves_the_vector_index_whole(
        tmp_path: Path) -> None:
    """`knowledge import` wrote its batches each under the writers' lock, let go between
    them, and never loaded its vector index again: a `knowledge add` between two batches
    was missing from the index the import saved with the next one, and every search, recall
    and add after refused the store as damaged. Here the add comes at the first moment the
    import lets go of the lock after its first batch landed, the import held still while it
    runs."""
    env = {**os.environ, "AI_SYSADMIN_STATE_DIR": str(tmp_path / "state"),
           "AI_SYSADMIN_KNOWLEDGE__SEED": "false", "AI_SYSADMIN_KNOWLEDGE__TIMEOUT": "300"}
    store = tmp_path / "state" / "knowledge"
    notes = tmp_path / "notes.jsonl"
    # two batches of a thousand: the second saves the import's index
    notes.write_text("".join(json.dumps({
        "type": "entry", "id": f"op-bulk-{n}", "topic": f"bulk note {n}",
        "text": f"note {n} about svc{n}.service on web{n % 7}"}) + "\n" for n in range(2000)))
    importing = subprocess.Popen([str(BIN), "knowledge", "import", "--trust-operator-notes",
                                  str(notes)], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while importing.poll() is None and _rows(store) < 1000:
            assert time.monotonic() < deadline, "the import wrote no batch"
            time.sleep(0.1)
        fd = _writers_lock_taken(store, deadline)
        try:
            importing.send_signal(signal.SIGSTOP)  # between two batches, if it still runs
        finally:
            os.close(fd)  # the add may write
        try:
            added = subprocess.run(
                [str(BIN), "knowledge", "add", "--topic", "frobnicator.service wedges",
                 "--text", "its lock file /run/frob.lock is stale: remove it"],
                env=env, capture_output=True, text=True, timeout=300)
        finally:
            importing.send_signal(signal.SIGCONT)
        out, err = importing.communicate(timeout=600)
    finally:
        importing.kill()
        importing.wait()
    assert added.returncode == 0, added.stderr
    assert importing.returncode == 0, err
    assert out.startswith("imported 2000 new and 0 replaced"), out
    found = subprocess.run([str(BIN), "knowledge", "search", "frobnicator lock file stale",
                            "-n", "1", "--json"], env=env, capture_output=True, text=True,
                           timeout=300)
    assert found.returncode == 0, found.stderr
    assert [h["topic"] for h in json.loads(found.stdout)] == ["frobnicator.service wedges"]
    listed = subprocess.run([str(BIN), "knowledge", "list", "--json"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 2001
