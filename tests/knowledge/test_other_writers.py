"""The daemon's knowledge base sees what other processes wrote into it while it runs: an
entry a person added with `knowledge add`, a lesson an `approve` learned."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.context import KnowledgeRecall
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
