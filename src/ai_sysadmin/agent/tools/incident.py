"""``incident_evidence``: the incident under investigation, its quoted evidence and history."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ...errors import NotFoundError
from ...redact import redact_cut
from ..context import ToolContext
from ..registry import ToolResult
from . import REGISTRY

#: the latest events of its history the model reads (a flapping incident gathers thousands)
HISTORY_SHOWN = 10

@REGISTRY.tool()
async def incident_evidence(
    ctx: ToolContext,
    incident_id: Annotated[
        int, Field(ge=0, lt=1 << 62, description="Incident number; 0 for the current.")
    ] = 0,
) -> ToolResult:
    """The incident being investigated: rule, subject, severity, quoted evidence, history."""
    wanted = incident_id or ctx.incident_id
    if ctx.store is None or not wanted:
        return ToolResult("error", "there is no incident in this conversation", from_host=False)
    try:
        incident = ctx.store.get(wanted, history=HISTORY_SHOWN)
    except NotFoundError as exc:
        return ToolResult("error", str(exc), from_host=False)
    lines = [
        f"incident #{incident.id} on {incident.host}: rule {incident.rule}, severity "
        f"{incident.severity}, state {incident.state}, seen {incident.occurrences} time(s)",
        f"subject: {incident.subject}",
        f"summary: {incident.summary}",
        "evidence:",
        *[f"  {line}" for line in incident.evidence],
        "history:",
        *([f"  ({incident.earlier_events} earlier event(s) not shown)"]
          if incident.earlier_events else []),
        *[redact_cut(f"  {e.kind} {e.from_state or ''}->{e.to_state or ''} {e.detail}", 300)
          for e in incident.events],
    ]
    # what the knowledge base recalls is the program's, after the host's block: inside
    # it, a journal line the incident quotes could pose as an operator's note
    recalled = ctx.recalled if ctx.recalled and wanted == ctx.incident_id else ""
    return ToolResult("ok", "\n".join(lines), ours=recalled)
