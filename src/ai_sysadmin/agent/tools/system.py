"""Read-only tools about the state of a host: metrics, units, the journal, processes, disks."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Annotated, Literal

from pydantic import Field

from ...monitor.collector import Collector
from ...monitor.parsers import PS_COLUMNS, parse_ps
from ...monitor.snapshot import Mount
from ...redact import redact_cut
from ...safety.file_policy import normalise
from ...safety.units import normalise_unit
from ..context import ToolContext
from ..registry import ToolResult
from . import REGISTRY
from .common import Host, no_host, reader_may_list, run_readonly_argv

Unit = Annotated[str, Field(description="systemd unit name, e.g. 'nginx.service'.")]
_SINCE = re.compile(
    r"^(-\d{1,5}(s|m|min|h|d)|today|yesterday|\d{4}-\d\d-\d\d( \d\d:\d\d(:\d\d)?)?)$"
)


#: what the snapshot does not show and costs the host most: systemd works out every unit
#: file's state for the listing (2 ms of its CPU a file, 2 s on a host of a thousand)
_SNAPSHOT_LEAVES_OUT = frozenset({"unit_files"})


def _bad_unit(unit: str) -> ToolResult:
    return ToolResult("error", f"{unit!r} is not a valid systemd unit name", from_host=False)


def _writes(mount: Mount) -> str:
    """What the mount table says of a mount's writes, for the model."""
    if mount.stopped:
        return f", writes stopped by the kernel after an error ({mount.stopped})"
    if mount.read_only and mount.view_read_only is False:
        return ", read-only file system under a read-write mount"
    return ", read-only" if mount.read_only else ""


@REGISTRY.tool()
async def snapshot(ctx: ToolContext, host: Host = "") -> ToolResult:
    """Current health metrics of a host: load, memory, swap, disks, failed units, uptime, OS."""
    transport = ctx.transport(host)
    if transport is None:
        return no_host(ctx, host)
    snap = await Collector(transport, ctx.settings).collect(left_out=_SNAPSHOT_LEAVES_OUT)
    lines = [f"host: {snap.host}"]
    if snap.os:
        lines.append(f"os: {snap.os.pretty_name}")
    if snap.nixos_generation:
        lines.append(f"nixos generation: {snap.nixos_generation}")
    if snap.uptime_seconds is not None:
        lines.append(f"uptime: {snap.uptime_seconds / 3600:.1f} h")
    if snap.load:
        lines.append(f"load: {snap.load.one} {snap.load.five} {snap.load.fifteen} "
                     f"on {snap.cores} cores")
    if snap.memory:
        m = snap.memory
        arc = (f" (+{m.arc_reclaimable_kb // 1024} MiB the ZFS ARC can give back)"
               if m.arc_reclaimable_kb else "")
        lines.append(f"memory: {m.available_kb // 1024} MiB available{arc} of "
                     f"{m.total_kb // 1024} MiB; swap free {m.swap_free_kb // 1024} of "
                     f"{m.swap_total_kb // 1024} MiB")
    for mount in snap.mounts or []:
        lines.append(f"disk {mount.target}: {mount.used_percent:.1f}% used, "
                     f"{mount.inodes_percent:.1f}% inodes ({mount.fstype}"
                     f"{_writes(mount)})")
    if snap.systemd_running is False:
        lines.append("systemd: not running")
    elif snap.collected("units"):
        failed = [u.name for u in snap.failed_units]
        lines.append(f"failed units: {', '.join(failed) if failed else 'none'}")
    else:
        # "none" here would be a healthy host the model was never shown
        lines.append("failed units: unknown (the units were not collected)")
    for section, why in snap.errors.items():
        lines.append(f"not collected: {section}: {why}")
    for section, note in snap.notes.items():
        lines.append(f"note: {section}: {note}")
    return ToolResult("ok", "\n".join(lines))


@REGISTRY.tool()
async def failed_units(ctx: ToolContext, host: Host = "") -> ToolResult:
    """List the systemd units that are in the failed state."""
    return await run_readonly_argv(
        ctx, host, ["systemctl", "list-units", "--failed", "--no-pager",
                    "--plain", "--no-legend"],
    )


@REGISTRY.tool()
async def unit_status(ctx: ToolContext, unit: Unit, host: Host = "") -> ToolResult:
    """Status of one systemd unit: state, main PID, recent log lines, restart count."""
    name = normalise_unit(unit)
    if name is None:
        return _bad_unit(unit)
    systemctl = "systemctl"
    status = await run_readonly_argv(
        ctx, host, [systemctl, "status", "--no-pager", "--lines=15", "--", name])
    show = await run_readonly_argv(
        ctx, host, [systemctl, "show", "--no-pager", "--property=LoadState,ActiveState,SubState,"
                    "Result,NRestarts,ExecMainStatus,FragmentPath,UnitFileState", "--", name])
    # systemctl status exits 3 for an inactive unit: that is an answer, not an error
    status_ok = status.status != "refused" and status.output
    # the properties first: status ends with the unit's newest log lines
    return ToolResult("ok" if status_ok else status.status,
                      f"{show.output}\n{status.output}", command=status.command,
                      newest_last=True)


