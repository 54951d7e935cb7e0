"""A model server keeps the prefix it evaluated (llama.cpp, Ollama, vLLM's prefix cache): every
investigation, on every host, starts with the same system prompt and tool schemas, so the tool
loop's ~2,000 tokens of them are evaluated once, not once per host (about 25 s on a small CPU
box, measured with SmolLM2 on two cores). The host and its facts are in the task."""

from __future__ import annotations

import asyncio
from typing import Any

from ai_sysadmin.agent.context import ToolContext
from ai_sysadmin.agent.evidence import investigate_evidence
from ai_sysadmin.agent.investigate import investigate
from ai_sysadmin.agent.prompt import HostFacts
from ai_sysadmin.config import LLMSettings, Settings
from ai_sysadmin.llm.backends import make_backend
from ai_sysadmin.llm.client import DirectLLM
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import IncidentStore
from tests.support.scripted_model import ScriptedModel, say

DEBIAN = HostFacts("testhost", "debian", "12")
NIXOS = HostFacts("testhost", "nixos", "24.11", nixos_generation="812")
ANSWER = '{"diagnosis": "demo.service failed", "cause": "exit code 1", "actions": []}'


def _requests(backend_name: str, ctx: ToolContext, settings: Settings, store: IncidentStore,
              evidence_mode: bool) -> list[dict[str, Any]]:
    finding = Finding("testhost", "failed_unit", "demo.service", Severity.CRITICAL,
                      "demo.service has failed", ("demo.service: active=failed",))
    (incident_id,) = store.record_check("testhost", [finding], {"failed_unit"}).opened
    llm_settings = LLMSettings(backend=backend_name, url="http://127.0.0.1:1",
                               model="scripted", timeout=10, connect_timeout=2)

    async def go(url: str) -> None:
        backend = make_backend(llm_settings.model_copy(update={"url": url}))
        try:
            for facts in (DEBIAN, NIXOS):
                incident = store.get(incident_id)
                if evidence_mode:
                    await investigate_evidence(incident, DirectLLM(backend), ctx, settings,
                                               facts)
                else:
                    await investigate(incident, DirectLLM(backend), ctx, settings, facts)
        finally:
            await backend.aclose()

    reply = ANSWER if evidence_mode else "DIAGNOSIS: demo failed.\nEVIDENCE: -\nPROPOSALS: none"
    with ScriptedModel([say(reply), say(reply)]) as model:
        asyncio.run(go(model.url))
        return list(model.requests)


def _check(requests: list[dict[str, Any]]) -> None:
    first, second = requests
    # the prefix a server reuses: the system prompt and the tools, the same for both hosts
    assert first["messages"][0] == second["messages"][0]
    assert first["messages"][0]["role"] == "system"
    assert first.get("tools") == second.get("tools")
    assert "You are hal" in first["messages"][0]["content"]
    assert "debian" not in first["messages"][0]["content"]
    assert "'suggest'" not in first["messages"][0]["content"]
    # the task names the host and what is known of it
    tasks = [r["messages"][1]["content"] for r in requests]
    assert "on host testhost, OS debian 12. The autonomy level is 'suggest'." in tasks[0]
    assert "on host testhost, OS nixos 24.11, NixOS generation 812." in tasks[1]


def test_the_tool_loop_starts_every_investigation_with_one_prefix(
        backend_name: str, ctx: ToolContext, settings: Settings, store: IncidentStore) -> None:
    requests = _requests(backend_name, ctx, settings, store, evidence_mode=False)
    assert all(r.get("tools") for r in requests)
    _check(requests)


def test_the_evidence_mode_starts_every_investigation_with_one_prefix(
        backend_name: str, ctx: ToolContext, settings: Settings, store: IncidentStore) -> None:
    _check(_requests(backend_name, ctx, settings, store, evidence_mode=True))
