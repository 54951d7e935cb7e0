"""What ``ask``, ``chat`` and ``approve discuss`` run: the agent, the queue and the backends,
imported only when a conversation starts (they cost most of a command's start)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
from pathlib import Path
from typing import Any

from rich.markdown import Markdown

from ..agent.context import ToolContext
from ..agent.investigate import chat_opening
from ..agent.loop import Agent, AgentEvent, AgentOutcome
from ..agent.tools import REGISTRY
from ..config import Settings
from ..llm.backends import make_backend
from ..llm.queue import open_queue
from ..llm.types import BackendStatus, Message, Priority
from ..orchestrator.runtime import Runtime
from ..orchestrator.session import llm_session
from ..store import Action
from .context import AppState, err, out, print_json


def _opening(runtime: Runtime, tools: ToolContext) -> Message:
    # this host's facts: a local read, no connection to close
    facts = asyncio.run(runtime.load_facts(runtime.local.host))
    return chat_opening(tools.settings, facts, managed=sorted(tools.transports))


def _show(event: AgentEvent) -> None:
    if event.kind == "tool_call":
        err.print(f"[dim]  → {event.name} {event.detail}[/dim]", markup=True, highlight=False)
    elif event.kind == "tool_result" and event.detail != "ok":
        err.print(f"[dim]    {event.name}: {event.detail}[/dim]")


async def _turn(runtime: Runtime, ctx: ToolContext, messages: list[Message],
                quiet: bool) -> AgentOutcome:
    settings = runtime.settings
    try:
        async with llm_session(settings, Priority.INTERACTIVE) as llm:
            agent = Agent(llm, REGISTRY, ctx, settings.agent, on_event=None if quiet else _show)
            return await agent.run(messages)
    finally:
        # SSH connections belong to this turn's event loop
        await runtime.close()


async def _backend_status(settings: Settings) -> BackendStatus:
    backend = make_backend(settings.llm)
    try:
        return await backend.status()
    finally:
        await backend.aclose()


def _debug(settings: Settings) -> None:
    st = asyncio.run(_backend_status(settings))
    queue = open_queue(settings)
    try:
        stats, workers = queue.stats(), queue.live_workers()
    finally:
        queue.close()
    out.print(f"backend {st.backend} at {st.url}: "
              f"{'reachable' if st.reachable else 'NOT reachable'}, model {st.model} "
              f"{'present' if st.model_present else 'MISSING'} {st.detail}".rstrip())
    out.print(f"queue: {stats.depth} pending, {stats.in_flight} in flight, {workers} worker(s)")


def _history_file(settings: Settings) -> Path:
    return settings.state_dir / "chat_history"


def action_conversation(runtime: Runtime, action: Action, message: str | None) -> None:
    """``approve discuss``: a conversation about one action and its incident, looking at the
    action's host unless told otherwise."""
    tools = runtime.tool_context(action.host, action.incident_id)
    about = (f"We are discussing action {action.id}: {action.kind} "
             f"{json.dumps(action.params)} on host {action.host}. The policy gave it risk "
             f"{action.risk} and decided: {action.reason}. Its state is {action.state}.")
    if action.incident_id:
        about += (f" It was proposed for incident #{action.incident_id}; call "
                  "incident_evidence to see it.")
    messages = [_opening(runtime, tools), Message("user", about),
                Message("assistant", "Understood. What would you like to know about it?")]
    if message is not None:
        outcome = asyncio.run(_turn(runtime, tools, [*messages, Message("user", message)],
                                    quiet=False))
        out.print(Markdown(outcome.answer))
        return
    _repl(runtime, tools, messages, f"discussing action {action.id}")


def _repl(runtime: Runtime, tools: ToolContext, opening: list[Message], title: str) -> None:
    settings = runtime.settings
    try:
        import readline  # line editing and persistent history, where the platform has it
    except ImportError:  # pragma: no cover - every Linux Python has it
        readline = None  # type: ignore[assignment]
    history = _history_file(settings)
    if readline is not None:
        with contextlib.suppress(OSError):
            history.parent.mkdir(parents=True, exist_ok=True)
            readline.read_history_file(history)
        readline.set_history_length(1000)
        atexit.register(lambda: _save_history(readline, history))
    messages = list(opening)
    out.print(f"[bold]{settings.ai_name}[/bold] · {title} (autonomy "
              f"{settings.autonomy_level}); /exit to leave, /debug for the backend and queue")
    while True:
        try:
            line = input(f"{settings.ai_name}> ").strip()
        except (EOFError, KeyboardInterrupt):
            out.print()
            break
        if not line:
            continue
        if line in ("/exit", "/quit"):
            break
        if line == "/clear":
            messages = list(opening)
            out.print("conversation cleared")
            continue
        if line == "/history":
            asked = [m.content for m in messages[len(opening):] if m.role == "user"]
            for number, text in enumerate(asked, 1):
                out.print(f"{number:>3}  {text}", markup=False)
            if not asked:
                out.print("nothing asked yet in this conversation")
            continue
        if line == "/debug":
            _debug(settings)
            continue
        if line.startswith("/"):
            out.print("commands: /exit /quit /clear /history /debug")
            continue
        try:
            outcome = asyncio.run(_turn(runtime, tools, [*messages, Message("user", line)],
                                        quiet=False))
        except Exception as exc:
            err.print(f"[red]{type(exc).__name__}:[/red] {exc}", highlight=False)
            continue
        messages = outcome.messages
        out.print(Markdown(outcome.answer))


def _save_history(readline: Any, path: Path) -> None:
    with contextlib.suppress(OSError):
        readline.write_history_file(path)


def run_ask(app_state: AppState, question: str, as_json: bool) -> None:
    settings = app_state.settings
    runtime = app_state.runtime()
    tools = runtime.tool_context()
    messages = [_opening(runtime, tools), Message("user", question)]
    outcome = asyncio.run(_turn(runtime, tools, messages, quiet=as_json))
    if as_json:
        calls = [{"tool": c.name, "arguments": c.arguments}
                 for m in outcome.messages for c in m.tool_calls]
        print_json({"name": settings.ai_name, "answer": outcome.answer,
                    "stop_reason": outcome.stop_reason, "tool_calls": calls,
                    "proposals": outcome.proposals})
        return
    out.print(Markdown(outcome.answer))


def run_chat(app_state: AppState) -> None:
    runtime = app_state.runtime()
    tools = runtime.tool_context()
    _repl(runtime, tools, [_opening(runtime, tools)], "chat")


def run_llm_status(settings: Settings, as_json: bool) -> int:
    """Print the backend's status; the exit code: 0 ready, 1 not."""
    st = asyncio.run(_backend_status(settings))
    ready = st.reachable and st.model_present
    if as_json:
        print_json({"backend": st.backend, "url": st.url, "model": st.model,
                    "reachable": st.reachable, "model_present": st.model_present,
                    "detail": st.detail, "models": list(st.models)})
    else:
        verdict = "[green]ready[/green]" if ready else "[red]not ready[/red]"
        out.print(f"{settings.ai_name} · LLM {st.backend} at {st.url}: {verdict}")
        out.print(f"reachable: {st.reachable} · model {st.model}: "
                  f"{'present' if st.model_present else 'missing'}")
        if st.detail:
            out.print(st.detail, markup=False)
        if st.models:
            out.print("models: " + ", ".join(st.models[:20]), markup=False)
    return 0 if ready else 1
