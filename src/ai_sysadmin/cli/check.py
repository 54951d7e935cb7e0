"""``ai-sysadmin check`` / ``{name}-check``: one pass now, findings as a table or JSON; ``--all``:
every managed host at once, a short block each and one summary line."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.table import Table

from ..errors import AiSysadminError
from ..monitor.findings import masked
from .context import AppState, banner, cell, esc, name_order, out, print_json, state

if TYPE_CHECKING:
    from collections.abc import Collection

    from ..orchestrator.checker import CheckReport, HostChecker
    from ..orchestrator.runtime import Runtime

log = logging.getLogger("ai_sysadmin.service")
#: by severity label, so the monitor layer loads only when a check runs
_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
#: the rule that says nothing at all could be collected (monitor/rules/host_unreachable.py)
UNREACHABLE = "host_unreachable"
#: the most of one section's error (or note) a line shows; --json gives all of it, masked
SHOWN = 500


def _facts(report: CheckReport) -> str:
    snap = report.snapshot
    parts = []
    if snap.os:
        parts.append(masked(snap.os.pretty_name))  # the host's words for itself
    if snap.nixos_generation:
        parts.append(f"generation {snap.nixos_generation}")
    if snap.load:
        parts.append(f"load {snap.load.one:.2f}/{snap.cores} cores")
    if snap.memory:
        parts.append(f"{snap.memory.available_percent:.0f}% memory available")
    if snap.systemd_running is False:
        parts.append("systemd: not running")  # what was not checked: its note, below
    elif snap.units is not None:
        parts.append(f"{len(snap.units)} units, {len(snap.failed_units)} failed")
    return " · ".join(parts)


def unreachable_reason(report: CheckReport) -> str | None:
    """Why nothing could be collected, said once (every section failed the same way), or None
    when the host answered."""
    if not any(f.rule == UNREACHABLE for f in report.findings):
        return None
    return unreachable_words(report.errors)


def unreachable_words(errors: dict[str, str]) -> str:
    """Why an unreachable host answered nothing, from the errors of its sections."""
    from ..monitor.findings import quote

    first = next(iter(errors.values()), "no answer")
    # "'cat -- /proc/stat': no answer: cannot connect ...": the command is noise here; the
    # rest is host text (an SSH server's words), masked as every error a check shows
    return quote(first.rsplit(": no answer: ", 1)[-1], SHOWN)


def refused_reason(report: CheckReport) -> str | None:
    """Why the host ran none of the check though it answered (its login shell is nologin),
    in its own words; None where it ran it. Every section it cost holds these words, as the
    collector keeps a section's error: without the host's name."""
    refused = report.snapshot.refused
    return None if refused is None else refused.removeprefix(f"{report.host}: ")


def exit_code(report: CheckReport) -> int:
    """0 healthy: every section collected and nothing found; 1 findings (an unreachable host
    is one), whatever else; 2 no findings, but part or all of the host was not collected or
    not judged (what was found before and this check could not judge, a mount df could not
    read or a rule that needs an earlier look: :attr:`CheckReport.kept`, counts).

    A section that was not collected was not judged: a host whose disks nobody measured is
    not known to be healthy, and a script reading the exit code must not take it for one."""
    if report.findings:
        return 1
    return 0 if report.healthy and report.judged_rules else 2


def fleet_exit_code(codes: list[int]) -> int:
    """The worst host's code, in the order a single host's is decided: findings anywhere
    (1), else any host not fully collected (2), else 0."""
    return 1 if 1 in codes else max(codes, default=0)


def _as_dict(report: CheckReport) -> dict[str, Any]:
    return {
        "host": report.host,
        "healthy": report.healthy,
        # a host this machine did not ask is neither (as `systems refresh --json` says)
        "reachable": None if report.snapshot.unasked is not None
        else unreachable_reason(report) is None,
        "refused": refused_reason(report),
        # this machine asked it nothing: its own open files ran out
        "not_asked": report.snapshot.unasked,
        "findings": [f.to_dict() for f in report.findings],
        "errors": report.errors,
        "notes": report.notes,
        "kept": [{"rule": rule, "subject": masked(subject)} for rule, subject in report.kept],
        "incidents_opened": report.outcome.opened if report.outcome else [],
        # found again after it was resolved: news as much as a new one
        "incidents_reopened": report.outcome.reopened if report.outcome else [],
        "incidents_resolved": report.outcome.resolved if report.outcome else [],
        # the fixes of those that waited for a person's yes, withdrawn with them
        "actions_withdrawn": report.outcome.withdrawn if report.outcome else [],
    }


def _failed_dict(host: str, why: str) -> dict[str, Any]:
    """A host whose check raised, in the shape of every other host's entry (a script reading
    ``findings`` of each host broke exactly when the fleet had trouble): it judged nothing,
    and why is its ``check`` error (and ``error``, as before)."""
    why = masked(why)
    return {"host": host, "healthy": False, "reachable": None, "refused": None,
            "not_asked": None, "findings": [], "errors": {"check": why}, "notes": {},
            "kept": [], "incidents_opened": [], "incidents_reopened": [],
            "incidents_resolved": [], "actions_withdrawn": [], "error": why}


def check(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Argument(
        metavar="HOST", help="A managed host (see `systems`); default: this host.",
        show_default=False)] = None,
    all_hosts: Annotated[bool, typer.Option(
        "--all", "-a", help="Every managed host at once; the exit code is the worst host's: "
        "1 if any has findings, else 2 if any was not fully collected or its check failed "
        "(said on its line), else 0.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    no_store: Annotated[
        bool, typer.Option("--no-store", help="Do not record incidents or move the cursor.")
    ] = False,
) -> None:
    """Check this host, a managed one, or all of them, now. Exit code: 0 healthy (everything
    collected, nothing found), 1 findings (an unreachable host is one), 2 no findings but a
    part not collected (nothing judged there) or an open incident this check could not judge
    (its rule needs an earlier look), or an error."""
    app = state(ctx)
    if all_hosts:
        if host is not None:
            raise AiSysadminError("give a host or --all, not both")
        raise typer.Exit(_check_all(app, as_json, no_store))
    # remote hosts only load (and asyncssh with them) when one is asked for; the inventory of
    # managed hosts is in the store, even when this check records nothing
    runtime = app.runtime(consumer="check", store=not no_store or host is not None)
    checker = _checker(app, runtime, host, no_store)
    [report] = asyncio.run(_sweep(runtime, [checker]))
    if isinstance(report, AiSysadminError):
        raise report
    if isinstance(report, Exception):
        raise AiSysadminError(f"the check of {checker.host} failed: "
                              f"{failed_words(app, checker.host, report)}") from report
    code = exit_code(report)
    if as_json:
        print_json({"name": app.settings.ai_name, **_as_dict(report)})
        raise typer.Exit(code)
    banner(app.settings, f"health check of {report.host}")
    _print_report(report)
    raise typer.Exit(code)


def _checker(app: AppState, runtime: Runtime, host: str | None, no_store: bool) -> HostChecker:
    from ..orchestrator.checker import HostChecker

    return HostChecker(runtime.transport(host), app.settings, None if no_store else app.store,
                       consumer="check")


def _crash_said(app: AppState, host: str, exc: Exception) -> str:
    """A check that raised (a bug): its traceback kept in the service log, masked as every
    record is, and the one line a person reads, which says where to find it. Its words may
    quote the host's (a value a parser could not read): the line is masked where shown."""
    said = f"{type(exc).__name__}: {exc}"
    if not app.log_to_files():
        return said
    log.error("the check of %s raised %s", host, said, exc_info=exc,
              extra={"host": host, "event": "check_raised"})
    return f"{said} (its traceback: `{app.settings.ai_name}-logs service`)"