@REGISTRY.tool()
async def journal(
    ctx: ToolContext,
    unit: Annotated[str, Field(description="Only this unit's entries; omit for all.")] = "",
    priority: Annotated[
        Literal["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"],
        Field(description="This priority and worse."),
    ] = "info",
    since: Annotated[str, Field(description="'-1h', '-30min', 'today' or 'YYYY-MM-DD HH:MM'.")]
    = "-1h",
    lines: Annotated[int, Field(ge=1, le=500, description="Newest entries to show.")] = 50,
    host: Host = "",
) -> ToolResult:
    """Read the systemd journal, newest entries last."""
    if not _SINCE.match(since):
        return ToolResult("error", f"since={since!r}: use '-1h', '-30min', 'today' or a date",
                          from_host=False)
    # newest first, turned back here: with --since, --lines counts from the window's start
    # (journalctl seeks there), and a busy day showed its first hour's lines, never the last
    argv = ["journalctl", "--no-pager", "--output=short-iso", "--reverse",
            f"--priority={priority}", f"--since={since}", f"--lines={lines}"]
    if unit:
        name = normalise_unit(unit)
        if name is None:
            return _bad_unit(unit)
        argv.append(f"--unit={name}")
    result = await run_readonly_argv(ctx, host, argv)
    if result.status == "ok":
        result = replace(result, output=oldest_first(result.output))
    return replace(result, newest_last=True)


def oldest_first(newest_first: str) -> str:
    """journalctl --reverse's entries in the order they were written: an entry is its line
    and the indented lines of a message of several lines after it."""
    entries: list[list[str]] = []
    for line in newest_first.split("\n"):
        if line[:1].isspace() and entries:
            entries[-1].append(line)
        elif line:
            entries.append([line])
    return "\n".join(line for entry in reversed(entries) for line in entry) + (
        "\n" if newest_first.endswith("\n") else "")


@REGISTRY.tool()
async def top_processes(
    ctx: ToolContext,
    sort_by: Annotated[Literal["cpu", "memory"], Field(description="Order.")] = "cpu",
    count: Annotated[int, Field(ge=1, le=50)] = 10,
    host: Host = "",
) -> ToolResult:
    """The processes using the most CPU or memory."""
    key = "--sort=-pcpu" if sort_by == "cpu" else "--sort=-rss"
    result = await run_readonly_argv(
        ctx, host, ["ps", "-e", "-o", PS_COLUMNS, key])
    if result.status != "ok":
        return result
    rows = parse_ps(result.output)[:count]
    text = "\n".join(
        f"pid {p.pid} user {p.user} cpu {p.cpu_percent}% mem {p.mem_percent}% "
        f"rss {p.rss_kb} kB age {p.elapsed_seconds}s: {redact_cut(p.command, 200)}"
        for p in rows
    )
    return ToolResult("ok", text, command=result.command)


@REGISTRY.tool()
async def disk_usage(
    ctx: ToolContext,
    path: Annotated[str, Field(description="Absolute directory path.")] = "/",
    host: Host = "",
) -> ToolResult:
    """Space used by each directory directly under a path (one file system), largest first."""
    clean = normalise(path)
    if clean is None or ".." in path.split("/"):
        return ToolResult("error", f"{path!r}: give an absolute path without '..'",
                          from_host=False)
    if ctx.transport(host) is None:
        return no_host(ctx, host)
    # the directories inside are named only where the reading identity may list them; root
    # measures either way
    listed = await reader_may_list(ctx, host, [clean])
    depth = "--max-depth=1" if listed else "--max-depth=0"
    result = await run_readonly_argv(
        ctx, host, ["du", "-x", "-k", depth, "--", clean], timeout=60)
    rows = []
    for line in result.output.splitlines():
        size, _, name = line.partition("\t")
        if size.isdigit():
            rows.append((int(size), name))
    if not rows:
        return result
    rows.sort(reverse=True)
    text = "\n".join(f"{size // 1024:>8} MiB  {name}" for size, name in rows[:30])
    if not listed:
        text += (f"\n(the total only: the reading identity may not list {clean}, so what is "
                 "inside it is not named)")
    return ToolResult(result.status, text, command=result.command)
