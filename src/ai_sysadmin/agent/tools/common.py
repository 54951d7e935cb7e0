"""Shared plumbing: resolve the host, check the argv against policy, run it, shape the result."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ...errors import TransportError
from ...hosts.transport import Transport, output_limit
from ...safety.command_policy import as_run, check_readonly
from ...safety.privilege import devices_opened, listed_by_root, opened_not_block, root_reason
from ..context import ToolContext
from ..registry import ToolResult

#: the most of a stream a diagnostic of the model's may print before it is stopped: eight
#: times what a conversation keeps of one output (``loop.MAX_KEPT_CHARS``, a million
#: characters), where a check's commands may print 256 MiB (``MAX_OUTPUT``), all of it held
#: in memory at once; a bare `journalctl` or `find /` asks for less instead
READ_LIMIT = 8 << 20

# plain strings with "" for "not given": small models handle them better than nullable types
Host = Annotated[str, Field(description="Managed host to look at; omit for the incident's host.")]


def no_host(ctx: ToolContext, host: str | None) -> ToolResult:
    known = ", ".join(sorted(ctx.transports))
    # the default, which the model need not name: "unknown host ''" told nothing
    if not host or host == ctx.default_host:
        return ToolResult("error", f"host {ctx.default_host!r}, the one this conversation is "
                          f"about, is no longer managed here; managed hosts: {known}",
                          from_host=False)
    return ToolResult("error", f"unknown host {host!r}; managed hosts: {known}", from_host=False)


async def run_readonly_argv(
    ctx: ToolContext, host: str | None, argv: list[str], timeout: float | None = None
) -> ToolResult:
    transport = ctx.transport(host)
    if transport is None:
        return no_host(ctx, host)
    decision = check_readonly(argv)
    if not decision.allowed:
        return ToolResult("refused", f"refused by policy: {decision.reason}", command=argv,
                          from_host=False)
    argv = as_run(argv)  # what runs: --no-pager for the systemd tools that page
    # the policy judges bare program names; the configured path (a Nix store path, say) is
    # substituted only after it said yes
    program = ctx.settings.on_host(transport.local_programs).programs.resolve(argv[0])
    if (why := await _devices_problem(ctx, host, argv)) is not None:
        return ToolResult("refused", f"refused: {why}", command=argv, from_host=False)
    runner = await _runner(ctx, host, transport, argv)
    try:
        with output_limit(READ_LIMIT):
            result = await runner.run([program, *argv[1:]],
                                      timeout or ctx.settings.command_timeout)
    except TransportError as exc:  # it may quote the host's stderr
        return ToolResult("error", str(exc), command=argv)
    text = result.stdout
    if result.stderr.strip():
        text += ("\n" if text else "") + "[stderr]\n" + result.stderr
    status = "ok" if result.ok else "error"
    if not result.ok:
        text = f"[exit code {result.returncode}]\n{text}"
    return ToolResult(status, text or "(no output)", command=argv)


async def reader_may_list(ctx: ToolContext, host: str | None, paths: list[str]) -> bool:
    """Whether the reading identity reaches each of ``paths`` and may list those that are
    directories (the names inside them are then its to see, whoever measures them)."""
    reader = ctx.reader(host)
    assert reader is not None
    find = ctx.programs(host).resolve("find")
    # -H: a symlink named here is judged by the directory it leads to, as du -D would read it
    argv = [find, "-H", *paths, "-maxdepth", "0", "-type", "d", "!", "-readable", "-print"]
    try:
        done = await reader.run(argv, ctx.settings.command_timeout)
    except TransportError:
        return False
    return done.ok and not done.stdout.strip()


async def _devices_problem(ctx: ToolContext, host: str | None, argv: list[str]) -> str | None:
    """Why the devices this root diagnostic would open may not be opened (one that is not a
    block device, or one the host could not describe); None when it opens none or only block
    devices. The reading identity looks: it may stat what root would open."""
    devices = devices_opened(argv)
    if not devices or root_reason(argv) is None:
        return None
    reader = ctx.reader(host)
    assert reader is not None
    find = ctx.programs(host).resolve("find")
    # -H: a symlink named here (/dev/disk/by-id/...) is judged by the device it leads to, as
    # the open would follow it
    look = [find, "-H", *devices, "-maxdepth", "0", "!", "-type", "b", "-printf", "%p\t%Y\n"]
    # the refusal is the policy's words, so no host text goes into it (find's stderr)
    unknown = (f"cannot tell whether {', '.join(devices)} are block devices (missing, or "
               "the reading identity cannot see them), and mdadm would open them as root")
    try:
        done = await reader.run(look, ctx.settings.command_timeout)
    except TransportError:
        return unknown
    if not done.ok:
        return unknown
    return opened_not_block(done.stdout)


async def _runner(ctx: ToolContext, host: str | None, transport: Transport,
                  argv: list[str]) -> Transport:
    """The reading identity, unless root is named for this diagnostic (metadata, no contents)
    and the reader may list every directory whose entries it names as root."""
    reader = ctx.reader(host)
    assert reader is not None
    if root_reason(argv) is None:
        return reader
    listed = listed_by_root(argv)
    if listed and not await reader_may_list(ctx, host, list(listed)):
        return reader
    return transport