async def _sweep(runtime: Runtime,
                 checkers: list[HostChecker]) -> list[CheckReport | Exception]:
    """Every checker at once (they share ``check_concurrency``); then close the connections
    (the runtime's transports, which the checkers use), which belong to this event loop. A
    check that raised is its host's answer; an interrupt ends the command."""
    try:
        # every check ends before the connections close: one that raised would otherwise
        # leave the others running into the loop's end, which can wait on them for ever
        reports = await asyncio.gather(*(c.check("cli") for c in checkers),
                                       return_exceptions=True)
    finally:
        await runtime.close()
    for report in reports:
        if isinstance(report, BaseException) and not isinstance(report, Exception):
            raise report
    return cast("list[CheckReport | Exception]", reports)


def failed_words(app: AppState, host: str, exc: Exception) -> str:
    """Why the check of ``host`` raised, for its line: a bug's words in one line, masked where
    shown as every error line is (they may quote the host's), not a traceback that shows
    them; the traceback kept (:func:`_crash_said`)."""
    return str(exc) if isinstance(exc, AiSysadminError) else _crash_said(app, host, exc)


def _unasked_line(report: CheckReport) -> bool:
    """This machine could not ask the host anything (its own open files ran out): said once,
    not once for each section it cost. Whether it was so."""
    why = report.snapshot.unasked
    if why is None:
        return False
    out.print(f"[bold yellow]{esc(report.host)} not checked[/bold yellow]: "
              f"{esc(why.removeprefix(f'{report.host}: '))}", markup=True)
    return True


