"""Reachability of a managed host from here: TCP connect, and ICMP through ping."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Annotated

from pydantic import Field

from ...aio import within
from ...hosts.transport import c_locale_env
from ..context import ToolContext
from ..registry import ToolResult
from . import REGISTRY


@REGISTRY.tool()
async def check_reachability(
    ctx: ToolContext,
    host: Annotated[str, Field(description="A managed host name or address.")],
    port: Annotated[int, Field(ge=0, le=65535, description="TCP port; 0 or omit for ICMP.")] = 0,
) -> ToolResult:
    """Is a managed host reachable from here? TCP connect to a port, or one ICMP ping."""
    managed = set(ctx.transports) | {h.split("@")[-1].split(":")[0]
                                     for h in ctx.settings.remote_systems}
    if host not in managed:
        return ToolResult("refused", f"{host!r} is not a managed host; managed: "
                          f"{', '.join(sorted(managed))}", from_host=False)
    target = "127.0.0.1" if host in ctx.transports and host == ctx.default_host else host
    if port:
        started = time.monotonic()
        try:
            _, writer = await within(asyncio.open_connection(target, port), 5)
        except (OSError, TimeoutError) as exc:
            return ToolResult("ok", f"{host}:{port} is NOT reachable over TCP: {exc or 'timeout'}",
                              from_host=False)
        writer.close()
        return ToolResult("ok", f"{host}:{port} accepts TCP connections "
                          f"({(time.monotonic() - started) * 1000:.0f} ms)", from_host=False)
    argv = ["ping", "-c", "1", "-W", "2", "--", target]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=c_locale_env(os.environ))
        out, _ = await within(proc.communicate(), 10)
    except (OSError, TimeoutError) as exc:
        return ToolResult("error", f"ping could not run: {exc}", command=argv, from_host=False)
    verdict = "answers ICMP" if proc.returncode == 0 else "does NOT answer ICMP"
    return ToolResult("ok", f"{host} {verdict}\n{out.decode(errors='replace')}", command=argv)
