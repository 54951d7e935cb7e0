"""The command reference (docs/cli.md, and a page per command in docs/commands/), generated from
the CLI itself so it cannot drift: ``python scripts/cli_reference.py`` writes them, ``--check``
fails when one is stale (the suite runs the check)."""

from __future__ import annotations

from typing import Any

import typer

from .dispatch import TOOLS

# typer carries its own copy of click: its objects are read by their documented attributes
# (``commands``, ``params``, ``opts``, ``param_type_name``), not by isinstance on click's classes
Command = Any


def _usage(command: Command, path: list[str]) -> str:
    ctx = command.context_class(command, info_name=" ".join(path))
    return " ".join([*path, *command.collect_usage_pieces(ctx)])


def _options(command: Command) -> list[str]:
    rows = []
    for param in command.params:
        help_text = (getattr(param, "help", None) or "").replace("|", "/").replace("\n", " ")
        if param.param_type_name == "option" and not param.hidden:
            names = ", ".join(f"`{n}`" for n in (*param.opts, *param.secondary_opts))
            rows.append(f"| {names} | {help_text} |")
        elif param.param_type_name == "argument":
            rows.append(f"| `{(param.name or '').upper()}` | {help_text} |")
    return rows


def _walk(command: Command, path: list[str]) -> list[str]:
    if hasattr(command, "list_commands"):
        # asked through the group, as a command line would: the root loads its commands then
        ctx = command.context_class(command, info_name=" ".join(path))
        lines = []
        for name in sorted(command.list_commands(ctx)):
            lines += _walk(command.get_command(ctx, name), [*path, name])
        return lines
    doc = (command.help or "").strip().split("\n\n")[0].replace("\n", " ")
    lines = [f"## `{' '.join(path)}`", "", doc, "", "```", _usage(command, path), "```", ""]
    options = _options(command)
    if options:
        lines += ["| option or argument | meaning |", "|---|---|", *options, ""]
    return lines


def _tools(command: str) -> list[str]:
    """The ``{name}-<tool>`` suffixes that stand for ``command`` (dispatch.TOOLS)."""
    return sorted(tool for tool, args in TOOLS.items() if args[:1] == (command,))


def render(app: typer.Typer) -> str:
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="ai-sysadmin")
    names = sorted(root.list_commands(ctx))
    tools = ", ".join(f"`{name}`" for name in names if _tools(name))
    others = ", ".join(f"`{name}`" for name in names if not _tools(name))
    head = ["# Command reference", "",
            "Generated from the CLI by `python scripts/cli_reference.py`; a test fails when it "
            "is stale. These commands also run as `{name}-<command>` (`hal-check`, "
            "`hal-approve list`) where `setup`, `commands install` or the NixOS module installed "
            f"them: {tools}. The others ({others}) run only as `ai-sysadmin <command>`.", ""]
    return "\n".join(head + _walk(root, ["ai-sysadmin"])).rstrip() + "\n"


def pages(app: typer.Typer) -> dict[str, str]:
    """One page per command (a group's page holds its subcommands): file name -> text."""
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="ai-sysadmin")
    found = {}
    for name in sorted(root.list_commands(ctx)):
        command = root.get_command(ctx, name)
        same = "".join(f"`{{name}}-{tool}` (e.g. `hal-{tool}`) is the same command; "
                       for tool in _tools(name))
        head = [f"# `ai-sysadmin {name}`", "",
                f"Generated from the CLI by `python scripts/cli_reference.py`. {same}"
                f"{'the' if same else 'The'} whole reference is in [../cli.md](../cli.md).", ""]
        body = [line.replace("## ", "### ", 1) if line.startswith("## ") else line
                for line in _walk(command, ["ai-sysadmin", name])]
        found[f"{name}.md"] = "\n".join(head + body).rstrip() + "\n"
    return found
