"""``ai-sysadmin notify`` / ``{name}-notify``: send a message now; ``notify status``: what the
outbox holds and what each channel did with it."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from rich.table import Table
from typer.core import TyperGroup

from .context import MAX_LINES, AppState, banner, err, out, print_json, state

if TYPE_CHECKING:  # the notifier and the store load when a command runs, not for --help
    from ..config import Settings
    from ..notify import Message


class _SendByDefault(TyperGroup):
    """``notify TITLE MESSAGE [PRIORITY]`` is ``notify send ...``: a first word that names no
    subcommand is a title (a title that is a subcommand's name: ``notify send status ...``).
    Options may come before the title: ``notify --json TITLE MESSAGE``, which is also what
    ``notify TITLE MESSAGE --json`` becomes (``main`` moves ``--json`` behind ``notify``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = next((n for n, a in enumerate(args) if not a.startswith("-")), len(args))
        # the group's own options (its help) or "--" before the first word: left to the group
        own = {"-h", "--help", "--"}.intersection(args[:first])
        if first < len(args) and args[first] not in self.commands and not own:
            args = ["send", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_SendByDefault, no_args_is_help=True,
                  help="Notifications: send one now (`notify TITLE MESSAGE [PRIORITY]`), or "
                  "see the deliveries (`notify status`).")


def _priority(text: str) -> int:
    from ..notify import PRIORITIES

    if text.lower() in PRIORITIES:
        return PRIORITIES[text.lower()]
    if text.isdigit() and 0 <= int(text) <= 10:
        return int(text)
    raise typer.BadParameter(f"{text!r}: low, normal, high or a number 0-10",
                             param_hint="PRIORITY")


@app.command("send")
def send(
    ctx: typer.Context,
    title: Annotated[str, typer.Argument(help="The title ([name] is put in front).")],
    message: Annotated[str, typer.Argument(help="The text.")],
    priority: Annotated[str, typer.Argument(help="low, normal, high, or 0-10.")] = "normal",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Send a message through every configured channel now; exit 1 if none accepted it."""
    from ..notify import Message, build_channels
    from ..notify.notifier import send_around

    app_state = state(ctx)
    settings = app_state.settings
    level = _priority(priority)
    if not message.strip():  # Gotify refuses it; a channel that takes it tells nobody anything
        raise typer.BadParameter("the message is empty", param_hint="MESSAGE")
    prefix = f"[{settings.ai_name}] "
    full = Message(title if title.startswith(prefix) else prefix + title, message, level)
    _say_readable(settings)
    # built without the state database: a store that will not open (a full disk) stops no
    # message, and records none
    channels = build_channels(settings)
    if not channels:
        err.print("no channel configured: set gotify_url and gotify_token_file, or "
                  "notify.apprise_urls_file", markup=False, soft_wrap=True)
        raise typer.Exit(1)
    results = asyncio.run(send_around(channels, full))
    if as_json:
        print_json({name: {"accepted": why is None, "error": why}
                    for name, why in results.items()})
    else:
        for name, why in results.items():
            out.print(f"{name}: " + ("accepted" if why is None else f"not accepted: {why}"),
                      markup=False, soft_wrap=True)
    # what was sent is said, and decides the exit status, before it is recorded: a store that
    # refuses it (a full disk) or makes it wait (a lock held 30 s) changes nothing of what
    # reached the person, and a script that retried on an error sent it twice
    sys.stdout.flush()
    _record(app_state, full, results)
    if all(why is not None for why in results.values()):
        raise typer.Exit(1)


def _record(app_state: AppState, message: Message, results: dict[str, str | None]) -> None:
    """The message sent, with each channel's outcome, in the outbox for `notify status`; a
    store that refuses it is a note on stderr, not the command's failure."""
    from ..errors import StoreError
    from ..store.outbox import Outbox

    try:
        Outbox(app_state.store.db).record_sent("manual", message.title, message.body,
                                               message.priority, results)
    except StoreError as exc:
        err.print(f"note: the outcome above is not recorded for `notify status`: {exc}",
                  markup=False, highlight=False, soft_wrap=True)


def _say_readable(settings: Settings) -> None:
    """A credential file every user can read, said on stderr (not refused)."""
    from ..notify.channels import readable_notes

    for note in readable_notes(settings):
        err.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)


def _channels(settings: Settings) -> list[str]:
    """What is configured, said without building anything (no Apprise import)."""
    from ..config import mask_secret_text

    shown = []
    if settings.gotify_url:
        shown.append(f"gotify {mask_secret_text(settings.gotify_url)}")
    if settings.notify.apprise_urls_file:
        shown.append(f"Apprise URLs in {settings.notify.apprise_urls_file}")
    return shown


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("message", "channel", "attempts", "when", "error", "title"):
        table.add_column(column, overflow="fold")
    for r in rows:
        when = r["delivered_at"] if r["state"] == "delivered" else r["next_at"]
        table.add_row(str(r["message_id"]), r["channel"], str(r["attempts"]), _when(when),
                      r["last_error"] or "", r["title"])
    return table


@app.command("status")
def status(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(
        "-n", "--limit", min=1, max=MAX_LINES, metavar="N", help="Rows of each state.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Pending, delivered and failed deliveries per channel, and held events.

    Held: repeats waiting for the end of their window, openings waiting for a digest."""
    from ..notify.channels import apprise_problem, public_name, token_problem
    from ..store.outbox import Outbox

    app_state = state(ctx)
    # said first and on stderr: pending deliveries wait on them, and their rows cannot say so
    problems = [p for p in (token_problem(app_state.settings),
                            apprise_problem(app_state.settings)) if p]
    for problem in problems:
        err.print(problem, markup=False, soft_wrap=True)
    _say_readable(app_state.settings)
    outbox = Outbox(app_state.store.db)
    stored = outbox.counts()
    events = stored.pop("events", {})
    # rows kept from before channels were named without credentials still hold a piece of one
    counts: dict[str, dict[str, int]] = {}
    for channel, by_state in stored.items():
        shown = counts.setdefault(public_name(channel), {})
        for name, n in by_state.items():
            shown[name] = shown.get(name, 0) + n
    lists = {s: [{**r, "channel": public_name(r["channel"])}
                 for r in outbox.deliveries((s,), limit)]
             for s in ("pending", "failed", "delivered")}
    if as_json:
        print_json({"configured": _channels(app_state.settings), "channels": counts,
                    "events": events, "problems": problems, **lists})
        return
    configured = _channels(app_state.settings)
    banner(app_state.settings, "notifications: " + (", ".join(configured) or
                                                     "no channel configured"))
    for channel, by_state in sorted(counts.items()):
        out.print(f"{channel}: " + ", ".join(f"{by_state.get(s, 0)} {s}" for s in
                                              ("pending", "delivered", "failed")),
                  markup=False, soft_wrap=True)
    held = {s: events.get(s, 0) for s in ("new", "repeat", "storm") if events.get(s)}
    if held:
        # with no channel they wait for one: say what makes one
        waiting = "" if configured else (" (waiting for a channel: set gotify_url and "
                                         "gotify_token_file, or notify.apprise_urls_file; "
                                         "what is still true then is sent)")
        out.print("events not sent yet: " + ", ".join(f"{n} {s}" for s, n in held.items())
                  + waiting, markup=False, soft_wrap=True)
    for name in ("pending", "failed", "delivered"):
        if lists[name]:
            out.print(_table(lists[name], name))
