"""The daemon's knowledge base closes once nothing used it for knowledge.close_after_seconds,
giving its memory back, and opens again at its next use with all it held."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.context import close_idle, shared
from ai_sysadmin.knowledge.models import KnowledgeEntry

#: opening a knowledge base (ChromaDB, the embedding model) costs seconds
pytestmark = pytest.mark.slow


def test_a_store_in_use_stays_open_an_idle_one_closes_and_opens_again_whole(
        tmp_path: Path) -> None:
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", knowledge={"seed": False})
    recall = shared(settings)
    recall.kb.add(KnowledgeEntry(id="frob", topic="frobnicator.service wedges",
                                 text="its lock file /run/frob.lock is stale: remove it"))
    assert "/run/frob.lock" in recall.search_text("frobnicator wedged")
    # used a moment ago: an hour's idleness is not reached, nothing closes
    assert close_idle(3600) is False
    assert recall.is_open
    assert close_idle(0) is True
    assert not recall.is_open
    assert close_idle(0) is False  # nothing open: nothing to close
    # the next use opens it again, with what it held
    assert "/run/frob.lock" in recall.search_text("frobnicator wedged")
    assert recall.is_open
