"""A real embedded ChromaDB per test, and one loaded embedding model for the whole run."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.embeddings import MiniLMEmbedding
from ai_sysadmin.knowledge.store import KnowledgeBase

#: chromadb 0.6 reads a pydantic attribute pydantic 2.11 deprecated, hundreds of times a test
_CHROMADB_DEPRECATION = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_fields' attribute on the instance is deprecated")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/knowledge/" in str(item.path).replace("\\", "/"):
            item.add_marker(_CHROMADB_DEPRECATION)


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
