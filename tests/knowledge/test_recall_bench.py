"""bench/knowledge_recall.py times embeddings it computes: the process-wide memo of embedded
texts would answer a query recall() asked already, or a note another row embedded, and the
row would time a lookup."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.embeddings import MiniLMEmbedding
from ai_sysadmin.knowledge.store import KnowledgeBase
from tests.support.bench import bench_module

recall_bench = bench_module("knowledge_recall")


class Counted(MiniLMEmbedding):
    """The shipped model, keeping the texts it really computed."""

    def __init__(self) -> None:
        super().__init__()
        self.computed: list[str] = []

    def _embed(self, texts: Sequence[str]) -> Any:
        self.computed.extend(texts)
        return super()._embed(texts)


class CountedPadded(recall_bench.Padded256, Counted):
    pass


def test_each_padding_row_embeds_every_note(embedder: MiniLMEmbedding) -> None:
    notes = [e.document() for e in recall_bench.fillers(12, seed=11)]
    recall_bench.embed_rate(embedder, notes)  # the first row: every note in the memo
    padded = CountedPadded()
    recall_bench.embed_rate(padded, notes)
    assert sorted(padded.computed) == sorted(notes[:8] + notes)  # warm-up, then the timed run


def test_each_timed_query_is_embedded(kb_settings: Settings) -> None:
    model = Counted()
    kb = KnowledgeBase.open(kb_settings, embedder=model, seed=False)
    kb.add_many(recall_bench.SITE_NOTES)
    recall_bench.recall(recall_bench.ours(kb))  # asks every query once, as main() does first
    model.computed.clear()
    recall_bench.query_latencies(kb, 1)
    assert sorted(model.computed) == sorted(q for q, _ in recall_bench.QUERIES)


def test_p95_is_the_nearest_rank() -> None:
    assert recall_bench.nearest_rank(list(range(1, 145)), 0.95) == 137
    assert recall_bench.nearest_rank(list(range(1, 21)), 0.95) == 19
    assert recall_bench.nearest_rank([5.0], 0.95) == 5.0
