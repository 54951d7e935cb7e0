"""``propose_action``: the model's only way to suggest a fix. It is recorded, never executed
here; deciding and executing belong to the safety layer and the executor."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field

from ...safety.actions import ACTION_KINDS
from ..context import ToolContext
from ..registry import ToolResult
from . import REGISTRY

_KINDS = ", ".join(sorted(ACTION_KINDS))


@REGISTRY.tool()
async def propose_action(
    ctx: ToolContext,
    kind: Annotated[str, Field(description=f"One of: {_KINDS}.")],
    parameters: Annotated[
        dict[str, Any], Field(description="e.g. {'unit': 'nginx.service'} for restart_unit.")
    ],
    rationale: Annotated[str, Field(min_length=1, max_length=2000,
                                    description="Why this fixes the incident, citing evidence.")],
) -> ToolResult:
    """Propose one remediation action for the incident. It is recorded for the policy and a
    person to decide; nothing runs now."""
    if kind not in ACTION_KINDS:
        return ToolResult("error", f"unknown action kind {kind!r}; kinds: {_KINDS}",
                          from_host=False)
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
        f"{json.dumps(parameters)}; nothing was executed"
    if advisory:
        # outside an investigation the model must not believe it queued a fix
        said += ("; this is advisory only: outside an investigation a proposal is never "
                 "decided or run, a person reads it and acts on it themselves")
    return ToolResult("ok", said, from_host=False)
