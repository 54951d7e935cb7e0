"""``search_knowledge`` and ``recent_config_changes``: the assistant's memory (past incidents,
operator and learned knowledge) and the config repository's history, through the
:class:`~ai_sysadmin.agent.recall.KnowledgeSource` the orchestrator put in the context."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ...errors import AiSysadminError, KnowledgeOff
from ...store import Incident
from ..context import ToolContext
from ..registry import ToolResult
from . import REGISTRY

_NO_KNOWLEDGE = "there is no knowledge base in this conversation"


def _no_search(ctx: ToolContext) -> str | None:
    if ctx.knowledge is None:
        return _NO_KNOWLEDGE
    if not ctx.knowledge.searchable:
        return str(KnowledgeOff())
    return None


def _no_history(ctx: ToolContext) -> str | None:
    if ctx.knowledge is None:
        return _NO_KNOWLEDGE
    if not ctx.knowledge.config_history:
        return "no config repository is configured (config_repo)"
    return None


def _incident(ctx: ToolContext) -> Incident | None:
    if ctx.store is None or not ctx.incident_id:
        return None
    try:
        return ctx.store.get(ctx.incident_id, history=0)
    except AiSysadminError:
        return None


@REGISTRY.tool(unavailable=_no_search)
async def search_knowledge(
    ctx: ToolContext,
    query: Annotated[str, Field(max_length=500, description=(
        "What to look for, in words (e.g. 'nginx fails after a config change'); omit for "
        "the current incident's symptoms."))] = "",
) -> ToolResult:
    """Search past incidents and their verified fixes, the operator's notes and general
    knowledge; each result says where it came from and whether it may guide an action."""
    assert ctx.knowledge is not None  # the registry runs it only where _no_search allows
    incident = _incident(ctx)
    if not query.strip() and incident is None:
        return ToolResult("error", "give a query: there is no incident in this conversation",
                          from_host=False)
    found = await ctx.knowledge.search(query.strip(), incident)
    # past incidents and notes are data (some of it once came from hosts): delimited
    return ToolResult("ok", found or "nothing relevant in the knowledge base")


@REGISTRY.tool(unavailable=_no_history)
async def recent_config_changes(
    ctx: ToolContext,
    unit: Annotated[str, Field(max_length=256, description=(
        "The unit, e.g. 'nginx.service'; omit for the current incident's unit."))] = "",
) -> ToolResult:
    """Recent commits of the configuration repository that touched what a unit is built
    from (files that define or mention its service), newest first, with their diffs."""
    assert ctx.knowledge is not None  # the registry runs it only where _no_history allows
    incident = _incident(ctx)
    wanted = unit.strip() or (incident.subject if incident is not None else "")
    if not wanted:
        return ToolResult("error", "name a unit: there is no incident in this conversation",
                          from_host=False)
    # dated against the failure when it is the incident's own unit
    failed_at = incident.opened_at if incident is not None and not unit.strip() else None
    found = await ctx.knowledge.config_changes(wanted, failed_at)
    return ToolResult("ok", found or f"no recent config changes touch {wanted}")
