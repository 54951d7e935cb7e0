"""``queue`` (depth, in flight, waits; ``queue show ID``) and ``worker`` (serve the LLM queue).

Registered by the main app: ``app.add_typer(queue_cmd.app, name="queue")`` and
``app.command("worker")(queue_cmd.worker)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from .. import logs as logfiles
from ..config import Settings, short_hostname
from ..errors import StoreRefused
from ..llm.queue import (
    HandlerFactory,
    QueueError,
    QueueStats,
    Request,
    describe_queue,
    open_for_service,
    open_queue,
)
from ..llm.readiness import Readiness, Served, heard
from ..monitor.findings import masked, quote
from .context import banner, err, out, print_json, state
from .workers_word import worker_line

app = typer.Typer(help="The LLM request queue: depth, requests in flight, wait times.")
#: characters of a failed request's error in the table (``queue show ID`` gives all of it)
ERROR_SHOWN = 160


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    # a time stored before the clock was set back (NTP at boot, a VM resumed) lies ahead of
    # now: what passed since is unknown, but no less than nothing
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@app.callback(invoke_without_command=True)
def queue_show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Pending requests per priority, requests in flight, oldest and mean wait, workers, and
    the last hour's failed requests (their ids for `queue show`)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = state(ctx).settings
    queue = open_queue(settings)
    try:
        stats = queue.stats()
        # requests that only wait, with none: the worker is stopped or dead
        workers = queue.live_workers()
        said = heard(queue.workers_say())
        now = queue.now()  # the queue's clock: a Redis queue's times are its server's
    finally:
        queue.close()
    if as_json:
        print_json({**stats.to_dict(), "workers": workers,
                    "workers_llm": {name: asdict(served) for name, served in said.items()}})
        return
    _print_stats(settings, stats, now, workers, said)


def _print_stats(settings: Settings, stats: QueueStats, now: float, workers: int,
                 said: dict[str, Served]) -> None:
    banner(settings, f"LLM queue {stats.backend}")
    table = Table()
    for column in ("priority", "pending"):
        table.add_column(column)
    for name, count in stats.pending.items():
        table.add_row(name, str(count))
    out.print(table)
    out.print(f"depth {stats.depth} · in flight {stats.in_flight} · "
              f"oldest pending waits {_age(stats.oldest_pending_age)}")
    out.print(f"last hour: {stats.done_last_hour} done, {stats.failed_last_hour} failed, "
              f"mean wait {_age(stats.mean_wait_last_hour)}")
    out.print(f"workers serving it: {workers}")
    seen = time.time()  # when each said it, by its own machine's clock
    for name, served in sorted(said.items()):
        out.print(worker_line(name, served, seen), markup=False, highlight=False)
    def since(at: float | None) -> str:
        return _age(None if at is None else now - at)

    _requests_table("in flight", ("worker", "running for", "attempt"), [
        (r, (r.worker or "-", since(r.started_at), str(r.attempts)))
        for r in stats.in_flight_requests])
    # the ids `queue show ID` takes, and why each failed: its first line, as one line of text
    # (a server's words: masked, no markup of ours, no control characters of theirs)
    _requests_table("failed in the last hour, newest first", ("ended", "attempts", "error"), [
        (r, (f"{since(r.finished_at)} ago" if r.finished_at is not None else "-",
             str(r.attempts),
             Text(quote(next(iter((r.error or "").strip().splitlines()), "-"), ERROR_SHOWN))))
        for r in stats.failed_requests])


def _requests_table(title: str, columns: tuple[str, ...],
                    rows: list[tuple[Request, tuple[str | Text, ...]]]) -> None:
    """Requests as a table titled ``title``: id, kind and priority, then ``columns``; nothing
    where there are none."""
    if not rows:
        return
    table = Table(title=title)
    for column in ("id", "kind", "priority", *columns):
        table.add_column(column, overflow="fold")
    for r, cells in rows:
        table.add_row(r.id, r.kind, r.priority.name.lower(), *cells)
    out.print(table)

@app.command("show")
def request_show(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="The request id (q-...).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """One request: its state, wait, attempts, and its answer or error."""
    settings = state(ctx).settings
    queue = open_queue(settings)
    try:
        request = queue.get(request_id)
        ahead = queue.requests_ahead(request) if request.state == "pending" else None
        now = queue.now()
    finally:
        queue.close()
    if as_json:
        print_json({**request.to_dict(), "ahead": ahead})
        return
    _print_request(settings, request, ahead, now)


#: the most of an answer `queue show` prints (`--json` has all of it)
ANSWER_SHOWN = 4000


def _waited(r: Request, now: float) -> float:
    """How long the request waited for a worker: till now while it waits (one whose worker
    died waits again, its first start long past), till it started, or till it ended
    unstarted (cancelled)."""
    if r.state == "pending" or r.started_at is None:
        return (now if r.state == "pending" else r.finished_at or now) - r.created_at
    return r.wait_seconds or 0.0


def _answer(r: Request) -> str | None:
    """The model's answer a done request holds, as the person reads it."""
    message = (r.result or {}).get("message")
    if not isinstance(message, dict):
        return None
    said = str(message.get("content") or "")
    calls = [str((c.get("function") or c).get("name", "?")) for c in
             message.get("tool_calls") or () if isinstance(c, dict)]
    if calls:
        said += ("\n" if said else "") + f"(calls {', '.join(calls)})"
    return said[:ANSWER_SHOWN] + (" …" if len(said) > ANSWER_SHOWN else "")


