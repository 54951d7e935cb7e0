"""``{name}-approve list | show ID | discuss ID | approve ID | reject ID`` and ``policy check``."""

from __future__ import annotations

import asyncio
import json
import shlex
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.table import Table

from ..errors import AiSysadminError
from .context import ActionId, AppState, banner, err, esc, out, print_json, state
from .identity import actor

if TYPE_CHECKING:  # the executor and the store load when a command runs, not for --help
    from ..config import Settings
    from ..executor import Progress
    from ..orchestrator.runtime import Runtime
    from ..store import Action, ActionStore

T = TypeVar("T")

app = typer.Typer(help="Actions waiting for a person: list, show, discuss, approve, reject."
                  " Alone, or with only `list`'s options, it lists them.")
policy_app = typer.Typer(help="Ask the policy why something is allowed or refused.")


def _actions(app_state: AppState) -> ActionStore:
    from ..store import ActionStore

    return ActionStore(app_state.store.db)


async def _closing(runtime: Runtime, work: Awaitable[T]) -> T:
    """Run ``work``, then close the connections it opened (they belong to this loop)."""
    try:
        return await work
    finally:
        await runtime.close()


def _when(ts: float | None) -> str:
    """A stored time as local time; ``?`` for one no clock can show (an approval an earlier
    release let expire in 1e300 hours)."""
    if not ts:
        return "-"
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))
    except (ValueError, OverflowError, OSError):
        return "?"


def _print(action: Action) -> None:
    from ..monitor.findings import masked

    # the policy's reason and the result quote the host, a decision's reason is a person's
    # words (the line they changed): masked as --json masks them
    out.print(f"[bold]action {action.id}[/bold] {esc(action.kind)} "
              f"{esc(masked(json.dumps(action.params)))} on {esc(action.host)}", markup=True)
    out.print(f"state {action.state} · risk {action.risk} · incident {action.incident_id or '-'}"
              f" · created {_when(action.created_at)} · expires {_when(action.expires_at)}")
    decided = bool(action.decided_by) and action.state != "pending"  # pending: that yes is spent
    if not (decided and action.reason == action.decision_reason):  # said below, once
        out.print(f"why: {masked(action.reason)}", markup=False)
    if action.rationale:
        # the model's words, which may quote a host: lines after the first indented under
        # it, so that none reads as a line of this command's own ("decided by root ...")
        said = masked(action.rationale.strip()).replace("\n", "\n  | ")
        out.print(f"the model's reason (its words): {said}", markup=False)
    for argv in action.plan.get("commands", []):
        out.print(f"  runs: {masked(json.dumps(argv))}", markup=False)
    if decided:
        out.print(f"decided by {action.decided_by} at {_when(action.decided_at)}: "
                  f"{masked(action.decision_reason or '')}", markup=False)
    if action.result:
        out.print(f"result: {masked(json.dumps(action.result))[:800]}", markup=False)


@app.callback(invoke_without_command=True)
def _default(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_actions, ctx=ctx)


