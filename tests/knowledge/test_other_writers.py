"""The daemon's knowledge base sees what other processes wrote into it while it runs: an
entry a person added with `knowledge add`, a lesson an `approve` learned."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.context import KnowledgeRecall
from ai_sysadmin.knowledge.models import KnowledgeEntry
from ai_sysadmin.knowledge.store import KnowledgeBase
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
