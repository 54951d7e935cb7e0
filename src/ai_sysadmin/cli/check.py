"""``ai-sysadmin check`` / ``{name}-check``: one pass now, findings as a table or JSON."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from .context import banner, out, print_json, state

if TYPE_CHECKING:
    from ..orchestrator.checker import CheckReport

#: by severity label, so the monitor layer loads only when a check runs
_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def _facts(report: CheckReport) -> str:
    snap = report.snapshot
    parts = []
    if snap.os:
        parts.append(snap.os.pretty_name)
    if snap.nixos_generation:
        parts.append(f"generation {snap.nixos_generation}")
    if snap.load:
        parts.append(f"load {snap.load.one:.2f}/{snap.cores} cores")
    if snap.memory:
        parts.append(f"{snap.memory.available_percent:.0f}% memory available")
    if snap.systemd_running is False:
        parts.append("systemd: not running on this host (unit checks skipped)")
    elif snap.units is not None:
        parts.append(f"{len(snap.units)} units, {len(snap.failed_units)} failed")
    return " · ".join(parts)


def check(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Argument(
        help="A managed host (see `systems`); default: this host.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print findings as JSON.")] = False,
    no_store: Annotated[
        bool, typer.Option("--no-store", help="Do not record incidents or move the cursor.")
    ] = False,
) -> None:
    """Check this host, or a managed one, now. Exit code: 0 healthy, 1 findings, 2 error."""
    from ..orchestrator.checker import HostChecker

    app = state(ctx)
    settings = app.settings
    # remote hosts only load (and asyncssh with them) when one is asked for; the inventory of
    # managed hosts is in the store, even when this check records nothing
    runtime = app.runtime(consumer="check", store=not no_store or host is not None)
    transport = runtime.transport(host)
    checker = HostChecker(transport, settings, None if no_store else app.store,
                          consumer="check")

    async def once() -> CheckReport:
        try:
            return await checker.check("cli")
        finally:
            await transport.close()

    report = asyncio.run(once())
    code = 1 if report.findings else (2 if _nothing_collected(report) else 0)
    if as_json:
        print_json(
            {
                "name": settings.ai_name,
                "host": report.host,
                "healthy": report.healthy,
                "findings": [f.to_dict() for f in report.findings],
                "errors": report.errors,
                "incidents_opened": report.outcome.opened if report.outcome else [],
                "incidents_resolved": report.outcome.resolved if report.outcome else [],
            }
        )
        raise typer.Exit(code)
    banner(settings, f"health check of {report.host}")
    out.print(f"[dim]{_facts(report)}[/dim]")
    for section, why in report.errors.items():
        out.print(f"[yellow]not collected[/yellow] {section}: {why}")
    if not report.findings:
        out.print("[green]healthy[/green]: no findings" if not report.errors else
                  "[yellow]no findings[/yellow] in what could be collected")
        raise typer.Exit(code)
    table = Table(title=f"{len(report.findings)} finding(s)", show_lines=False)
    for column in ("severity", "rule", "subject", "summary", "evidence"):
        table.add_column(column, overflow="fold")
    for f in sorted(report.findings, key=lambda f: -f.severity):
        table.add_row(
            f"[{_STYLE.get(f.severity.label, 'bold')}]{f.severity.label}[/]", f.rule, f.subject,
            f.summary,
            "\n".join(f.evidence[:3]),
        )
    out.print(table)
    raise typer.Exit(code)


def _nothing_collected(report: CheckReport) -> bool:
    return not report.judged_rules
