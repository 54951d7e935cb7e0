"""The root command group, whose commands load when one is run.

Importing every command module at start costs most of a second (the config model, the store,
the executor, the LLM clients); ``--help`` and ``--version`` need none of it. A command's
module is imported when the command is resolved; the root help lists the commands from the
one-line help kept here, so listing them imports nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

#: command -> (module under ai_sysadmin.cli, attribute: a command function or a Typer, help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "check": ("check", "check", "Check this host, a managed one, or all of them, now."),
    "run": ("admin", "run", "Run the daemon: checks every interval plus a journal follower."),
    "logs": ("admin", "logs", "The project's own structured logs; audit: every decision."),
    "drill": ("drill", "drill", "Inject a fault into a throw-away systemd (fire drill)."),
    "eval": ("eval", "eval_command", "Score a model on fault-lab scenarios, the whole loop."),
    "ask": ("converse", "ask", "One question, one answer."),
    "chat": ("converse", "chat", "A conversation with the assistant."),
    "worker": ("queue_cmd", "worker", "Serve the LLM request queue until SIGTERM or SIGINT."),
    "setup": ("setup", "setup", "Install the daemon as systemd services."),
    "queue": ("queue_cmd", "app", "The LLM request queue: depth, requests in flight, wait times."),
    "llm": ("converse", "llm_app", "The LLM server."),
    "issues": ("issues", "app", "Incidents: list, show, resolve, close."),
    "approve": ("approve", "app", "Actions waiting for a person: list, show, discuss, "
                "approve, reject."),
    "systems": ("systems", "app", "Managed systems: list, add, remove, accept, refresh."),
    "policy": ("approve", "policy_app", "Ask the policy why something is allowed or refused."),
    "config": ("admin", "config_app", "Inspect the configuration."),
    "commands": ("admin", "commands_app", "The {name}-<tool> commands."),
    "notify": ("notify", "app", "Notifications: send one now, or see the deliveries."),
    "knowledge": ("knowledge", "app", "Knowledge: list, search, show, add, remove, export, "
                  "import."),
    "configs": ("configs", "configs", "Search the configuration repository; --sync fetches it."),
}


def load(name: str) -> Any:
    """The click command for ``name``, importing its module now."""
    module, attribute, _ = COMMANDS[name]
    target = getattr(importlib.import_module(f"{__package__}.{module}"), attribute)
    # mounted under a holder as the root app would mount it, so it is built the same way
    # (a sub-app made a root of its own would grow --install-completion)
    holder = typer.Typer(add_completion=False, rich_markup_mode=None)
    holder.callback()(_nothing)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    return typer.main.get_command(holder).commands[name]  # type: ignore[attr-defined]


def _nothing() -> None:
    """The holder's callback: makes it a group whatever it holds."""


class LazyGroup(TyperGroup):
    """Resolves a command by importing its module; help lists them without importing any."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        eager = super().list_commands(ctx)
        return [*eager, *(name for name in COMMANDS if name not in eager)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        if self._listing:
            return TyperCommand(cmd_name, help=COMMANDS[cmd_name][2])
        self.commands[cmd_name] = load(cmd_name)
        return self.commands[cmd_name]

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        tool = getattr(ctx.obj, "tool", None)
        # run as `hal-check`, the command is called that in its usage line and errors
        # (the root then has no name of its own: main gives it none)
        return (tool or name), command, rest

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False