def _print_report(report: CheckReport) -> None:
    why = unreachable_reason(report)
    if why is not None:
        out.print(f"[bold red]{esc(report.host)} unreachable[/bold red]: {esc(why)}",
                  markup=True)
        return
    if _unasked_line(report):
        return
    refused = refused_reason(report)
    if refused is None:
        out.print(_facts(report), style="dim")
    else:
        out.print(_refused_line(report, refused), markup=True)
    _print_errors(report.errors, refused)
    _print_notes(report, "")
    _print_kept(report, "")
    if not report.findings:
        # all collected, yet not healthy: what was found before went unjudged (said above)
        out.print("[green]healthy[/green]: no findings" if report.healthy else
                  "[yellow]no findings[/yellow] in what could be "
                  + ("collected" if report.errors else "judged"), markup=True)
        return
    table = Table(title=f"{len(report.findings)} finding(s)", show_lines=False)
    for column in ("severity", "rule", "subject", "summary", "evidence"):
        table.add_column(column, overflow="fold")
    for f in sorted(report.findings, key=lambda f: -f.severity):
        # what the host named (a mount point, a certificate's path) is in the subject and
        # summary: masked as --json masks them
        table.add_row(
            cell(f.severity.label, _STYLE.get(f.severity.label, "bold")), f.rule,
            masked(f.subject), masked(f.summary), masked("\n".join(f.evidence[:3])),
        )
    out.print(table)


def _refused_line(report: CheckReport, refused: str) -> str:
    return f"[bold yellow]{esc(report.host)} refused the check[/bold yellow]: {esc(refused)}"


def _print_errors(errors: dict[str, str], refused: str | None) -> None:
    """Each section not collected, and why, as one bounded line of masked host text (a
    command's stderr may hold a password); the host's refusal (:func:`refused_reason`),
    already said, is not said again for each section it cost: they are named on one line."""
    from ..monitor.findings import quote

    cost = [section for section, error in errors.items() if error == refused]
    if cost:
        out.print(f"[yellow]not collected[/yellow] ({len(cost)} section(s), refused): "
                  f"{esc(', '.join(cost))}", markup=True)
    for section, error in errors.items():
        if section not in cost:
            out.print(f"[yellow]not collected[/yellow] {esc(section)}: "
                      f"{esc(quote(error, SHOWN))}", markup=True)


def _print_notes(report: CheckReport, indent: str,
                 shared: Collection[tuple[str, str]] = ()) -> None:
    """What a person must know of what was collected (journal entries skipped to catch up,
    the rules with nothing to read on a host without systemd): no failure, no exit code.
    A note may quote the host (systemctl's words): masked, one line."""
    from ..monitor.findings import quote

    for section, note in report.notes.items():
        if (section, note) in shared:
            continue
        out.print(f"{indent}[cyan]note[/cyan] {esc(section)}: {esc(quote(note, SHOWN))}",
                  markup=True)


def _print_kept(report: CheckReport, indent: str) -> None:
    """What the checks before found and this one could not judge (a mount df could not read,
    said in a note; a rule that needs an earlier look than a fresh check has): its incident
    stays open, not called well."""
    for rule, subject in report.kept:
        why = "not read this check" if (rule, subject) in report.unjudged else \
            "its rule could not judge this check"
        out.print(f"{indent}[yellow]not judged[/yellow] {esc(rule)} {esc(masked(subject))}: "
                  f"found before, {why}; its incident stays as it was", markup=True)


