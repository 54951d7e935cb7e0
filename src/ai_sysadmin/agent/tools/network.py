"""Reachability of a managed host from here: TCP connect, and ICMP through ping."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from pydantic import Field

from ...aio import within
from ...errors import TransportError
from ...hosts.inventory import configured_hosts
from ...hosts.transport import LocalTransport
from ..context import ToolContext
from ..registry import ToolResult
from . import REGISTRY

#: seconds a ping may take, name resolution included
PING_TIMEOUT = 10.0
#: seconds a TCP connection may take to open
TCP_TIMEOUT = 5.0
#: run by its name from this machine's PATH, as the NixOS unit's ``path`` must provide it
PING = "ping"


def _address(ctx: ToolContext, host: str, configured: dict[str, str]) -> str:
    """Where ``host`` is reached from here: the address its SSH connection goes to, the
    configured one, or the loopback for this host (and for a lab on it, whose transport
    connects from inside its network, where the loopback is the lab's)."""
    transport = ctx.transports.get(host)
    if transport is not None and transport.address is not None:
        return transport.address
    if host in configured:
        return configured[host]
    return "127.0.0.1" if transport is not None else host


@REGISTRY.tool()
async def check_reachability(
    ctx: ToolContext,
    host: Annotated[str, Field(description="A managed host name or address.")],
    port: Annotated[int, Field(ge=0, le=65535, description="TCP port; 0 or omit for ICMP.")] = 0,
) -> ToolResult:
    """Is a managed host reachable from here? TCP connect to a port, or one ICMP ping."""
    # a configured host by its shown name or its address; what is reached is the address
    specs = configured_hosts(ctx.settings)
    address = {spec.name: spec.host for spec in specs} | {spec.host: spec.host for spec in specs}
    managed = set(ctx.transports) | set(address)
    if host not in managed:
        return ToolResult("refused", f"{host!r} is not a managed host; managed: "
                          f"{', '.join(sorted(managed))}", from_host=False)
    target = _address(ctx, host, address)
    # from this machine, whichever host the investigation is about; a lab on it has a network
    # of its own, whose transport connects and pings from in there
    transport = ctx.transports.get(host)
    if port:
        started = time.monotonic()
        try:
            if transport is not None:
                await transport.connect_tcp(target, port, TCP_TIMEOUT)
            else:
                _, writer = await within(asyncio.open_connection(target, port), TCP_TIMEOUT)
                writer.close()
        except TransportError as exc:
            return ToolResult("error", f"{host}:{port} could not be probed: {exc}",
                              from_host=False)
        except (OSError, TimeoutError) as exc:
            return ToolResult("ok", f"{host}:{port} is NOT reachable over TCP: {exc or 'timeout'}",
                              from_host=False)
        return ToolResult("ok", f"{host}:{port} accepts TCP connections "
                          f"({(time.monotonic() - started) * 1000:.0f} ms)", from_host=False)
    argv = [PING, "-c", "1", "-W", "2", "--", target]
    # on a timeout (a name that takes long to resolve: -W bounds the reply only) ping is
    # killed, not left behind
    pinger = transport.pinger() if transport is not None else LocalTransport()
    try:
        result = await pinger.run(argv, timeout=PING_TIMEOUT)
    except TransportError as exc:
        return ToolResult("error", f"ping could not run: {exc}", command=argv, from_host=False)
    if result.returncode in (126, 127):
        # ping itself says no reply by 1 (2: another error): this is the program not there or
        # not runnable (the fault lab's nsenter found none in the lab), no verdict on the host
        return ToolResult("error", f"ping could not run: {result.stderr.strip()}",
                          command=argv, from_host=False)
    verdict = "answers ICMP" if result.ok else "does NOT answer ICMP"
    return ToolResult("ok", f"{host} {verdict}\n{result.stdout}{result.stderr}", command=argv)
