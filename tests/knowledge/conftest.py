"""A real embedded ChromaDB per test, and one loaded embedding model for the whole run."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.embeddings import MiniLMEmbedding
from ai_sysadmin.knowledge.store import KnowledgeBase


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedding:
    model = MiniLMEmbedding()
    model.load()
    return model


@pytest.fixture
def kb_settings(tmp_path: Path) -> Settings:
    return Settings(ai_name="hal", state_dir=tmp_path / "state")


@pytest.fixture
def kb(kb_settings: Settings, embedder: MiniLMEmbedding) -> KnowledgeBase:
    """An empty embedded knowledge base (no seed)."""
    return KnowledgeBase.open(kb_settings, embedder=embedder, seed=False)
