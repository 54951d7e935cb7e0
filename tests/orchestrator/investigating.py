"""The daemon's investigations and notifications in one event loop, for the tests of what a
person is told while incidents wait (an LLM server that does not answer, no worker)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.context import KnowledgeRecall
from ai_sysadmin.llm.backends import make_backend
from ai_sysadmin.llm.client import DirectLLM, QueuedLLM
from ai_sysadmin.llm.queue import RequestQueue, open_queue
from ai_sysadmin.llm.types import Priority
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.notify import Notifier
from ai_sysadmin.orchestrator.investigator import Investigator
from ai_sysadmin.store import IncidentStore


def failed_unit(unit: str, host: str = "web1") -> Finding:
    return Finding(host, "failed_unit", unit, Severity.WARNING, f"{unit} has failed",
                   (f"{unit}: active=failed",))


class Daemon:
    """The daemon's retry loop (every 20 ms) and its delivery loops for web1's incidents:
    straight to the LLM, or with ``queued`` through the queue with no worker of its own, as
    ``build_daemon`` wires them with ``queue.embedded_worker = false``. Each run starts as
    the daemon does, recovering the investigations a stop cut off: one cut off as it began
    (its "investigating" written as the stop came) waits for that, or no retry ever took it."""

    def __init__(self, settings: Settings, store: IncidentStore, queued: bool = False) -> None:
        self.settings = settings
        self.store = store
        self.queued = queued

    def _llm_for(self, queue: RequestQueue | None) -> Callable[[int], Any]:
        if queue is None:
            return lambda _: DirectLLM(make_backend(self.settings.llm))
        return lambda incident_id: QueuedLLM(
            queue, Priority.AUTONOMOUS, coalesce_key=f"incident:{incident_id}",
            timeout=self.settings.queue.wait_timeout)

    async def run(self, steps: Callable[[], Any]) -> None:
        queue = open_queue(self.settings) if self.queued else None
        investigator = Investigator(
            self.settings, self.store, {"web1": object()},  # type: ignore[dict-item]
            self._llm_for(queue), knowledge=KnowledgeRecall(self.settings), here="hal")
        investigator.recover()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(investigator.retry_loop(stop, every=0.02)),
                 asyncio.create_task(Notifier(self.settings, self.store.db).run(stop))]
        try:
            await steps()
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            await investigator.close()
            if queue is not None:
                queue.close()
