"""``propose_action``: the model's only way to suggest a fix. It is recorded, never executed
here; deciding and executing belong to the safety layer and the executor."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field

from ...redact import redact, redact_cut
from ...safety.actions import ACTION_KINDS
from ...safety.catalog import CATALOG, checked_parameters, firm_refusal
from ..context import ToolContext
from ..registry import ToolResult
from . import REGISTRY

_KINDS = ", ".join(sorted(ACTION_KINDS))


def _expected(kind: str) -> str:
    """The parameters ``kind`` takes, as the catalog defines them, for a model to correct a
    call: ``unit (string, required)``."""
    schema = CATALOG[kind].params.model_json_schema()
    required = set(schema.get("required", ()))
    said = []
    for name, prop in schema.get("properties", {}).items():
        kind_of = " or ".join(map(str, prop["enum"])) if "enum" in prop else prop.get("type")
        need = "required" if name in required else f"default {prop.get('default')!r}"
        said.append(f"{name} ({kind_of}, {need})")
    return ", ".join(said) or "no parameters ({})"


def _shape_problem(kind: str, parameters: dict[str, Any]) -> str | None:
    """What the catalog would refuse in these parameters' types when the plan is made, said
    now, while the model can still correct its call."""
    _, problems = checked_parameters(kind, parameters)
    if problems is None:
        return None
    return (f"invalid parameters for {kind}: {problems}. {kind} takes: {_expected(kind)}; "
            "no proposal was recorded")


def _never(ctx: ToolContext, kind: str, parameters: dict[str, Any]) -> str | None:
    """What the policy refuses in this proposal whatever the host says (an invalid unit
    name, a relative path, an argv the command policy refuses), said now, while the model
    can still propose another: recorded, it was refused only once the plan was made, and
    the investigation was spent on it. Everything else stays the policy's, judged on the
    host's facts when the plan is made."""
    safety = ctx.settings.safety
    why = firm_refusal(kind, parameters, safety.protected_units, safety.clean_paths)
    if why is None:
        return None
    return (f"refused by policy at every autonomy level, whatever the host says: "
            f"{redact_cut(why, 500)}; no proposal was recorded; propose another fix, or none")


def _audit_invalid(ctx: ToolContext, kind: str, parameters: dict[str, Any],
                   problem: str) -> None:
    """A proposal refused as it was made, for a person to see what the model tried (an
    injected kill?)."""
    if ctx.store is None:
        return
    # masked, as a recorded proposal must be: the model may have written a password into
    # it, and the audit log is read by people and kept for ever
    ctx.store.audit("agent", "proposal.invalid", f"incident:{ctx.incident_id}",
                    f"{kind} {redact_cut(json.dumps(parameters), 300)}: "
                    f"{redact_cut(problem, 300)}")


def _whose(ctx: ToolContext) -> str:
    """What ``ctx.default_host`` is to the conversation, in words."""
    return ("the incident's host" if ctx.incident_id is not None
            else "the host this conversation is about")


@REGISTRY.tool()
async def propose_action(
    ctx: ToolContext,
    kind: Annotated[str, Field(description=f"One of: {_KINDS}.")],
    parameters: Annotated[
        dict[str, Any], Field(description="e.g. {'unit': 'nginx.service'} for restart_unit.")
    ],
    rationale: Annotated[str, Field(min_length=1, max_length=2000,
                                    description="Why this fixes the incident, citing evidence.")],
    host: Annotated[str, Field(description="Omit it: a fix is for the host this conversation "
                               "is about, and no other.")] = "",
) -> ToolResult:
    """Propose one remediation action for the host this conversation is about (the
    incident's host), never another. It is recorded for the policy and a person to decide;
    nothing runs now."""
    if host and host != ctx.default_host:
        # every reading tool takes a host, and a model that read another host proposed its
        # fix there: it was recorded for this host, and the model said it was for the other
        return ToolResult("refused", f"a fix is proposed here only for host "
                          f"{ctx.default_host}, {_whose(ctx)}; none is recorded for "
                          f"{host[:100]!r}: say in your answer what you would do there",
                          from_host=False)
    if kind not in ACTION_KINDS:
        return ToolResult("error", f"unknown action kind {kind!r}; kinds: {_KINDS}",
                          from_host=False)
    if (problem := _shape_problem(kind, parameters)) is not None:
        _audit_invalid(ctx, kind, parameters, problem)
        return ToolResult("error", problem, from_host=False)
    shown = json.dumps(parameters)
    if redact(shown) != shown:
        # what a fix runs is stored, logged and shown to people: never a secret, and a
        # masked one would be another command than the one proposed
        return ToolResult("error", "the parameters hold what looks like a secret (a password, "
                          "a token, a key); a fix is proposed without one", from_host=False)
    if (problem := _never(ctx, kind, parameters)) is not None:
        _audit_invalid(ctx, kind, parameters, problem)
        return ToolResult("refused", problem, from_host=False)
    # the model saw masked text only; masking its words too is the second layer
    rationale = redact(rationale)
    proposal = {"kind": kind, "parameters": parameters, "rationale": rationale,
                "host": ctx.default_host}
    proposal_id = None
    if ctx.store is not None:
        proposal_id = ctx.store.add_proposal(
            ctx.incident_id, ctx.default_host, kind, json.dumps(parameters), rationale,
            advisory=ctx.advisory)
    advisory = ctx.store is None or proposal_id is None or \
        ctx.store.proposal_advisory(proposal_id)
    proposal["id"] = proposal_id
    ctx.proposals.append(proposal)
    said = f"proposal {proposal_id or len(ctx.proposals)} recorded: {kind} " \
        f"{json.dumps(parameters)} for host {ctx.default_host} ({_whose(ctx)}); nothing was " \
        "executed"
    if advisory:
        # outside an investigation the model must not believe it queued a fix
        said += ("; this is advisory only: outside an investigation a proposal is never "
                 "decided or run, a person reads it and acts on it themselves")
    return ToolResult("ok", said, from_host=False)
