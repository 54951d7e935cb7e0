"""``{name}-systems``: the managed hosts: list, add, remove, accept, refresh."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ..config import check_host, join_target, short_hostname, split_target
from ..errors import AiSysadminError, CommandRefused, TransportError
from ..here import address_here, names_this_machine, this_machine_at
from ..hosts.inventory import HostSpec, configured_hosts
from ..hosts.transport import unanswered
from ..orchestrator.fleet import (
    discover_from_ssh_config,
    machine,
    machine_at,
    managed_specs,
    sent_to,
    stop_managing,
    unchecked_hosts,
)
from ..store import HostStore
from .context import AppState, a_host, banner, cell, err, name_order, out, print_json, state
from .identity import actor

if TYPE_CHECKING:
    from ..orchestrator.checker import CheckReport

app = typer.Typer(help="Managed systems: list, add, remove, accept, refresh."
                  " Alone, or with only `list`'s options, it lists them.")


#: the status ``systems list`` gives a managed row nothing checks (:func:`_rows`)
UNCHECKED = "unchecked"


def _hosts(app_state: AppState) -> HostStore:
    return HostStore(app_state.store.db)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "never"


def _rows(app_state: AppState, all_hosts: bool) -> list[dict[str, Any]]:
    hosts = _hosts(app_state)
    discover_from_ssh_config(app_state.settings, hosts)
    known = {h["name"]: h for h in hosts.all()}
    specs = managed_specs(app_state.settings, hosts)
    managed = {short_hostname(), *(s.name for s in specs)}
    # a config host is where the config says ({host = ..., name = "web-a"} is not at web-a)
    configured = {s.name: s.target for s in specs if s.source == "config"}
    open_counts = hosts.open_incidents()
    rows = []
    for name in sorted(set(known) | managed, key=name_order):
        row = known.get(name, {"name": name, "status": "managed", "source": "config"})
        status = "managed" if name in managed else row["status"]
        if status == "managed" and name not in managed and row.get("source") == "checked":
            # a row its own checks wrote, of a name nothing checks now: this machine's before
            # a rename (or before its hostname was set at a boot), which nothing lets go
            status = UNCHECKED
        if not all_hosts and status not in ("managed", UNCHECKED):
            continue
        rows.append({
            "name": name, "status": status, "source": row.get("source"),
            "target": configured.get(name) or row.get("target") or name, "os": row.get("os"),
            "reachable": None if row.get("reachable") is None else bool(row["reachable"]),
            "last_check": row.get("last_check"), "last_error": row.get("last_error"),
            "check_failed_since": row.get("check_failed_since"),
            "open_incidents": open_counts.get(name, 0),
        })
    return rows


@app.callback(invoke_without_command=True)
def _default(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_systems, ctx=ctx)


@app.command("list")
def list_systems(
    ctx: typer.Context,
    all_hosts: Annotated[bool, typer.Option("--all", help="Also discovered and removed.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the hosts as JSON.")] = False,
) -> None:
    """Managed hosts: OS, reachability, last check, open incidents."""
    app_state = state(ctx)
    rows = _rows(app_state, all_hosts)
    if as_json:
        print_json(rows)
        return
    from ..monitor.findings import masked

    banner(app_state.settings, f"{len(rows)} system(s)")
    table = Table()
    for column in ("name", "status", "os", "reachable", "last check", "open incidents"):
        table.add_column(column, overflow="fold")
    failing = [r for r in rows if r["check_failed_since"] is not None]
    for r in rows:
        reach = {None: cell("-", ""), True: cell("yes", "green"),
                 False: cell("no", "red")}[r["reachable"]]
        # the last check that worked would look like a host watched still
        last = cell("failing", "red") if r in failing else _when(r["last_check"])
        # the OS is the host's words for itself (its os-release): masked as --json masks it
        table.add_row(r["name"], r["status"], masked(r["os"] or "-"), reach, last,
                      str(r["open_incidents"]))
    out.print(table)
    for r in failing:
        # the error is stored as one bounded line; the host's name is the operator's
        out.print(f"{r['name']} is not watched: its checks fail since "
                  f"{_when(r['check_failed_since'])} (the last that worked: "
                  f"{_when(r['last_check'])}): {r['last_error']}",
                  markup=False, highlight=False, soft_wrap=True)
    _say_not_whole([r for r in rows if r not in failing and r["last_error"]])
    _say_unchecked([r for r in rows if r["status"] == UNCHECKED])
    for one in unchecked_hosts(app_state.settings, _hosts(app_state)):
        # the daemon's log says it too (orchestrator.fleet's _say_unchecked)
        err.print(f"warning: {one.name} is not checked: {one.why}", soft_wrap=True,
                  markup=False, highlight=False)


def _say_unchecked(rows: list[dict[str, Any]]) -> None:
    """Under the table, a line a host nothing checks (:data:`UNCHECKED`): its last check and
    its open incidents stay as they were for good, until a person lets it go."""
    for r in rows:
        count = r["open_incidents"]
        closes = f", closing its {count} open incident(s)" if count else ""
        out.print(f"{r['name']} is not checked: it is neither this machine's name now (a "
                  "rename, a hostname not yet set at a boot) nor a managed host's; `systems "
                  f"remove {r['name']}` lets it go{closes}", markup=False, highlight=False,
                  soft_wrap=True)


def _say_not_whole(rows: list[dict[str, Any]]) -> None:
    """Under the table, a line a host whose last check was not whole: why it did not answer,
    or which sections it could not collect and why (a rule with nothing to read judged
    nothing, so "0 open incidents" there is no all-clear)."""
    from ..monitor.findings import quote
    from .check import SHOWN, unreachable_words

    for r in rows:
        unreachable = r["reachable"] is False
        # host text (a remote command's stderr) from the store: masked, one bounded line, as
        # `check` says it (its bound, without the command that got no answer): cut shorter,
        # a changed host key lost the command that forgets the old one
        said = (unreachable_words({"": r["last_error"]}) if unreachable
                else quote(r["last_error"], SHOWN))
        out.print(f"{r['name']}: {'unreachable' if unreachable else 'not collected'} at the "
                  f"last check ({_when(r['last_check'])}): {said}", markup=False,
                  highlight=False, soft_wrap=True)


@app.command("add")
def add(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(
        help="host, user@host, user@host:port, [IPv6]:port")],
    name: Annotated[str | None, typer.Option(metavar="NAME",
                                             help="Shown name (default: the host).")] = None,
    no_probe: Annotated[bool, typer.Option(
        "--no-probe", help="Do not contact it now (a host that is not up yet).")] = False,
) -> None:
    """Manage one more host (over SSH, with the configured keys and known_hosts). It is tried
    at once (`true`, as every check runs its commands, within a few seconds), and what it
    answered is said; a host that does not answer, or runs nothing, is managed all the same
    (it may be down for now). A running daemon checks it, and follows its journal, within
    one check interval."""
    app_state = state(ctx)
    try:
        user, host, port = split_target(target)
        shown = check_host(name) if name is not None else host
    except ValueError as exc:
        raise AiSysadminError(f"cannot add {target[:80]!r}: {exc}") from None
    _refuse_this_machine(host, port, shown, named=name is not None,
                         again=f"systems add {target} --name NAME")
    if any(s.name == shown for s in configured_hosts(app_state.settings)):
        raise AiSysadminError(f"{shown} is already managed (remote_systems of "
                              f"{app_state.loaded.config_path})")
    stored = join_target(user, host, port)
    _refuse_twin(app_state, HostSpec(shown, host, port, user, source="added"))
    _hosts(app_state).add(shown, target=stored, source="added", actor=actor(),
                          machine=machine_at(app_state.settings))
    # the target only where it says more than the name ("web1 (web1)" says nothing)
    reached = f" ({stored})" if stored != shown else ""
    out.print(f"{shown}{reached} is managed now; `systems refresh` checks it, a running "
              "daemon within one check interval")
    if no_probe:
        out.print(f"{shown} was not contacted (--no-probe)")
        return
    _say_probe(shown, asyncio.run(_probe(app_state, shown)))


def _refuse_this_machine(host: str, port: int | None, shown: str, named: bool,
                         again: str | None) -> None:
    """Refuse a host that is this machine, which every check watches already (it would be
    checked twice, and two fixes could race on it). A name is this machine's at any port; a
    host only at ssh's own (another port is another sshd: a container, a VM behind a
    forward), which may be managed under a name of its own (``named``; ``again``: how)."""
    if named and names_this_machine(shown):  # a name of its own is no name of this machine
        raise AiSysadminError(f"{shown} is already managed (this machine)")
    named_here = names_this_machine(host)
    at = None if named_here else address_here(host)
    if port not in (None, 22) and (named_here or at is not None):
        if named or again is None:
            return
        raise AiSysadminError(
            f"{host} names this machine, which every check watches already; the sshd at its "
            f"port {port} (a container, a VM behind a forward) needs a name of its own: "
            f"{again}")
    if at is not None:
        which = f"{at} is its address" if at == host else f"{host} is its address {at}"
        # a port not written is ssh's, 22, unless ~/.ssh/config names another (a tunnel)
        how = "" if port is not None or again is None else (
            f"; where ~/.ssh/config sends {host} to another port (a tunnel, a VM's forward), "
            f"write the port: systems add {host}:PORT --name NAME")
        raise AiSysadminError(f"{shown} is already managed (this machine: {which}){how}")
    if named_here:
        raise AiSysadminError(f"{shown} is already managed (this machine)")


#: how long `systems add` waits for the new host's answer, connecting included
PROBE_SECONDS = 5.0


async def _probe(app_state: AppState, name: str) -> TransportError | None:
    """Why the host just added cannot run a command (see :func:`unanswered`); None where it
    ran one. Reached as every command reaches it: the runtime's transport."""
    runtime = app_state.runtime(consumer="check")
    try:
        return await unanswered(runtime.transport(name), PROBE_SECONDS, PROBE_SECONDS)
    finally:
        await runtime.close()


