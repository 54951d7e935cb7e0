"""``{name}-ask``, ``{name}-chat`` and ``llm status``: the options here, the work in ``talk``
(the agent, the queue and the LLM clients load only when a conversation starts)."""

from __future__ import annotations

from typing import Annotated

import typer

from .context import state


def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(metavar="QUESTION", help="What to ask.")],
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the answer, tool calls and proposals as JSON.")] = False,
) -> None:
    """One question, one answer (through the queue, at interactive priority)."""
    if not question.strip():
        raise typer.BadParameter("is empty", param_hint="QUESTION")
    from .talk import run_ask

    run_ask(state(ctx), question, as_json)


def chat(ctx: typer.Context) -> None:
    """A conversation: /exit, /quit, /clear, /history, /debug. Line editing and history;
    Ctrl-C withdraws the question being answered (or lets go of /debug), Ctrl-D leaves;
    SIGTERM or a closed terminal ends it."""
    from .talk import run_chat

    run_chat(state(ctx))


def llm_status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Does the LLM server answer, and is the configured model there? Also what the queue's
    workers, which answer questions and investigations, say of the LLM they serve: where
    they say, their word decides; a queue that cannot be reached answers nothing. Exit 0
    yes, 1 no."""
    from .talk import run_llm_status

    raise typer.Exit(run_llm_status(state(ctx).settings, as_json))


llm_app = typer.Typer(help="The LLM server.")
llm_app.command("status")(llm_status)

__all__ = ["ask", "chat", "llm_app", "llm_status"]
