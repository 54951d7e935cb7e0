"""The daemon's investigation retry loop, run against a scripted model until a test's
condition holds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.context import KnowledgeRecall
from ai_sysadmin.llm.backends import make_backend
from ai_sysadmin.llm.client import DirectLLM
from ai_sysadmin.orchestrator.investigator import Investigator
from ai_sysadmin.store import IncidentStore
from tests.support.polling import TIMEOUT


async def sweep_until(settings: Settings, store: IncidentStore, incident_id: int,
                      done: Callable[[], bool], timeout: float = TIMEOUT,
                      on_proposals: Callable[..., Awaitable[Any]] | None = None,
                      host: str = "web1") -> None:
    """Retry sweeps every 20 ms of ``host``'s incidents (its transport never used: these
    investigations only talk), until ``done``; the incident's history is the failure's text.
    ``on_proposals``: what decides the proposals (none: they are only recorded). Then the
    investigations under way are let end: a stop cuts them off, and one cut off as it began
    stays "investigating" until the next start recovers it, which these sweeps do not run.
    The first investigation of a process opens the knowledge base (ChromaDB and its
    embedding model loaded, the seed embedded): on a busy machine, a good part of a minute."""
    investigator = Investigator(settings, store, {host: object()},  # type: ignore[dict-item]
                                lambda _: DirectLLM(make_backend(settings.llm)),
                                on_proposals=on_proposals, knowledge=KnowledgeRecall(settings))
    stop = asyncio.Event()
    sweeping = asyncio.create_task(investigator.retry_loop(stop, every=0.02))
    deadline = time.monotonic() + timeout
    try:
        while not done():
            assert time.monotonic() < deadline, store.get(incident_id).events
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await sweeping
        while investigator.running and time.monotonic() < deadline:
            await asyncio.wait(list(investigator.running.values()),
                               timeout=deadline - time.monotonic())
        await investigator.close()