@app.command("list")
def list_actions(
    ctx: typer.Context,
    all_states: Annotated[bool, typer.Option("--all", help="Every action, not only pending.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Actions waiting for approval (stable ids: use them with show/approve/reject)."""
    from ..executor import Executor

    app_state = state(ctx)
    # what expired since the daemon last looked is shown expired, its incident open again;
    # an approval whose `approve` died (killed, a crash) is shown waiting again, as a
    # daemon's start would settle it: its holder is provably gone (boot, pid, start time).
    # Where the store refuses that (a backup holds its write lock), the list is what is
    # stored, at once: a listing is no write to fail after the busy timeout
    Executor(app_state.settings, app_state.store, {}).tidy_before_showing()
    actions = _actions(app_state).find(None if all_states else ("pending",))
    if as_json:
        print_json([a.to_dict() for a in actions])
        return
    banner(app_state.settings, f"{len(actions)} action(s)"
           + ("" if all_states else " waiting for approval"))
    if not actions:
        return
    from ..monitor.findings import masked

    table = Table()
    for column in ("id", "state", "risk", "action", "host", "incident", "expires", "why"):
        table.add_column(column, overflow="fold")
    for a in actions:
        table.add_row(str(a.id), a.state, a.risk, masked(f"{a.kind} {json.dumps(a.params)}"),
                      a.host, str(a.incident_id or "-"), _when(a.expires_at), masked(a.reason))
    out.print(table)


@app.command("show")
def show(
    ctx: typer.Context, action_id: ActionId,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """One action: what it runs, why the policy decided so, what happened."""
    from ..executor import Executor

    app_state = state(ctx)
    # shown as list shows it, settled as the daemon would: one whose time passed expired,
    # one whose process is gone as it ended (interrupted), not as running
    Executor(app_state.settings, app_state.store, {}).tidy_before_showing()
    action = _actions(app_state).get(action_id)
    if as_json:
        print_json(action.to_dict())
    else:
        _print(action)


@app.command("approve")
def approve(
    ctx: typer.Context, action_id: ActionId,
    reason: Annotated[str, typer.Option(metavar="TEXT", help="Why.")] = "",
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the exact commands it would run; run nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Approve and run now. The policy and the host are checked again first. Exit 0: it ran
    and its fix verified, or it is no longer needed; 1: final, this yes runs nothing ever
    (refused, rejected, expired, or decided or run already), or it ran and failed; 2: nothing
    ran and it waits for approval again (the host did not answer, what it runs or its risk
    changed since it was shown): approve it again; or an error. --dry-run exits as approve
    would."""
    from ..executor.executor import NotPending

    app_state = state(ctx)
    runtime = app_state.runtime(consumer="executor")
    if dry_run or runtime.settings.executor.dry_run:
        _rehearse(runtime, action_id, as_json)
        return
    app_state.log_to_files()  # `logs actions` shows this run, as it shows the daemon's
    # a fix and its verification take a while (up to safety.verify_timeout): each step is
    # said on stderr as it happens, stdout keeps the outcome (and --json its JSON)
    runtime.executor.progress_listeners.append(_say_progress)
    try:
        action = asyncio.run(_closing(runtime, runtime.executor.approve(action_id, actor(),
                                                                         reason)))
    except NotPending as exc:
        _final(exc)
    if as_json:
        print_json(action.to_dict())
    else:
        _print(action)
    _exit_as(runtime, action)


def _exit_as(runtime: Runtime, action: Action) -> None:
    """A person's yes that did not end well, said on stderr, with approve's exit code."""
    if action.state == "pending":
        # nothing ran, and it waits for a person again: why, in one line (a host that did not
        # answer, commands that changed since they were shown)
        why = runtime.store.last_said(f"action:{action.id}") if runtime.store else None
        from ..monitor.findings import masked

        # the store's words may quote the host (its facts could not be read): masked here
        # too, whatever wrote them
        err.print(f"error: action {action.id} did not run and waits for approval again: "
                  f"{masked(why) if why else 'see `approve show`'}", markup=False,
                  highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    if action.state in ("succeeded", "not_needed"):
        return
    from ..executor.executor import decided_by
    from ..monitor.findings import masked

    if action.state == "failed" and _only_verification_failed(action):
        # it ran: what failed is the check that it fixed it, not the command
        err.print(f"error: action {action.id} ran (its commands exited 0), but its "
                  f"verification failed: {masked(action.reason)}; a person must look",
                  markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    # a reject from another terminal between this yes and the start: theirs, said so
    why = decided_by(action) if action.state == "rejected" else None
    err.print(f"error: action {action.id} is {action.state}: "
              f"{masked(why + '; nothing ran') if why else masked(action.reason)}",
              markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _final(exc: Exception) -> NoReturn:
    """An answer to an action that waits for none: said, exit 1 (never to be retried; 2
    says the action waits for approval again)."""
    from ..monitor.findings import masked

    err.print(f"error: {masked(str(exc))}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _say_progress(step: Progress) -> None:
    """A step of the fix, on stderr as it happens."""
    from ..monitor.findings import masked

    where = f"action {step.action_id} on {step.host}"
    if step.step == "running":
        said = f"{where}: running {step.command}"
    elif step.step == "ran":
        said = f"{where}: ran {step.command}: exit status {step.returncode}"
    elif step.step == "verifying":
        said = (f"{where}: verifying the fix: checking the host again for up to "
                f"{step.seconds:g} s (the finding must stay gone {step.settle_seconds:g} s)")
    else:
        return
    # the command carries the model's parameters (a path, a unit): masked as `show` masks it
    err.print(masked(said), markup=False, highlight=False, soft_wrap=True)


def _only_verification_failed(action: Action) -> bool:
    """A failed fix whose commands all ran (to exit 0) and whose verification failed."""
    result = action.result or {}
    return bool(result.get("commands")) and "verification" in result and "error" not in result


def _rehearse(runtime: Runtime, action_id: int, as_json: bool) -> None:
    """Exit 0: approve would run it; 1: it would run nothing (the reason says why); 2, as
    approve's own: it would run nothing and the action would wait for approval again."""
    from ..monitor.findings import masked

    seen = asyncio.run(_closing(runtime, runtime.executor.rehearse(action_id)))
    action = seen.action
    if as_json:
        print_json({"id": action.id, "host": action.host, "dry_run": True,
                    "would_run": seen.lines, "would_not_run": seen.would_not,
                    "waits_again": seen.waits_again, "state": action.state})
    elif seen.would_not is not None:
        out.print(f"dry run: action {action.id} ({action.kind}) on {action.host} would not "
                  f"run: {masked(seen.would_not)}", markup=False, highlight=False,
                  soft_wrap=True)
        out.print(f"nothing ran; it is still {action.state}")
    else:
        out.print(f"dry run: action {action.id} ({action.kind}) on {action.host} would run:")
        for line in seen.lines:
            out.print("  " + masked(shlex.join(line)), markup=False, highlight=False)
        out.print(f"nothing ran; it is still {action.state}")
    raise typer.Exit(0 if seen.would_not is None else 2 if seen.waits_again else 1)


@app.command("reject")
def reject(
    ctx: typer.Context, action_id: ActionId,
    reason: Annotated[str, typer.Option(metavar="TEXT", help="Why.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Reject: the action never runs. Exit 1 where it waits for no answer (decided, running
    or ended already: whose answer stands is said)."""
    from ..executor import Executor
    from ..executor.executor import NotPending

    app_state = state(ctx)
    app_state.log_to_files()
    # a rejection needs no host: it is recorded without any transport; what a process that
    # is gone left running is settled first ("too late: running since" of a dead process)
    executor = Executor(app_state.settings, app_state.store, {})
    executor.tidy()
    try:
        action = executor.reject(action_id, actor(), reason)
    except NotPending as exc:
        _final(exc)
    if as_json:
        print_json(action.to_dict())
    else:
        out.print(f"action {action.id} rejected")


@app.command("discuss")
def discuss(
    ctx: typer.Context, action_id: ActionId,
    message: Annotated[str | None, typer.Option("--message", "-m", metavar="TEXT",
                                                help="Ask one question and leave.")] = None,
) -> None:
    """Talk with the model about this action and its incident (interactive priority)."""
    if message is not None and not message.strip():
        raise typer.BadParameter("is empty", param_hint="--message")
    from .talk import action_conversation  # the LLM layers load only here

    app_state = state(ctx)
    action = _actions(app_state).get(action_id)
    action_conversation(app_state.runtime(), action, message)


def _action_decision(settings: Settings, runtime: Runtime, data: dict[str, Any]
                     ) -> dict[str, Any]:
    """The daemon's decision on the proposal ``data``, on the host's facts now: what
    :meth:`Executor.propose` would record (one function decides both)."""
    kind = str(data.get("kind", ""))
    params = data.get("parameters", data.get("params"))
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        # judged as {}, the defaults would be: an answer to a question nobody asked
        raise AiSysadminError(f'"parameters" must be a JSON object, not {json.dumps(params)}'
                              '; for example {"unit": "nginx.service"}')
    host = data.get("host") or runtime.local.host
    if not isinstance(host, str):
        raise AiSysadminError(f'"host" must be a host\'s name, not {json.dumps(host)}')
    runtime.transport(host)  # an unknown host is refused, naming the managed ones
    decision = asyncio.run(_closing(runtime, runtime.executor.decision(host, kind, params)))
    plan = decision.judged.plan
    return {"kind": kind, "host": host, "allowed": plan.allowed, "risk": plan.risk,
            "autonomy_level": settings.autonomy_level, "autonomy": decision.outcome,
            "autonomy_reason": decision.autonomy_reason, "state": decision.state,
            "unread": decision.judged.unread, "reason": decision.reason,
            "plan": plan.to_dict()}


def _verdict(result: dict[str, Any], indent: str = "") -> list[str]:
    """An action's verdict as a person reads it: allowed or refused, why, what it runs."""
    plan = result["plan"]
    what = f"{result['kind']} {plan.get('subject') or ''}".rstrip()
    why = " ".join(str(plan["reason"]).split())  # a host's error text may span lines
    if result["unread"] is not None:
        # not refused: the daemon asks a person, whose yes judges it again once the host
        # answers
        said = " ".join(str(result["reason"]).split())
        return [f"{indent}{what}: not judged: the host did not say what the policy needs",
                f"{indent}  at autonomy {result['autonomy_level']}: {result['autonomy']} "
                f"(the action would be {result['state']})",
                f"{indent}  why: {said}"]
    if not result["allowed"]:
        return [f"{indent}{what}: refused", f"{indent}  why: {why}"]
    lines = [f"{indent}{what}: allowed, risk {result['risk']}",
             f"{indent}  at autonomy {result['autonomy_level']}: {result['autonomy']} "
             f"({result['autonomy_reason']})",
             f"{indent}  why: {why}"]
    lines += [f"{indent}  runs: {shlex.join(argv)}" for argv in plan.get("commands", [])]
    return lines


def _command_verdict(result: dict[str, Any]) -> list[str]:
    look = result["investigate"]
    verdict = (f"allowed, risk {look['risk']}" if look["allowed"] else "refused")
    return [f"{shlex.join(result['argv'])}",
            f"  as an investigation: {verdict} ({look['reason']})",
            "  as a fix:", *_verdict(result["remediate"], indent="    ")]


@policy_app.command("check", context_settings={"allow_interspersed_args": False})
def policy_check(
    ctx: typer.Context,
    args: Annotated[list[str], typer.Argument(help="An action as JSON, or with --command the "
                                                   "argv after --.")],
    command: Annotated[bool, typer.Option("--command", help="Judge an argv.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Why is something allowed or refused? The daemon's own decision on the host's facts
    now. Exit 0 not refused (it runs, waits for a person or is recorded, as the autonomy
    level says), 1 refused."""
    from ..safety.command_policy import check_command

    app_state = state(ctx)
    settings = app_state.settings
    runtime = app_state.runtime(consumer="executor")
    if command:
        investigate = check_command(args, "investigate", settings.safety.protected_units)
        as_action = _action_decision(settings, runtime, {"kind": "run_command",
                                                          "parameters": {"argv": args}})
        result: dict[str, Any] = {
            "argv": args,
            "investigate": {"allowed": investigate.allowed, "risk": investigate.risk,
                            "reason": investigate.reason},
            "remediate": as_action,
        }
        allowed = investigate.allowed or as_action["autonomy"] != "refuse"
    else:
        try:
            data = json.loads(args[0]) if args else None
        except json.JSONDecodeError as exc:
            raise AiSysadminError(f"the action is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise AiSysadminError('give an action as a JSON object: {"kind": "restart_unit", '
                                  '"parameters": {"unit": "nginx.service"}}')
        result = _action_decision(settings, runtime, data)
        allowed = result["autonomy"] != "refuse"
    if as_json:
        print_json(result)
    else:
        lines = _command_verdict(result) if command else _verdict(result)
        out.print("\n".join(lines), markup=False, highlight=False)
    raise typer.Exit(0 if allowed else 1)


@policy_app.command("sudoers")
def policy_sudoers(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option(
        metavar="USER", help="The user sudo runs the fixes for: the daemon's, or a remote "
        "host's login user (default ai-sysadmin).")] = None,
    shell: Annotated[str | None, typer.Option(
        metavar="PATH", help="sh's absolute path as that host's sudo resolves it (default "
        "/bin/sh).")] = None,
    bin_dir: Annotated[str | None, typer.Option(
        metavar="DIR", help="Where systemctl, journalctl and kill are on that host (default "
        "/usr/bin).")] = None,
) -> None:
    """The sudoers lines a daemon that is not root needs: exactly the fixes it may run, and
    clean_directory's one script with the configured clean_paths. Without --bin-dir and
    --shell, for this machine: the configured programs' paths (--user names the daemon's
    user). A remote host with sudo = true needs the same for its login user (--user): with
    --bin-dir or --shell, the lines are that host's, the programs' bare names (as the fixes
    run there) under --bin-dir and --shell."""
    from ..safety.sudo_rules import sudoers_text

    settings = state(ctx).settings
    # --user alone is this machine's daemon under another name, its programs where
    # programs.* says; where a host's own places are given, the lines are that host's
    given = (shell, bin_dir) != (None, None)
    # programs.* name executables here (a NixOS daemon's store paths): another host runs
    # the bare names, which its sudo finds where --bin-dir and --shell say
    on_host = settings.on_host(not given)
    sh, where = shell or "/bin/sh", (bin_dir or "/usr/bin").rstrip("/")

    def resolve(program: str) -> str:
        if program.startswith("/"):
            return program
        return sh if program == "sh" else f"{where}/{program}"

    out.print(sudoers_text(on_host, user or "ai-sysadmin", resolve).rstrip(), markup=False,
              highlight=False, soft_wrap=True)
