"""The evidence mode: for a model too small to call tools.

What a tool loop would gather is read deterministically, through the same tool functions (the
same policy, reading identity, masking, markers around host text and output budget): the
incident's evidence, the status and journal of its unit when its subject is one, the host's
snapshot. The model answers once, with JSON the server holds to :func:`answer_schema`; the
answer is validated again here (a server may ignore the schema). Its actions are handed to
``propose_action`` exactly as a tool call would be, so the policy assigns their risk; the
answer names a catalog kind and one target, never a command line.

An answer that is not JSON, or not the schema's, raises :class:`LLMBadResponse`: the
investigation failed and is retried; it never reads as a healthy host.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..config import Settings, validation_problem
from ..llm.strict_json import first_object, strict_json
from ..llm.types import ChatResult, LLMBadResponse, Message, ResponseSchema, ToolCall, ToolSpec
from ..redact import redact, redact_cut
from ..safety.actions import ACTION_KINDS
from ..safety.catalog import CATALOG, same_fix
from ..safety.units import unit_problem
from ..store import Incident
from .context import ToolContext
from .loop import MAX_PROPOSALS, Agent, AgentEvent, AgentOutcome, cut_at_line
from .prompt import HostFacts, evidence_prompt, investigation_task
from .tools import REGISTRY

#: the most actions one answer may propose: as many as a tool loop may
MAX_ACTIONS = MAX_PROPOSALS
SCHEMA_NAME = "incident_diagnosis"


class StructuredLLMCall(Protocol):
    """An LLM call that can ask for a schema-held answer (``QueuedLLM``, ``DirectLLM``)."""

    def __call__(self, messages: list[Message], tools: list[ToolSpec], *,
                 schema: ResponseSchema | None = None,
                 max_tokens: int | None = None) -> Awaitable[ChatResult]: ...


def _target_of(kind: str) -> tuple[str | None, type | None] | None:
    """The catalog parameter an answer's ``target`` fills for ``kind`` (its first one) and
    that parameter's type; (None, None) for a kind without parameters; None for a kind whose
    parameter is not a single text or number (a command's argv): the model's JSON never
    becomes a command line, so such a kind is not offered at all."""
    fields = CATALOG[kind].params.model_fields
    if not fields:
        return None, None
    name, info = next(iter(fields.items()))
    if info.annotation in (str, int):
        return name, info.annotation
    return None


#: kind -> (parameter name or None, its type or None), for every kind an answer may name
TARGETS: dict[str, tuple[str | None, type | None]] = {
    kind: target for kind in ACTION_KINDS if (target := _target_of(kind)) is not None}


def actions_text() -> str:
    lines = []
    for kind, (param, _) in TARGETS.items():
        what = f"the {param}" if param else 'empty ("")'
        if param is not None:
            default = CATALOG[kind].params.model_fields[param].default
            if isinstance(default, str | int):
                what += f" (empty means {default})"
        lines.append(f"- {kind}: {ACTION_KINDS[kind].format_map(_Braces())}; target: {what}")
    return "\n".join(lines)


class _Braces(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return key.upper()


def answer_schema() -> dict[str, Any]:
    """The JSON schema of the one answer: flat, every key required, nothing else allowed, so
    that OpenAI's strict mode, llama.cpp's grammar and Ollama's ``format`` all take it."""
    return {
        "type": "object",
        "properties": {
            "diagnosis": {"type": "string", "minLength": 1,
                          "description": "What is wrong, in one or two sentences."},
            "cause": {"type": "string", "minLength": 1,
                      "description": "The most likely cause, citing the evidence."},
            "actions": {
                "type": "array", "maxItems": MAX_ACTIONS,
                "description": "Catalog actions that would fix it; [] when none fits.",
                "items": {
                    "type": "object",
                    "properties": {
                        "kind": {"type": "string", "enum": list(TARGETS)},
                        "target": {"type": "string",
                                   "description": "What the action is about (a unit, a "
                                   "size, an age, a PID, a path); \"\" for none."},
                        "rationale": {"type": "string", "minLength": 1,
                                      "description": "Why this fixes it, citing evidence."},
                    },
                    "required": ["kind", "target", "rationale"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["diagnosis", "cause", "actions"],
        "additionalProperties": False,
    }


class ProposedFix(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: str
    target: str
    rationale: str = Field(min_length=1)

    @field_validator("kind")
    @classmethod
    def _offered(cls, kind: str) -> str:
        if kind not in TARGETS:
            raise ValueError(f"{kind[:60]!r} is not one of the action kinds offered "
                             f"({', '.join(TARGETS)})")
        return kind

    def parameters(self) -> dict[str, Any]:
        """The catalog parameters: the target under its parameter's name; a number stays a
        number only when it is all digits (the policy refuses anything else, with a reason)."""
        name, kind_of = TARGETS[self.kind]
        if name is None or not self.target:
            return {}
        if kind_of is int and self.target.isdigit():
            return {name: int(self.target)}
        return {name: self.target}


class EvidenceAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    diagnosis: str = Field(min_length=1)
    cause: str = Field(min_length=1)
    actions: list[ProposedFix] = Field(max_length=MAX_ACTIONS)


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def parse_answer(result: ChatResult, max_tokens: int | None = None) -> EvidenceAnswer:
    """The model's answer, validated; LLMBadResponse saying what is wrong with it otherwise."""
    text = result.message.content.strip()
    fenced = _FENCE.match(text)
    if fenced:  # a server that ignored the schema may still have been asked nicely
        text = fenced.group(1)
    shown = " ".join(redact_cut(text, 2000).split())[:200]
    counted = (max_tokens is not None and result.completion_tokens is not None
               and result.completion_tokens >= max_tokens)
    # the server's word (a finish reason of "length") where it counted no tokens, or where
    # its own context ran out first
    limit = (f"{max_tokens} tokens (agent.evidence_max_tokens)" if counted
             else "the token limit (agent.evidence_max_tokens"
             f"{f', {max_tokens}' if max_tokens is not None else ''}, or the server's context, "
             "llm.context_size)")
    if not text:
        raise LLMBadResponse(f"the model reached {limit} before answering in evidence mode"
                             if result.cut or counted
                             else "the model's answer in evidence mode is empty")
    try:
        # a raw line break inside a string is the one slip let through: some servers' grammars
        # allow it, and it hides nothing
        data = strict_json(text, strict=False)
    except ValueError:
        try:
            # a server that does not hold the model to the schema: words before or after
            # the object, or around its fence. Not in a cut answer: an action's object
            # within it is whole, and was read as the answer
            if result.cut or counted:
                raise
            data = first_object(text)
        except ValueError:
            why = f"was cut off at {limit}" if result.cut or counted else "is not JSON"
            raise LLMBadResponse(f"the model's answer in evidence mode {why}: "
                                 f"{shown!r}") from None
    try:
        return EvidenceAnswer.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(validation_problem(e, "answer") for e in exc.errors())
        raise LLMBadResponse(f"the model's answer does not follow the schema "
                             f"{SCHEMA_NAME}: {problems}: {shown!r}") from None


def _gather_plan(incident: Incident) -> list[tuple[str, dict[str, Any]]]:
    """The reads, in the order the model sees them: the incident first, the host last."""
    plan: list[tuple[str, dict[str, Any]]] = [("incident_evidence", {})]
    if unit_problem(incident.subject) is None:  # the incident is about a unit
        plan.append(("unit_status", {"unit": incident.subject}))
        plan.append(("journal", {"unit": incident.subject, "priority": "info",
                                 "since": "-24h", "lines": 40}))
    else:
        plan.append(("journal", {"priority": "warning", "since": "-1h", "lines": 40}))
    plan.append(("snapshot", {}))
    return plan


async def gather(agent: Agent, incident: Incident, room: int) -> list[str]:
    """Each read rendered as the loop renders a tool result, together within ``room``
    characters: each gets an equal share of what is left, at most the tool output budget."""
    plan = _gather_plan(incident)
    rendered: list[str] = []
    for index, (name, arguments) in enumerate(plan):
        call = ToolCall(f"evidence_{index + 1}", name, json.dumps(arguments), arguments)
        agent.emit("tool_call", name, redact_cut(call.raw_arguments, 200))
        started = time.monotonic()
        result = await REGISTRY.call(name, arguments, agent.ctx, call.raw_arguments)
        agent.log_call(call, result, time.monotonic() - started)
        agent.emit("tool_result", name, result.status)
        share = max(200, room // (len(plan) - index))
        text = agent.render(name, result, min(agent.settings.max_tool_output_chars, share),
                            more=False)
        room -= len(text)
        rendered.append(text)
    return rendered


def diagnosis_text(answer: EvidenceAnswer, recorded: list[str]) -> str:
    """What the incident stores: the tool mode's DIAGNOSIS/PROPOSALS form, with the cause."""
    return (f"DIAGNOSIS: {answer.diagnosis}\nCAUSE: {answer.cause}\n"
            f"PROPOSALS: {'; '.join(recorded) if recorded else 'none'}")


async def investigate_evidence(
    incident: Incident,
    llm: StructuredLLMCall,
    ctx: ToolContext,
    settings: Settings,
    facts: HostFacts | None = None,
    on_event: Callable[[AgentEvent], None] | None = None,
) -> AgentOutcome:
    """Gather, ask once for a schema-held answer, record its actions through propose_action."""
    ctx.incident_id = incident.id
    agent = Agent(llm, REGISTRY, ctx, settings.agent, on_event=on_event)  # type: ignore[arg-type]
    system = evidence_prompt(settings, actions_text())
    task = (investigation_task(settings, incident, facts or HostFacts(incident.host))
            + " The evidence follows, one tool result each; then answer with the JSON object.")
    room = settings.agent.max_context_chars - len(system) - len(task)
    evidence = await gather(agent, incident, room)
    messages = [Message("system", system), Message("user", "\n\n".join([task, *evidence]))]
    limit = settings.agent.evidence_max_tokens
    result = await llm(messages, [], schema=ResponseSchema(SCHEMA_NAME, answer_schema()),
                       max_tokens=limit)
    answer = parse_answer(result, limit)
    recorded: list[str] = []
    proposed: set[str] = set()
    for index, fix in enumerate(answer.actions, 1):
        arguments = {"kind": fix.kind, "parameters": fix.parameters(),
                     "rationale": fix.rationale}
        same = same_fix(fix.kind, arguments["parameters"])
        if same in proposed:
            # one fix named twice (in other words) would be two actions of the same fix
            recorded.append(f"{fix.kind} {json.dumps(arguments['parameters'])} (named again: "
                            "proposed once)")
            continue
        proposed.add(same)
        call = ToolCall(f"answer_{index}", "propose_action", json.dumps(arguments), arguments)
        agent.emit("tool_call", call.name, redact_cut(call.raw_arguments, 200))
        started = time.monotonic()
        outcome = await REGISTRY.call(call.name, arguments, ctx, call.raw_arguments)
        agent.log_call(call, outcome, time.monotonic() - started)
        agent.emit("tool_result", call.name, outcome.status)
        shown = f"{fix.kind} {json.dumps(arguments['parameters'])}"
        recorded.append(shown if outcome.status == "ok" else f"{shown} ({outcome.output})")
    text = diagnosis_text(answer, recorded)
    stop: Literal["answer", "long"] = "answer"
    if len(text) > settings.agent.max_context_chars:
        # a server that let the model write past evidence_max_tokens: as the tool loop
        # keeps an answer (stored, shown), cut to the context and said incomplete
        text, stop = cut_at_line(text, settings.agent.max_context_chars), "long"
    agent.emit("answer", "", redact(text))
    reply = Message("assistant", result.message.content)
    return AgentOutcome(text, [*messages, reply], 0, stop, ctx.proposals, mode="evidence")