def _say_probe(name: str, why: TransportError | None) -> None:
    """What the host answered: a problem on stderr, the host managed all the same."""
    from ..monitor.findings import quote
    from .check import SHOWN

    if why is None:
        out.print(f"{name} answered and ran a command")
        return
    # what answers on the port chooses its words (an SSH disconnect's reason): one line,
    # its control characters shown, never a line of this program's own
    said = quote(str(why), SHOWN).removeprefix(f"{name}: ")
    if isinstance(why, CommandRefused):
        err.print(f"warning: {name} answered but runs no command: {said}", soft_wrap=True)
    else:
        err.print(f"warning: no command ran on {name}: {said}", soft_wrap=True)
    err.print(f"it is managed all the same; `systems refresh {name}` tries again, "
              f"`systems remove {name}` takes it back", soft_wrap=True)


def _refuse_twin(app_state: AppState, spec: HostSpec) -> None:
    """Refuse a host whose machine (where ~/.ssh/config sends it: an alias's ``Hostname`` and
    ``Port``) is this one's sshd, or a managed host's under another name: it would be checked
    twice, every incident twice, and two fixes could race on it. The store refuses its own
    twins again as it writes, so two adds cannot both pass."""
    settings = app_state.settings
    where = machine(spec, settings)
    sent = sent_to(spec, where)
    if sent and not where.via and (here := this_machine_at(where.host, where.port)):
        raise AiSysadminError(f"{spec.name} is already managed (this machine: {sent}; {here})")
    for other in managed_specs(settings, _hosts(app_state)):
        if other.name == spec.name or machine(other, settings) != where:
            continue
        both = f": ~/.ssh/config sends both to {where.said()}" if sent or sent_to(
            other, where) else ""
        how = (f" in remote_systems of {app_state.loaded.config_path}{both}"
               if other.source == "config" else f"{both}; `systems remove {other.name}` first")
        raise AiSysadminError(f"{spec.name} ({spec.target}) is already managed as "
                              f"{other.name} ({other.target}){how}")


