"""``read_more``: the rest of a tool output that was truncated."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..context import ToolContext
from ..registry import ToolResult
from . import REGISTRY


@REGISTRY.tool()
async def read_more(
    ctx: ToolContext,
    handle: Annotated[str, Field(description="The handle given with a truncated output.")],
    offset: Annotated[int, Field(ge=0, description="Character offset to continue from.")],
) -> ToolResult:
    """Continue reading a tool output that was cut short."""
    text = ctx.outputs.get(handle)
    if text is None:
        return ToolResult("error", f"no output with handle {handle!r}", from_host=False)
    return ToolResult("ok", text[offset:] or "(nothing more)")
