"""``{name}-<tool>`` is ``ai-sysadmin <command>``: the mapping, and argv[0] dispatch."""

from __future__ import annotations

from pathlib import Path

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
    given, rest = _take_config(args)
    chosen = given or config
    return prog, [*(["--config", chosen] if chosen else []), *TOOLS[tool], *rest]


def _take_config(args: list[str]) -> tuple[str | None, list[str]]:
    """The last ``-c X``/``--config X``/``--config=X`` before ``--``, and the other args."""
    found, rest, i = None, [], 0
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
        elif arg.startswith("-c") and len(arg) > 2 and not arg.startswith("--"):
            found = arg[2:]
        else:
            rest.append(arg)
        i += 1
    return found, rest