def _check_all(app: AppState, as_json: bool, no_store: bool) -> int:
    from ..orchestrator.checker import fleet_checkers

    # the inventory is in the store even when nothing is recorded
    runtime = app.runtime(consumer="check")
    checkers = (fleet_checkers(list(runtime.transports.values()), app.settings, None, "check")
                if no_store else list(runtime.checkers.values()))
    answers = asyncio.run(_sweep(runtime, checkers))
    # one host's check that raised is that host's line: the others' reports still count
    failed = dict(sorted(((c.host, failed_words(app, c.host, a))
                          for c, a in zip(checkers, answers, strict=True)
                          if isinstance(a, Exception)), key=lambda item: name_order(item[0])))
    reports = sorted((a for a in answers if not isinstance(a, Exception)),
                     key=lambda r: name_order(r.host))
    # a check that failed judged nothing: not collected, as a part not collected counts
    code = fleet_exit_code([exit_code(r) for r in reports] + [2] * len(failed))
    if as_json:
        print_json({"name": app.settings.ai_name, "exit_code": code,
                    "hosts": [*(_as_dict(r) for r in reports),
                              *(_failed_dict(host, why) for host, why in failed.items())]})
        return code
    banner(app.settings, f"health check of {len(reports) + len(failed)} host(s)")
    shared = _shared_notes(reports)
    for report in reports:
        _print_block(report, shared)
    from ..monitor.findings import quote

    for (section, note), hosts in shared.items():
        out.print(f"[cyan]note[/cyan] {esc(section)} of {_some(hosts)}: "
                  f"{esc(quote(note, SHOWN))}", markup=True)
    for host, why in failed.items():
        out.print(f"[bold red]{esc(host)} check failed[/bold red]: {esc(quote(why, SHOWN))}",
                  markup=True)
    out.print(_summary(reports, len(failed)), highlight=False)
    return code


#: the hosts a note shared by many names, before "and N more"
NAMED = 5


def _shared_notes(reports: list[CheckReport]) -> dict[tuple[str, str], list[str]]:
    """The notes several hosts have word for word (systemd runs on none of a fleet of
    containers), with those hosts: said once under the hosts, not once a host."""
    hosts: dict[tuple[str, str], list[str]] = {}
    for report in reports:
        for said in report.notes.items():
            hosts.setdefault(said, []).append(report.host)
    return {said: names for said, names in hosts.items() if len(names) > 1}


def _some(hosts: list[str]) -> str:
    named = ", ".join(hosts[:NAMED])
    more = len(hosts) - NAMED
    return f"{len(hosts)} hosts ({named}{f' and {more} more' if more > 0 else ''})"


def _print_block(report: CheckReport,
                 shared: Collection[tuple[str, str]] = ()) -> None:
    """A few lines a host: its verdict, then one line per finding; not the notes in
    ``shared``, said once for all the hosts that have them."""
    why = unreachable_reason(report)
    if why is not None:
        out.print(f"[bold red]{esc(report.host)} unreachable[/bold red]: {esc(why)}",
                  markup=True)
        return
    if _unasked_line(report):
        return
    from ..monitor.findings import not_collected

    refused = refused_reason(report)
    if refused is not None and not report.findings:
        # the refusal, said once, is why each was not collected: their names alone
        out.print(_refused_line(report, refused)
                  + f" (not collected: {esc(', '.join(report.errors))})", markup=True)
        return
    # which sections, and why, as `systems` says it: a count alone sent a person to run
    # `check HOST` again to learn what was missing
    missing = f"not collected: {esc(not_collected(report.errors))}" if report.errors else ""
    if not report.findings:
        verdict = ("[green]healthy[/green]" if report.healthy else
                   f"[yellow]no findings[/yellow]; {missing}" if missing else
                   "[yellow]no findings[/yellow] in what could be judged")
        out.print(f"[bold]{esc(report.host)}[/bold] {verdict}", markup=True)
        _print_notes(report, "  ", shared)
        _print_kept(report, "  ")
        return
    out.print(f"[bold]{esc(report.host)}[/bold] {len(report.findings)} finding(s)", markup=True)
    if missing:
        out.print(f"  [yellow]{missing}[/yellow]", markup=True)
    _print_notes(report, "  ", shared)
    _print_kept(report, "  ")
    for f in sorted(report.findings, key=lambda f: -f.severity):
        style = _STYLE.get(f.severity.label, "bold")
        out.print(f"  [{style}]{esc(f.severity.label)}[/] {esc(f.rule)} "
                  f"{esc(masked(f.subject))}: {esc(masked(f.summary))}", markup=True)


def _summary(reports: list[CheckReport], failed: int = 0) -> str:
    down = sum(unreachable_reason(r) is not None for r in reports)
    with_findings = sum(bool(r.findings) for r in reports) - down
    healthy = sum(r.healthy for r in reports)
    parts = [f"{healthy} healthy", f"{with_findings} with findings", f"{down} unreachable"]
    partial = len(reports) - healthy - with_findings - down
    refused = sum(refused_reason(r) is not None and not r.findings for r in reports)
    if partial:
        parts.append(f"{partial} not fully collected"
                     + (f" ({refused} refused the check)" if refused else ""))
    if failed:
        parts.append(f"{failed} whose check failed")
    return f"{len(reports) + failed} host(s): " + ", ".join(parts)
