"""``run_readonly``: any command on the read-only allow-list, as an argv (never a shell line)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..context import ToolContext
from ..registry import ToolResult
from . import REGISTRY
from .common import Host, run_readonly_argv


@REGISTRY.tool()
async def run_readonly(
    ctx: ToolContext,
    argv: Annotated[
        list[str],
        Field(min_length=1, max_length=33,
              description="Program and arguments as a list, e.g. ['systemctl', 'status', "
              "'nginx.service']. Read-only programs only; no shell."),
    ],
    host: Host = "",
) -> ToolResult:
    """Run a read-only diagnostic command (systemctl status, journalctl -u UNIT -n 50, df, ss,
    ip a, ps aux, lsof -i :PORT, sysctl NAME, top -b -n 1, nft list ruleset, du, ls,
    journalctl -k for kernel messages ...). No pager runs. Anything that changes the host is
    refused."""
    return await run_readonly_argv(ctx, host, list(argv))
