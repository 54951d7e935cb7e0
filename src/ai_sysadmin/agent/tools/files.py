"""Read-only file tools, behind the file policy (symlinks resolved on the host first)."""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import Field

from ...errors import TransportError
from ...hosts.transport import CommandResult, LocalTransport
from ...monitor.findings import readable
from ...redact import CUT_MARGIN, redact_cut
from ...safety.file_policy import check_read, holds_private_key, path_problem, path_to_read
from ...safety.read_script import EXIT_NOT_REGULAR, EXIT_SWAPPED, not_regular, opened, read_argv
from ..context import ToolContext
from ..registry import ToolResult
from . import REGISTRY
from .common import Host, no_host, run_readonly_argv

Path = Annotated[str, Field(description="Absolute path on the host.")]


async def _allowed(ctx: ToolContext, host: str, path: str) -> tuple[ToolResult | None, str]:
    """(refusal or None, the symlink-resolved path to use)."""
    transport = ctx.reader(host)  # resolved as the identity that will read it
    if transport is None:
        return no_host(ctx, host), path
    problem = path_problem(path)
    if problem:  # nothing runs on the host with a path the policy already refuses
        return ToolResult("refused", f"refused by policy: {problem}", from_host=False), path
    resolved = None
    try:
        done = await transport.run(
            [ctx.programs(host).readlink, "-f", "--", path], ctx.settings.command_timeout)
        resolved = done.stdout.strip() if done.ok else None
    except TransportError:
        resolved = None
    if resolved is None and path_problem(path) is None and not _policy_refuses(path, ctx):
        return ToolResult("error", f"cannot reach {path} as the reading identity (a directory "
                          "on the way is missing, or it may not enter it)",
                          from_host=False), path
    decision = check_read(path, resolved, ctx.own_secrets)
    if not decision.allowed:
        # the reason may quote where the link led: a name whoever made the link chose
        return ToolResult("refused", f"refused by policy: {decision.reason}",
                          from_host=resolved not in (None, path)), path
    if resolved and isinstance(ctx.transport(host), LocalTransport) and _own_secret_inode(
            resolved, ctx):
        return ToolResult("refused", f"refused by policy: {path} is one of the assistant's own "
                          "secrets under another name (a hard link or a bind mount)",
                          from_host=False), path
    return None, path_to_read(path, resolved)


def _own_secret_inode(path: str, ctx: ToolContext) -> bool:
    """The assistant's own secret files are found by what they are (device and inode), not
    only by name: a hard link or a bind mount elsewhere is the same file."""
    try:
        seen = os.stat(path)
    except OSError:
        return False
    for secret in ctx.own_secrets:
        try:
            own = os.stat(secret)
        except OSError:
            continue
        if (own.st_dev, own.st_ino) == (seen.st_dev, seen.st_ino):
            return True
    return False


def _policy_refuses(path: str, ctx: ToolContext) -> bool:
    """Whether the requested path alone is refused: then that refusal is the answer, not the
    unreachable directory (a secret's path says nothing more than "refused")."""
    return not check_read(path, path, ctx.own_secrets).allowed


@REGISTRY.tool()
async def read_file(
    ctx: ToolContext,
    path: Path,
    max_bytes: Annotated[int, Field(ge=1, le=200_000)] = 20_000,
    host: Host = "",
) -> ToolResult:
    """Read a text file (configs, logs). Secrets such as shadow files and private keys are
    refused."""
    refused, resolved = await _allowed(ctx, host, path)
    if refused:
        return refused
    transport = ctx.reader(host)
    assert transport is not None
    # read what the policy judged (the resolved path), opened once on the host, and judge
    # again the file that was opened: a swap since the check cannot redirect the read
    # more than asked, masked, then cut: cut on the host, a token at the cut would match no
    # pattern, and a max_bytes ending one character into it showed all the rest of it
    argv = read_argv(resolved, max_bytes + CUT_MARGIN, ctx.programs(host).sh)
    try:
        result = await transport.run(argv, ctx.settings.command_timeout)
    except TransportError as exc:  # it may quote the host's stderr
        return ToolResult("error", str(exc), command=argv)
    # where a link led, the name read (in the answer and in its command) is one that whoever
    # made the link chose: host text, fenced as such
    return _judged(ctx, resolved, argv, result, named_by_host=resolved != path,
                   limit=max_bytes)


def _judged(ctx: ToolContext, resolved: str, argv: list[str], result: CommandResult,
            named_by_host: bool, limit: int) -> ToolResult:
    """read_file's answer from what the read script printed: the file the host opened must
    pass the file policy too, and hold no private key; its first ``limit`` characters, masked
    before they are cut."""
    if result.returncode == EXIT_NOT_REGULAR:
        return ToolResult("refused", f"refused: {not_regular(resolved, result.stdout)}",
                          command=argv, from_host=named_by_host)
    if result.returncode == EXIT_SWAPPED:
        return ToolResult("refused", f"refused by policy: {resolved} was replaced by a file "
                          "that is not a regular file while it was being opened",
                          command=argv, from_host=named_by_host)
    if not result.ok:
        return ToolResult("error", result.stderr.strip() or "cannot read", command=argv)
    read = opened(result.stdout)
    if read is None:
        return ToolResult("error", "cannot tell which file the host opened (is /proc "
                          "mounted?)", command=argv, from_host=named_by_host)
    decision = check_read(read.path, read.path, ctx.own_secrets)
    if not decision.allowed:
        # the reason quotes the name the file really has: whoever swapped it chose it
        return ToolResult("refused", f"refused by policy: {resolved} was swapped while it was "
                          f"read; what was opened: {decision.reason}", command=argv)
    if holds_private_key(read.text):
        return ToolResult("refused", "refused by policy: the file holds a private key",
                          command=argv, from_host=named_by_host)
    # its control characters go before it is masked (a name split by one is read whole)
    return ToolResult("ok", redact_cut(readable(read.text), limit) or "(empty file)",
                      command=argv)


@REGISTRY.tool()
async def list_directory(ctx: ToolContext, path: Path, host: Host = "") -> ToolResult:
    """List a directory with sizes, owners and modification times."""
    refused, resolved = await _allowed(ctx, host, path)
    if refused:
        return refused
    return await run_readonly_argv(
        ctx, host, ["ls", "-la", "--time-style=long-iso", "--", resolved])
