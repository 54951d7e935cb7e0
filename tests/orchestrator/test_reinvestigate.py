"""An incident that comes back while its investigation (and the fix it proposed) is still
running is investigated again as soon as that ends: the news never waits for nobody."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.context import KnowledgeRecall
from ai_sysadmin.llm.backends import make_backend
from ai_sysadmin.llm.client import DirectLLM
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.investigator import Investigator
from ai_sysadmin.store import Database, IncidentStore
from tests.support.scripted_model import ScriptedModel, call, say

FAILED = Finding("web1", "failed_unit", "nginx.service", Severity.CRITICAL,
                 "nginx.service has failed", ("nginx.service: active=failed",))


def test_an_incident_reopened_during_its_fix_is_investigated_again(tmp_path: Path) -> None:
    script = [
        call("propose_action", kind="restart_unit", parameters={"unit": "nginx.service"},
             rationale="it failed once"),
        say("DIAGNOSIS: nginx.service failed.\nPROPOSALS: restart_unit"),
        say("DIAGNOSIS: nginx.service failed again after its restart."),
    ]
    with ScriptedModel(script) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path, agent={"max_investigations": 5},
                            llm={"backend": "openai", "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened
        scheduled_during_fix: list[bool] = []

        async def go() -> None:
            investigator: Investigator

            async def fix_then_it_fails_again(iid: int, host: str, proposals) -> None:
                # the fix ran and held, then the unit failed again: the daemon's next check
                # reopens the incident and asks for an investigation while this one runs
                store.transition(iid, "resolved", "executor", "verified")
                reopened = store.record_check("web1", [FAILED], {"failed_unit"}).reopened
                assert reopened == [iid]
                scheduled_during_fix.append(investigator.schedule(iid))

            investigator = Investigator(
                settings, store, {}, lambda _: DirectLLM(make_backend(settings.llm)),
                on_proposals=fix_then_it_fails_again, knowledge=KnowledgeRecall(settings))
            assert investigator.schedule(incident_id)
            deadline = time.monotonic() + 30
            while len(model.requests) < 3 or any(
                    not t.done() for t in investigator.running.values()):
                assert time.monotonic() < deadline, f"{len(model.requests)} requests"
                await asyncio.sleep(0.05)
            await investigator.close()

        asyncio.run(go())
    assert scheduled_during_fix == [False]  # it was still running then
    incident = store.get(incident_id)
    assert incident.diagnosis is not None
    assert incident.diagnosis.startswith("DIAGNOSIS: nginx.service failed again")