@app.command("remove")
def remove(ctx: typer.Context, name: Annotated[str, typer.Argument(
        help="The managed host to stop managing.")]) -> None:
    """Stop managing a host (its history stays)."""
    app_state = state(ctx)
    settings = app_state.settings
    if name == short_hostname():
        # every command and the daemon watch the machine they run on: a "removed" status
        # would change nothing
        raise AiSysadminError(
            f"{name} is this machine: {settings.ai_name} always watches the host it runs on; "
            f"to stop, stop the daemon (systemctl disable --now {settings.own_units[0]})")
    if any(s.name == name for s in configured_hosts(settings)):
        raise AiSysadminError(f"{name} is listed in remote_systems of "
                              f"{app_state.loaded.config_path}: remove it there")
    app_state.log_to_files()  # the fixes it withdraws are in `logs actions`
    gone = stop_managing(settings, app_state.store, name,
                         f"{name} is no longer managed (systems remove)", actor())
    if gone.queue_error is not None:
        out.print(f"queued LLM work not cancelled: {gone.queue_error}")
    out.print(f"{name} is no longer managed; {gone.said()}")


@app.command("accept")
def accept(ctx: typer.Context, name: Annotated[str, typer.Argument(
        help="A discovered host (see `systems list`).")]) -> None:
    """Manage a discovered host: a running daemon checks it within one check interval."""
    app_state = state(ctx)
    hosts = _hosts(app_state)
    row = hosts.get(name)
    if row["status"] == "managed":
        out.print(f"{name} is already managed")
        return
    try:
        # what the journal named (any sender chooses it); a row the config once listed
        # and dropped keeps no target of its own: its name is where it is
        user, host, port = split_target(row["target"] or name)
    except ValueError as exc:
        raise AiSysadminError(f"cannot accept {name[:80]!r}: {exc}") from None
    # a discovered name is its own: one of this machine's is refused at any port
    _refuse_this_machine(host, port, name, named=name != host, again=None)
    _refuse_twin(app_state, HostSpec(name, host, port, user, source="accepted"))
    hosts.accept(name, actor(), machine=machine_at(app_state.settings))
    out.print(f"{name} is managed now; a running daemon checks it within one check interval")


