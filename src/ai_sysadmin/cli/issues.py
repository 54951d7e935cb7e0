"""``ai-sysadmin issues`` / ``{name}-issues``: the incident list and its lifecycle."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from .context import MAX_LINES, IncidentId, a_host, banner, esc, out, print_json, state
from .identity import actor

if TYPE_CHECKING:
    from ..store import Incident, IncidentStore

app = typer.Typer(help="Incidents: list, show, resolve, close, reopen."
                  " Alone, or with only `list`'s options, it lists them.", no_args_is_help=False)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


AllStates = Annotated[bool, typer.Option("--all", help="Include resolved and closed.")]
HostOpt = Annotated[str | None, typer.Option(metavar="HOST", help="Only this host.",
                                              callback=a_host)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
ReasonOpt = Annotated[str, typer.Option(metavar="TEXT", help="Why.")]


@app.callback(invoke_without_command=True)
def _default(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_incidents, ctx=ctx)


def _unknown(store: IncidentStore, host: str) -> bool:
    """Whether ``host`` is no host this store knows: none of its rows, none of its incidents
    (a removed host's are kept)."""
    return (all(row["name"] != host for row in store.hosts())
            and not store.incidents(None, host))


def _state(incident: Incident, needs_person: bool) -> str:
    """An incident's state as a person reads it: an open one escalated, or whose fix failed,
    was turned down or only recorded (observe), is a person's to handle, not one the
    assistant is still at; a closed one whose finding is still there stays closed until it
    clears."""
    if incident.state == "closed" and incident.held_since is not None:
        return "closed (held while present)"
    return f"{incident.state} (needs a person)" if needs_person else incident.state


@app.command("list")
def list_incidents(
    ctx: typer.Context, all_states: AllStates = False, host: HostOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Live incidents (or all of them)."""
    from ..store.incidents import LIVE_STATES

    app_state = state(ctx)
    incidents = app_state.store.incidents(None if all_states else LIVE_STATES, host)
    if host is not None and not incidents and _unknown(app_state.store, host):
        # a name mistyped read as a host with nothing wrong
        raise typer.BadParameter(f"no host {host!r} was ever checked here; `systems list "
                                 "--all` names them", param_hint="--host")
    waiting = app_state.store.needing_person([i.id for i in incidents])
    if as_json:
        print_json([i.to_dict() | {"needs_person": i.id in waiting} for i in incidents])
        return
    banner(app_state.settings, f"{len(incidents)} incident(s)")
    if not incidents:
        if not all_states:
            out.print("none live; `--all` lists the resolved and closed ones too",
                      markup=False)
        return
    from ..monitor.findings import masked

    table = Table()
    for column in ("id", "state", "severity", "host", "rule", "subject", "summary", "last seen"):
        table.add_column(column, overflow="fold")
    for i in incidents:
        # the subject and summary name what the host named (a mount point): masked, as
        # `issues show` and --json mask them
        table.add_row(str(i.id), _state(i, i.id in waiting), i.severity, i.host, i.rule,
                      masked(i.subject),
                      masked(i.summary), _when(i.last_seen))
    out.print(table)


@app.command("show")
def show(
    ctx: typer.Context, incident_id: IncidentId,
    events: Annotated[int, typer.Option(
        "-n", "--events", metavar="N", min=0, max=MAX_LINES,
        help="The latest N events of the history; 0: all of them.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the incident as JSON.")] = False,
) -> None:
    """One incident with its evidence, its history and what the model proposed, with why."""
    from ..monitor.findings import masked

    store = state(ctx).store
    incident = store.get(incident_id, history=events or None)
    proposals = store.proposals(incident_id)
    waiting = incident_id in store.needing_person([incident_id])
    if as_json:
        print_json(incident.to_dict() | {"needs_person": waiting, "proposals": proposals})
        return
    # the summary, evidence and history quote hosts and the model: none of it may steer the
    # terminal (a carriage return that overwrites a line, a bell, an escape), nor show a
    # secret --json would mask
    out.print(f"[bold]#{incident.id}[/bold] {esc(masked(incident.summary))}",
              markup=True)
    out.print(f"state {_state(incident, waiting)} · severity {incident.severity} · "
              f"host {incident.host} · "
              f"rule {incident.rule} · subject {masked(incident.subject)}")
    out.print(f"opened {_when(incident.opened_at)} · last seen {_when(incident.last_seen)} · "
              f"seen {incident.occurrences} time(s)")
    out.print("[bold]evidence[/bold] (quoted from the host):", markup=True)
    for line in incident.evidence:
        out.print(f"  > {masked(line)}", markup=False)
    out.print("[bold]history[/bold]:", markup=True)
    if incident.earlier_events:
        out.print(f"  ({incident.earlier_events} earlier event(s) not shown: --events 0 shows "
                  "them all)")
    for e in incident.events:
        # a diagnosis spans lines: those after its first are indented under it, so that
        # none reads as an event of its own (the model's words, which quote hosts, could
        # otherwise write a line that looks like "root: approved")
        text = masked(_event_text(e)).replace("\n", "\n      | ")
        out.print(f"  {_when(e.at)} {e.actor}: {text}".rstrip(), markup=False)
    _print_proposals(proposals)


#: what became of a proposal no action was made of, by its own state
_UNDECIDED = {"proposed": "not decided yet",
              "abandoned": "never decided: its investigation failed before"}


def _fate(proposal: dict[str, Any]) -> str:
    """What became of a proposal: the action it became (its id, as ``approve show`` takes
    it) and that action's state now; else why there is none."""
    if proposal["source"] != "agent":
        return "advisory: never decided"
    if proposal.get("action_id") is not None:
        return f"action {proposal['action_id']}: {proposal['state']}"
    return _UNDECIDED.get(proposal["state"], f"no action ({proposal['state']})")


def _print_proposals(proposals: list[dict[str, Any]]) -> None:
    """What the model proposed, each with what became of it and why (in its words): the
    history says that it proposed, this says why, as ``approve show`` does for one action."""
    from ..monitor.findings import masked

    if not proposals:
        return
    out.print("[bold]proposals[/bold] (the model's reasons in its words):", markup=True)
    for p in proposals:
        out.print(f"  {masked(p['kind'])} {masked(json.dumps(p['parameters']))} · {_fate(p)}",
                  markup=False)
        if p["rationale"].strip():
            # lines after the first indented under it: none reads as a line of our own
            said = masked(p["rationale"].strip()).replace("\n", "\n      | ")
            out.print(f"      why: {said}", markup=False)


def _event_text(event: Any) -> str:
    """``open -> resolved why``; the first event: ``opened summary``; an event that changes
    no state (a diagnosis, a failed investigation, an escalation): ``kind: detail``."""
    detail = event.detail or ""
    if event.kind == "opened":
        opened = "opened" if event.to_state in (None, "open") else f"opened as {event.to_state}"
        return f"{opened} {detail}"
    if event.from_state and event.to_state and event.from_state != event.to_state:
        return f"{event.from_state} -> {event.to_state} {detail}"
    kind = str(event.kind).replace("_", " ")
    return f"{kind}: {detail}" if detail else kind


def _move(ctx: typer.Context, incident_id: int, new: str, reason: str, as_json: bool) -> None:
    """The incident to ``new``; the fixes that wait for it (a person's yes, or their turn)
    are withdrawn with it, saying so: what would run for an ended incident is not needed."""
    from ..executor import Executor

    app_state = state(ctx)
    store = app_state.store
    incident = store.get(incident_id)
    already = incident.state == new
    who = actor()
    app_state.log_to_files()
    with store.db.transaction():  # the incident and its fixes at once: none seen without
        # the fixes first: withdrawn with the person's words, before a resolution withdraws
        # those that wait for a yes in its own
        withdrawn = [a.id for a in Executor(app_state.settings, store, {}).withdraw(
            f"incident {incident_id} {new} by operator" + (f": {reason}" if reason else ""),
            incident_id=incident_id, who=who)]
        if not already:
            incident = store.transition(incident_id, new, who,
                                        reason or f"{new} by the operator")
    said = (f"; action(s) {', '.join(map(str, withdrawn))} withdrawn: they will not run"
            if withdrawn else "")
    if as_json:
        print_json({**incident.to_dict(), "withdrawn_actions": withdrawn})
    elif already:
        out.print(f"incident {incident.id} is already {new}"
                  + (said or "; nothing changed"))
    elif incident.held_since is not None:
        out.print(f"incident {incident.id} is now closed{said}; its finding is still present: "
                  "it stays closed, no new incident opening for it, until a check finds it "
                  "gone (a return after that opens a new incident; `issues reopen "
                  f"{incident.id}` watches it again now)")
    else:
        out.print(f"incident {incident.id} is now {incident.state}{said}")


@app.command("resolve")
def resolve(
    ctx: typer.Context,
    incident_id: IncidentId,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Mark an incident resolved (it reopens if the finding comes back)."""
    _move(ctx, incident_id, "resolved", reason, as_json)


@app.command("close")
def close(
    ctx: typer.Context,
    incident_id: IncidentId,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Close an incident for good: while its finding stays present, no worse, no new incident
    opens for it; once a check finds it gone, or worse, a new incident opens (`reopen`
    undoes the hold)."""
    _move(ctx, incident_id, "closed", reason, as_json)


@app.command("reopen")
def reopen(
    ctx: typer.Context,
    incident_id: IncidentId,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Undo a close's hold: the next check that still finds the incident's finding opens a
    new incident for it (told and investigated as any); the closed one keeps its history."""
    app_state = state(ctx)
    app_state.log_to_files()
    incident = app_state.store.lift_hold(incident_id, actor(), reason)
    if as_json:
        print_json(incident.to_dict())
        return
    out.print(f"incident {incident.id} stays closed; its finding is watched again: the next "
              f"check of {incident.host} that finds it opens a new incident")
