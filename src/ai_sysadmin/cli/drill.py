"""``ai-sysadmin drill [SCENARIO]``: fire drills in the fault lab (root only)."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import LabError
from ..lab import list_scenarios, load_scenario, run_scenario
from .context import banner, cell, esc, out, print_json, state


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def drill(
    ctx: typer.Context,
    scenario: Annotated[str | None, typer.Argument(help="Scenario name; all when omitted.")]
    = None,
    list_only: Annotated[bool, typer.Option("--list", help="List the scenarios.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Inject a fault into a throw-away systemd and measure the time to detect and recover."""
    settings = state(ctx).settings
    scenarios = [load_scenario(scenario)] if scenario else list_scenarios()
    if list_only:
        if as_json:
            print_json([{"name": s.name, "description": s.description} for s in scenarios])
            return
        for s in scenarios:
            out.print(f"[bold]{esc(s.name)}[/bold]: {esc(' '.join(s.description.split()))}",
                      markup=True)
        return
    if os.geteuid() != 0:
        raise LabError("the fault lab needs root (it boots systemd in private namespaces)")
    results = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=out, transient=True, disable=as_json) as progress:
        for s in scenarios:
            task = progress.add_task(f"{s.name}: starting", total=None)
            results.append(run_scenario(
                s, settings,
                progress_callback=lambda msg, t=task, n=s.name: progress.update(
                    t, description=f"{n}: {msg}"),
            ))
            progress.remove_task(task)
    if as_json:
        print_json([r.to_dict() for r in results])
    else:
        banner(settings, f"{len(results)} fire drill(s) in the fault lab")
        table = Table()
        for column in ("scenario", "result", "time to detect", "time to recover", "findings"):
            table.add_column(column, overflow="fold")
        for r in results:
            verdict = cell("ok", "green") if r.ok else cell("FAILED", "red")
            seen = ", ".join(f"{f.rule} {f.subject}" for f in r.findings) or "none"
            problems = [*r.errors, *(f"missing {m}" for m in r.missing),
                        *(f"unexpected {f.rule} {f.subject}" for f in r.unexpected)]
            table.add_row(r.scenario, verdict + ("\n" + "\n".join(problems) if problems else ""),
                          _seconds(r.time_to_detect), _seconds(r.time_to_recover), seen)
        out.print(table)
    raise typer.Exit(0 if all(r.ok for r in results) else 1)
