"""One investigation of one incident: the opening conversation and the agent run."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from ..config import Settings
from ..llm.types import Message, ToolCall
from ..store import Incident
from .context import ToolContext
from .loop import Agent, AgentEvent, AgentOutcome, LLMCall
from .prompt import HostFacts, chat_prompt, investigation_prompt, investigation_task
from .registry import ToolResult
from .tools import REGISTRY


async def opening(agent: Agent, settings: Settings, incident: Incident,
                  facts: HostFacts) -> list[Message]:
    """System prompt, the task, and the incident's evidence already fetched as a tool result,
    so the host text it quotes reaches the model delimited, like any other host output."""
    call = ToolCall("call_evidence", "incident_evidence", json.dumps({}), {})
    evidence: ToolResult = await REGISTRY.call("incident_evidence", {}, agent.ctx)
    return [
        Message("system", investigation_prompt(settings)),
        Message("user", investigation_task(settings, incident, facts) + " Its evidence follows."),
        Message("assistant", "", (call,)),
        Message("tool", agent.render("incident_evidence", evidence),
                tool_call_id=call.id, name=call.name),
    ]


async def investigate(
    incident: Incident,
    llm: LLMCall,
    ctx: ToolContext,
    settings: Settings,
    facts: HostFacts | None = None,
    on_event: Callable[[AgentEvent], None] | None = None,
) -> AgentOutcome:
    ctx.incident_id = incident.id
    agent = Agent(llm, REGISTRY, ctx, settings.agent, on_event=on_event)
    messages = await opening(agent, settings, incident, facts or HostFacts(incident.host))
    # the evidence is what the incident is about (the task names no subject: host text): a
    # long investigation that dropped it diagnosed and proposed without it
    return await agent.run(messages, opening=len(messages))


def chat_opening(settings: Settings, facts: HostFacts, managed: Sequence[str] = ()) -> Message:
    return Message("system", chat_prompt(settings, facts, managed))
