"""``{name}-<tool>`` is ``ai-sysadmin <command>``: the mapping, and argv[0] dispatch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PROGRAM = "ai-sysadmin"

#: tool suffix -> the ai-sysadmin arguments it stands for
TOOLS: dict[str, tuple[str, ...]] = {
    "check": ("check",),
    "issues": ("issues",),
    "logs": ("logs",),
    "drill": ("drill",),
    "eval": ("eval",),
    "config": ("config",),
    "ask": ("ask",),
    "chat": ("chat",),
    "queue": ("queue",),
    "approve": ("approve",),
    "systems": ("systems",),
    "notify": ("notify",),
    "knowledge": ("knowledge",),
    "configs": ("configs",),
}


def dispatch(argv0: str, args: list[str], config: str | None = None) -> tuple[str, list[str]]:
    """``hal-check --json`` -> (``hal-check``, ``["check", "--json"]``).

    ``-c/--config`` is the root's option: given after a tool's name (``hal-check -c x``) it is
    moved in front of the command. ``config``: the one a ``commands install`` link was made
    with, used when none is given on the line.
    """
    prog = Path(argv0).name
    tool = prog.rsplit("-", 1)[1] if prog != PROGRAM and "-" in prog else None
    if tool not in TOOLS:
        return PROGRAM, args
    given, rest = _take_config(args, TOOLS[tool])
    chosen = given or config
    return prog, [*(["--config", chosen] if chosen else []), *TOOLS[tool], *rest]


def _take_config(args: list[str], words: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """The last ``-c X``/``-cX``/``--config X``/``--config=X`` before ``--``, and the other
    args. ``words``: the command the args are given to; a word that is the value of one of its
    options (``--reason "-cheaper to wait"``) is that value, never the config; a ``-cX`` that
    is text (:func:`_joined_config`) is left to the command."""
    found, rest, i = None, [], 0
    command = _command(words)
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        if arg in ("-c", "--config") and i + 1 < len(args):
            found, i = args[i + 1], i + 2
            continue
        if arg.startswith("--config="):
            found = arg.split("=", 1)[1]
        elif (joined := _joined_config(arg)) is not None:
            found = joined
        else:
            taken = 1 + _value_words(command, arg)
            rest += args[i:i + taken]
            i += taken
            if not arg.startswith("-"):
                command = _subcommand(command, arg)
            continue
        i += 1
    return found, rest


def _joined_config(arg: str) -> str | None:
    """The file of a ``-cFILE``; None for a word that is not one. A question may start with
    ``-c`` too (``hal-ask "-cpu at 100%, why?"``): taken as the config, it was lost, and the
    command said its question was missing. So only a file that is there, or a word that
    reads as a path (one word, with a ``/`` or ending in ``.toml``), is a config; anything
    else is the command's, which says that text starting with a dash goes after ``--``."""
    if not arg.startswith("-c") or len(arg) <= 2 or arg.startswith("--"):
        return None
    path = arg[2:]
    if os.path.isfile(path) or (not any(c.isspace() for c in path)
                                and ("/" in path or path.endswith(".toml"))):
        return path
    return None


def _command(words: tuple[str, ...]) -> Any:
    """The click command ``words`` name (``("approve",)``: the approve group)."""
    from .lazy import load  # imports the command's module: only a tool's line needs it

    return load(words[0])


def _subcommand(command: Any, word: str) -> Any:
    """The command a word leads to from ``command``: its subcommand so named, else itself."""
    return getattr(command, "commands", {}).get(word, command)


def _value_words(command: Any, word: str) -> int:
    """How many words after ``word`` are its value: an option of ``command`` (or, for a group
    that lists when given no command, of its ``list``) given without its value joined."""
    if not word.startswith("-") or word == "-":
        return 0
    commands = [command, *([command.commands["list"]]
                           if "list" in getattr(command, "commands", {}) else [])]
    for each in commands:
        for param in each.params:
            if param.param_type_name == "option" and word in (*param.opts,
                                                              *param.secondary_opts):
                return 0 if param.is_flag or param.count else param.nargs
    return 0
