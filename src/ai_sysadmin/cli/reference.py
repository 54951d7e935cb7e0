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


def _limits(param: Any) -> str:
    """What ``--help`` says of a value besides its help: its range and its default."""
    said = []
    kind = getattr(param, "type", None)
    low, high = getattr(kind, "min", None), getattr(kind, "max", None)
    if low is not None or high is not None:
        said.append(f"range {'' if low is None else low}–{'' if high is None else high}")
    default = param.default
    if (getattr(param, "show_default", True) is not False and default not in (None, False, "")
            and not callable(default) and not getattr(param, "is_flag", False)):
        said.append(f"default {default}")
    return f" ({'; '.join(said)})" if said else ""


def _options(command: Command) -> list[str]:
    rows = []
    for param in command.params:
        help_text = (getattr(param, "help", None) or "").replace("|", "/").replace("\n", " ")
        help_text += _limits(param)
        if param.param_type_name == "option" and not param.hidden:
            names = ", ".join(f"`{n}`" for n in (*param.opts, *param.secondary_opts))
            rows.append(f"| {names} | {help_text} |")
        elif param.param_type_name == "argument":
            # as the usage line and --help name it (its metavar), not by its Python name
            shown = (param.metavar or param.name or "").strip("{}[]").upper()
            rows.append(f"| `{shown}` | {help_text} |")
    return rows


def _section(command: Command, path: list[str]) -> list[str]:
    doc = (command.help or "").strip().split("\n\n")[0].replace("\n", " ")
    lines = [f"## `{' '.join(path)}`", "", doc, "", "```", _usage(command, path), "```", ""]
    options = _options(command)
    if options:
        lines += ["| option or argument | meaning |", "|---|---|", *options, ""]
    return lines


def _walk(command: Command, path: list[str]) -> list[str]:
    if hasattr(command, "list_commands"):
        # asked through the group, as a command line would: the root loads its commands then
        ctx = command.context_class(command, info_name=" ".join(path))
        # a group's own help says what it does alone (`queue`'s view, `issues` listing,
        # `notify TITLE MESSAGE` sending) and its own options: a section of its own
        lines = _section(command, path) if len(path) > 1 else []
        for name in sorted(command.list_commands(ctx)):
            lines += _walk(command.get_command(ctx, name), [*path, name])
        return lines
    return _section(command, path)


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
