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
    "config": ("config",),
    "ask": ("ask",),
    "chat": ("chat",),
    "queue": ("queue",),
    "approve": ("approve",),
    "systems": ("systems",),
    "notify": ("notify",),
}


def dispatch(argv0: str, args: list[str]) -> tuple[str, list[str]]:
    """``hal-check --json`` -> (``hal-check``, ``["check", "--json"]``)."""
    prog = Path(argv0).name
    if prog == PROGRAM or "-" not in prog:
        return PROGRAM, args
    tool = prog.rsplit("-", 1)[1]
    if tool in TOOLS:
        return prog, [*TOOLS[tool], *args]
    return PROGRAM, args