@app.command("refresh")
def refresh(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="NAME", help="Only this host.",
                                               callback=a_host)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the hosts as JSON.")] = False,
) -> None:
    """Check the managed hosts now, all at once. Exit code: 0 every host ran the check, 1 a
    host did not answer, 2 none of that but a host answered and ran none of the check's
    commands (a nologin shell: said why), or an error."""
    from .check import fleet_exit_code

    app_state = state(ctx)
    runtime = app_state.runtime(consumer="check")
    checkers = list(runtime.checkers.values())
    if name:
        checkers = [runtime.checker_for(runtime.transport(name).host)]

    async def sweep() -> list[dict[str, Any]]:
        try:
            # every check ends before the connections close: one that raises neither hides
            # the other hosts' results nor leaves their checks running into the loop's end
            reports = await asyncio.gather(*(c.check("refresh") for c in checkers),
                                           return_exceptions=True)
        finally:
            await runtime.close()
        return [_refreshed(app_state, c.host, r) for c, r in zip(checkers, reports, strict=True)]

    results = asyncio.run(sweep())
    # a host that cannot be reached, or runs nothing, fails the command, so a script or a
    # timer notices; findings are `check`'s to report. A check that failed judged nothing.
    code = fleet_exit_code([1 if r["reachable"] is False else
                            2 if r["refused"] or r["reachable"] is None else 0
                            for r in results])
    if as_json:
        print_json(results)
        raise typer.Exit(code)
    from ..monitor.findings import not_collected, quote
    from .check import SHOWN, unreachable_words

    for r in results:
        # a check that raised says why in an exception's words, which may quote a host's
        # (a value a parser could not read): masked, one line, as `check` says an error
        state_text = (f"the check failed: {quote(r['errors']['check'], SHOWN)}"
                      if r["reachable"] is None
                      # why, as `check` says it: a bare "unreachable" left the person
                      # to guess between a host that is down, a key and a host key
                      else f"unreachable: {unreachable_words(r['errors'])}"
                      if not r["reachable"] else
                      f"refused the check: {r['refused']}" if r["refused"] else
                      f"{r['findings']} finding(s)" + (
                          f"; not collected: {not_collected(r['errors'])}" if r["errors"]
                          else ""))
        out.print(f"{r['name']}: {state_text}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _refreshed(app_state: AppState, host: str,
               report: CheckReport | BaseException) -> dict[str, Any]:
    """One host's line of ``refresh``; a check that raised is that host's error, with
    reachability not known (None). It is said here and not stored: whether the daemon can
    watch the host (``check_failed_since``) is the daemon's checks' to say, which a run
    beside it neither sets nor clears (``store.incidents.WATCHING``)."""
    from .check import failed_words, refused_reason, unreachable_reason

    if not isinstance(report, BaseException) and report.snapshot.unasked is not None:
        # this machine could not ask it (its open files ran out): not checked, said so
        return {"name": report.host, "findings": 0, "reachable": None, "refused": None,
                "errors": {"check": report.snapshot.unasked}}
    if not isinstance(report, BaseException):
        return {"name": report.host, "findings": len(report.findings),
                "reachable": unreachable_reason(report) is None,
                "refused": refused_reason(report), "errors": report.errors}
    if not isinstance(report, Exception):  # an interrupt: the command ends with it
        raise report
    why = failed_words(app_state, host, report)
    return {"name": host, "findings": 0, "reachable": None, "refused": None,
            "errors": {"check": why}}
