"""The shipped seed is loaded into a knowledge base once, ever: an operator who removed every
seed note (to keep only their own) does not see them all come back at the next open."""

from __future__ import annotations

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.embeddings import MiniLMEmbedding
from ai_sysadmin.knowledge.seed import seed_entries
from ai_sysadmin.knowledge.store import KnowledgeBase

pytestmark = pytest.mark.slow


def test_removing_every_seed_note_is_not_undone(kb_settings: Settings,
                                                embedder: MiniLMEmbedding) -> None:
    kb = KnowledgeBase.open(kb_settings, embedder=embedder)
    assert kb.count()["knowledge"] == len(seed_entries())
    for entry in kb.list(provenance="seed"):
        kb.remove(entry.id)
    assert kb.count()["knowledge"] == 0
    # what the next `knowledge list`, or the daemon's start, does
    reopened = KnowledgeBase.open(kb_settings, embedder=embedder)
    assert reopened.count()["knowledge"] == 0
    assert reopened.list(provenance="seed") == []


def test_a_store_opened_without_the_seed_gets_it_while_still_empty(
        kb_settings: Settings, embedder: MiniLMEmbedding) -> None:
    KnowledgeBase.open(kb_settings, embedder=embedder, seed=False)
    kb = KnowledgeBase.open(kb_settings, embedder=embedder)
    assert kb.count()["knowledge"] == len(seed_entries())
