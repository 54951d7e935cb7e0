"""An answer the server stopped at its token limit is not taken for a whole one: the
diagnosis says it is incomplete (both protocols' words for it, and through the queue)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.context import KnowledgeRecall
from ai_sysadmin.llm.backends import make_backend
from ai_sysadmin.llm.client import DirectLLM
from ai_sysadmin.llm.handlers import chat_result, result_payload
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.investigator import Investigator
from ai_sysadmin.store import Database, IncidentStore
from tests.support.investigations import sweep_until
from tests.support.scripted_model import ScriptedModel, respond, say

FAILED = Finding("web1", "failed_unit", "nginx.service", Severity.CRITICAL,
                 "nginx.service has failed", ("nginx.service: active=failed",))
TEXT = "DIAGNOSIS: nginx.service fail"
CUT = {
    "openai": {"id": "x", "object": "chat.completion", "model": "scripted",
               "choices": [{"index": 0, "finish_reason": "length",
                            "message": {"role": "assistant", "content": TEXT}}]},
    "ollama": {"model": "scripted", "done": True, "done_reason": "length",
               "message": {"role": "assistant", "content": TEXT}},
}


@pytest.mark.parametrize("backend", sorted(CUT))
def test_a_diagnosis_cut_at_the_token_limit_says_it_is_incomplete(tmp_path: Path,
                                                                   backend: str) -> None:
    with ScriptedModel([respond(CUT[backend])] * 2) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path,
                            llm={"backend": backend, "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened
        backend_ = make_backend(settings.llm)

        async def go() -> None:
            investigator = Investigator(settings, store, {}, lambda _: DirectLLM(backend_),
                                        knowledge=KnowledgeRecall(settings))
            investigator.schedule(incident_id)
            await asyncio.wait_for(asyncio.shield(investigator.running[incident_id]), 30)
            await investigator.close()
            # the same answer as the queue's worker stores it and the daemon reads it back
            result = await backend_.chat([], [])
            assert result.cut and chat_result(result_payload(result)).cut

        asyncio.run(go())
    diagnosis = store.get(incident_id).diagnosis or ""
    assert diagnosis.startswith("(incomplete: the answer reached the model's token limit")
    assert diagnosis.endswith(TEXT)


#: a tool call written as text, cut at the token limit before it was whole
CALL = '<tool_call>\n{"name": "journal", "arguments": {"unit": "nginx.ser'


@pytest.mark.parametrize("backend", sorted(CUT))
def test_an_investigation_whose_calls_the_token_limit_cuts_escalates_naming_the_limit(
        tmp_path: Path, backend: str) -> None:
    """Each reply a tool call cut at the token limit: the person is told of llm.max_tokens,
    not of a server that does not read tool calls (--jinja)."""
    cut = json.loads(json.dumps(CUT[backend]).replace(json.dumps(TEXT), json.dumps(CALL)))
    with ScriptedModel(then=respond(cut)) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path,
                            agent={"max_investigations": 3, "retry_backoff_seconds": 0.001},
                            llm={"backend": backend, "url": model.url, "model": "scripted",
                                 "max_tokens": 64})
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened

        def escalated() -> list[str]:
            return [e.detail for e in store.get(incident_id, history=None).events
                    if e.kind == "escalated"]

        asyncio.run(sweep_until(settings, store, incident_id, lambda: bool(escalated())))
    [said] = escalated()
    assert said.endswith("The last: LLMBadResponse: the model reached its token limit "
                         "(llm.max_tokens) while it wrote a tool call; a larger limit lets it "
                         "finish the call"), said
    assert "--jinja" not in said


@pytest.mark.parametrize("backend", sorted(CUT))
def test_an_answer_of_megabytes_is_kept_cut_to_the_context_and_says_so(tmp_path: Path,
                                                                       backend: str) -> None:
    """A model gone wrong that writes megabytes: the incident keeps what fits the context,
    said to be incomplete, not all of it as its diagnosis (masked, stored, shown whole)."""
    line = "DIAGNOSIS: nginx.service failed, again and again and again\n"
    with ScriptedModel([say(line * 80_000)]) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path,
                            llm={"backend": backend, "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened
        backend_ = make_backend(settings.llm)

        async def go() -> None:
            investigator = Investigator(settings, store, {}, lambda _: DirectLLM(backend_),
                                        knowledge=KnowledgeRecall(settings))
            investigator.schedule(incident_id)
            await asyncio.wait_for(asyncio.shield(investigator.running[incident_id]), 60)
            await investigator.close()
            await backend_.aclose()

        asyncio.run(go())
    incident = store.get(incident_id)
    diagnosis = incident.diagnosis or ""
    assert diagnosis.startswith("(incomplete: the answer was longer than "
                                "agent.max_context_chars; cut there)\nDIAGNOSIS: nginx")
    assert len(diagnosis) <= settings.agent.max_context_chars + 200
    assert diagnosis.endswith("again and again")  # at a line's end
    assert incident.state == "open"  # nothing proposed: it stays open for a retry