def _print_request(settings: Settings, r: Request, ahead: int | None, now: float) -> None:
    banner(settings, f"LLM request {r.id}")
    lines = [
        ("state", r.state + (f" ({ahead} ahead)" if ahead is not None else "")),
        ("kind", r.kind),
        ("priority", r.priority.name.lower()),
        ("submitted", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created_at))),
        ("waited", _age(_waited(r, now))),
        ("attempts", str(r.attempts)),
        # one waiting again is no worker's: the one that took it last is gone
        ("worker", r.worker if r.worker and r.state != "pending" else "-"),
        ("coalesce key", r.coalesce_key or "-"),
    ]
    if r.error:
        # a failed investigation's error may quote the host or the LLM server
        lines.append(("error", masked(r.error)))
    if (answer := _answer(r)) is not None:
        lines.append(("answer", masked(answer)))
    for key, value in lines:
        out.print(f"{key:>13}: {value}", markup=False, highlight=False)


def default_worker_name() -> str:
    return f"{short_hostname()}-{os.getpid()}"


async def serve_queue(
    settings: Settings,
    handler_factory: HandlerFactory,
    *,
    concurrency: int | None = None,
    worker_name: str | None = None,
    stop: asyncio.Event | None = None,
    readiness: Readiness | None = None,
) -> None:
    """Serve the configured queue with the factory's handler until ``stop`` is set (or, when
    no event is given, until SIGTERM or SIGINT); the worker says what ``readiness`` knows of
    its LLM."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    queue = await asyncio.to_thread(open_for_service, settings, "the worker waits for it")
    try:
        handler = handler_factory(settings)
        name = worker_name or default_worker_name()
        async with (readiness.watching() if readiness is not None
                    else contextlib.nullcontext()):
            await queue.serve(
                handler,
                concurrency=concurrency or settings.queue.concurrency,
                worker_name=name,
                stop=stop,
                says=None if readiness is None else readiness.says,
                defers=None if readiness is None else readiness.defers_to(queue.workers_say,
                                                                           name),
            )
    finally:
        queue.close()


def worker(
    ctx: typer.Context,
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, metavar="N",
                     help="Requests answered at once (default: queue.concurrency)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(metavar="NAME",
                                 help="Worker name shown by `queue` (default: host-pid).")
    ] = None,
) -> None:
    """Serve the LLM request queue until SIGTERM or SIGINT (finishing requests in flight)."""
    settings = state(ctx).settings
    from ..llm.handlers import build_handler  # the LLM backends load here only
    from ..redact import redact

    logfiles.configure(settings.log_dir, settings.ai_name, console=True, mask=redact)
    slots = concurrency or settings.queue.concurrency
    banner(settings, f"LLM worker on {describe_queue(settings)}, concurrency {slots}")

    async def served() -> None:
        readiness = Readiness(settings, logging.getLogger("ai_sysadmin.service"))
        await serve_queue(settings, lambda s: build_handler(s, readiness=readiness),
                          concurrency=slots, worker_name=name, readiness=readiness)

    try:
        asyncio.run(served())
    except QueueError as exc:
        # the queue's file the machine refuses for now (a full disk: restarted with the
        # daemon, it cannot make its WAL's files): its unit starts it again until it opens,
        # as the daemon's; exit 2 left the daemon's investigations without a worker for good
        from ..store.refused import passing
        from .admin import EXIT_TRY_AGAIN

        if not isinstance(exc.__cause__, StoreRefused) or not passing(exc.__cause__):
            raise
        err.print(f"error: {exc}; exit {EXIT_TRY_AGAIN}: started again by its unit, it "
                  "serves the queue once it opens", markup=False, highlight=False,
                  soft_wrap=True)
        raise typer.Exit(EXIT_TRY_AGAIN) from None
