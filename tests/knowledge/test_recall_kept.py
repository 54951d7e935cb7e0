"""What the knowledge base recalled for an incident serves its retries: through a long LLM
outage, each retry of an investigation opened the knowledge base again (seconds of CPU,
hundreds of MB), which had closed idle since, to recall what it had recalled the time
before. A recall that could not reach the store is not kept, nor one a lesson learned since
would change."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge import context as knowledge_context
from ai_sysadmin.knowledge.context import close_idle, shared
from ai_sysadmin.knowledge.models import KnowledgeEntry
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import Database, IncidentStore

#: opening a knowledge base (ChromaDB, the embedding model) costs seconds
pytestmark = pytest.mark.slow


def test_a_retry_recalls_what_the_attempt_before_did_without_opening_the_store(
        tmp_path: Path) -> None:
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", knowledge={"seed": False})
    store = IncidentStore(Database(settings.db_path))
    recall = shared(settings)
    recall.kb.add(KnowledgeEntry(id="frob", topic="frobnicator.service wedges",
                                 text="its lock file /run/frob.lock is stale: remove it"))
    finding = Finding("web1", "failed_unit", "frobnicator.service", Severity.CRITICAL,
                      "frobnicator.service has failed", ("frobnicator.service: failed",))
    (incident_id,) = store.record_check("web1", [finding], {"failed_unit"}).opened

    async def scenario() -> None:
        first = await recall.recall(store.get(incident_id))
        assert "/run/frob.lock" in first
        assert close_idle(0) is True  # idle through the retry's backoff
        assert await recall.recall(store.get(incident_id)) == first
        assert not recall.is_open
        # the incident changed (worse, other evidence): recalled afresh
        worse = Finding("web1", "failed_unit", "frobnicator.service", Severity.CRITICAL,
                        "frobnicator.service has failed 3 times",
                        ("frobnicator.service: failed",))
        store.record_check("web1", [worse], {"failed_unit"})
        assert "/run/frob.lock" in await recall.recall(store.get(incident_id))
        assert recall.is_open
        # a person adds what they know (written to the store): the next retry has it
        recall.kb.add(KnowledgeEntry(id="frob2", topic="frobnicator.service wedges again",
                                     text="frobnicator needs /var/lib/frob writable"))
        assert "/var/lib/frob" in await recall.recall(store.get(incident_id))

    asyncio.run(scenario())


def test_a_recall_that_could_not_reach_the_store_is_not_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store could not open at the first try: the retry a minute later, the store well
    again, recalls what it holds (kept, the empty text served every retry for an hour)."""
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", knowledge={"seed": False})
    store = IncidentStore(Database(settings.db_path))
    recall = shared(settings)
    recall.kb.add(KnowledgeEntry(id="frob", topic="frobnicator.service wedges",
                                 text="its lock file /run/frob.lock is stale: remove it"))
    assert close_idle(0) is True
    finding = Finding("web1", "failed_unit", "frobnicator.service", Severity.CRITICAL,
                      "frobnicator.service has failed", ("frobnicator.service: failed",))
    (incident_id,) = store.record_check("web1", [finding], {"failed_unit"}).opened
    place = settings.state_dir / "knowledge"
    aside = tmp_path / "aside"
    place.rename(aside)
    place.write_text("not a directory: the store cannot open here\n")
    # a failed opening is tried again a minute later: at once here
    monkeypatch.setattr(knowledge_context, "RETRY_OPEN", 0.0)

    async def scenario() -> tuple[str, str]:
        first = await recall.recall(store.get(incident_id))
        place.unlink()
        aside.rename(place)
        return first, await recall.recall(store.get(incident_id))

    first, again = asyncio.run(scenario())
    assert "/run/frob.lock" not in first
    assert "/run/frob.lock" in again
