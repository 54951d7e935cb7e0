"""Which argv may run: a read-only allow-list for investigating, and an allow-list of remediation
shapes, each with its risk. Pure code, no I/O; deny by default; every decision has a reason a
person can read.

Every argument is checked first (text, not empty, at most 256 characters or, for a path,
what the kernel takes, ``argv_parser.path_too_long``; no NUL, control or invisible character,
no ``..`` path component; at most 32 arguments), the program is given by bare ASCII name
(the executor resolves paths), then the argv is parsed the way the program itself parses it
(``argv_parser.py``) against the read-only allow-list (``readonly_commands.py``) or the
remediation shapes (``remediation_commands.py``). Letters beyond ASCII pass only in a path
that a read-only program takes as a path (``ls``, ``du``, ``stat``, ``find``...); everywhere
else they are refused before parsing, as look-alikes.

:func:`as_run` is what actually runs once the policy said yes: the argv with ``--no-pager``
for the systemd tools, so a model need not remember it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from ..redact import redact_cut
from .argv_parser import (
    PATH_MAX,
    RISKS,
    Decision,
    Refused,
    describe_char,
    hidden_char,
    path_too_long,
    refuse,
)
from .protected import configured_problem
from .readonly_commands import CUSTOM, NOT_READ_ONLY, READ_ONLY, check_read_only, never_reason
from .remediation_commands import REMEDIATION

__all__ = ["CHANGES_HOST", "PAGERS", "RISKS", "Decision", "as_run", "check_command",
           "check_readonly"]

Purpose = Literal["investigate", "remediate"]

MAX_ARGS = 32
MAX_ARG_LEN = 256
#: the longest argument any rule takes: a path as long as the kernel takes one, after an
#: option's name (``--reference=/srv/...``)
MAX_ANY_ARG = MAX_ARG_LEN + PATH_MAX
PATHISH = re.compile(r"(^|/)\.\.(/|$)")
CHANGES_HOST = "it changes the host; not allowed while investigating (propose it as an action)"


def _where(index: int) -> str:
    return "the program name" if index == 0 else f"argument {index}"


def _non_ascii(index: int, arg: str) -> str:
    char = next(c for c in arg if not c.isascii())
    return (f"{_where(index)} holds the non-ASCII character U+{ord(char):04X}: letters beyond "
            "ASCII are allowed in paths only (a look-alike could name another unit or program)")


def _maybe_path(index: int, arg: str) -> bool:
    """Could the grammar take this argument as a path? Only then may it hold letters beyond
    ASCII (the parser's path check decides); a '/' must come before the first of them, so a
    unit, verb, option or PID with a look-alike is refused here, with this reason."""
    first = next((i for i, c in enumerate(arg) if not c.isascii()), len(arg))
    return index > 0 and "/" in arg[:first]


def _length_problem(index: int, arg: str) -> str | None:
    """A path (``/srv/...``, ``--reference=/srv/...``) may be as long as the kernel and the
    file policy take one (the same check); the parser's path check still judges it. Other
    values are short."""
    value = arg.partition("=")[2] if arg.startswith("--") else arg
    if index > 0 and value.startswith("/"):
        problem = path_too_long(value)
        return f"{_where(index)} is {problem}" if problem else None
    if len(arg) > MAX_ARG_LEN:
        return f"{_where(index)} is too long ({len(arg)} characters; {MAX_ARG_LEN} at most)"
    return None


def _arg_problem(index: int, arg: object) -> str | None:
    where = _where(index)
    if not isinstance(arg, str):
        return f"{where} is not text"
    if not arg:
        return f"{where} is empty"
    if (problem := _length_problem(index, arg)) is not None:
        return problem
    if "\x00" in arg:
        return f"{where} holds a NUL byte"
    if (char := hidden_char(arg)) is not None:
        if char.isascii():
            return f"{where} holds the control character {char!r}"
        return (f"{where} holds the non-ASCII invisible or control character "
                f"{describe_char(char)}: never allowed")
    if not arg.isascii() and not _maybe_path(index, arg):
        return _non_ascii(index, arg)
    if PATHISH.search(arg):
        return f"argument {redact_cut(arg, 60)!r} climbs out of a directory with '..'"
    return None


def _basic_problem(argv: object) -> str | None:
    if isinstance(argv, str | bytes) or not isinstance(argv, list | tuple) or not argv:
        return "a command must be a non-empty list of arguments, not a string"
    if len(argv) > MAX_ARGS + 1:
        return f"too many arguments ({len(argv) - 1}; {MAX_ARGS} at most)"
    for index, arg in enumerate(argv):
        if (problem := _arg_problem(index, arg)) is not None:
            return problem
    program = argv[0]
    if "/" in program:
        return f"give the program by name, not by path: {program!r}"
    return None


def check_command(
    argv: list[str] | tuple[str, ...],
    purpose: Purpose,
    protected: Iterable[str] = (),
) -> Decision:
    """May this argv run for this purpose, and at what risk?

    ``investigate``: read-only commands only (risk "none"); a command that changes the host is
    refused even when it would be allowed as a remediation. ``remediate``: one of the
    remediation shapes, with its risk, or a read-only command (risk "none"). ``protected``:
    configured units that are protected on top of the built-in ones.
    """
    if purpose not in ("investigate", "remediate"):
        return refuse(f"unknown purpose {purpose!r}: investigate or remediate")
    if (problem := _basic_problem(argv)) is not None:
        return refuse(problem)
    extra = (protected,) if isinstance(protected, str) else tuple(protected or ())
    for entry in extra if purpose == "remediate" else ():
        if (bad := configured_problem(entry)) is not None:
            return refuse(f"the configured protected units hold an invalid entry ({bad}); "
                           "fix safety.protected_units")
    program, args = argv[0], list(argv[1:])
    if not all(arg.isascii() for arg in args):
        # only a read takes a path beyond ASCII; no remediation shape ever does
        try:
            return check_read_only(program, args)
        except Refused as refused:
            if purpose == "remediate":
                index = next(i for i, a in enumerate(argv) if not a.isascii())
                char = next(c for c in argv[index] if not c.isascii())
                return refuse(f"{_where(index)} holds the non-ASCII character "
                              f"U+{ord(char):04X}: no remediation takes letters beyond ASCII")
            return refuse(str(refused))
    try:
        if purpose == "remediate":
            return _remediate(program, args, extra)
        return check_read_only(program, args)
    except Refused as refused:
        reason = str(refused)
    if purpose == "investigate" and program in REMEDIATION:
        try:
            if _remediate(program, args, extra).allowed:
                known = program in READ_ONLY or program in CUSTOM
                reason = f"{reason}; {CHANGES_HOST}" if known else \
                    f"{program} is not read-only: {CHANGES_HOST}"
        except Refused:
            pass
    return refuse(reason)


def _remediate(program: str, args: list[str], protected: tuple[str, ...]) -> Decision:
    """A read is fine while remediating (risk "none"); otherwise a remediation shape."""
    try:
        return check_read_only(program, args)
    except Refused as refused:
        read_refusal = refused
    handler = REMEDIATION.get(program)
    decision = handler(args, protected) if handler else None
    if decision is not None:
        return decision
    if program in READ_ONLY or program in CUSTOM or program in NOT_READ_ONLY:
        raise read_refusal
    why = never_reason(program)
    raise Refused(f"{program!r} is not on the remediation allow-list"
                   + (f": {program} {why}" if why else f" ({', '.join(sorted(REMEDIATION))})"))


def check_readonly(argv: list[str] | tuple[str, ...]) -> Decision:
    """May this argv run during an investigation?"""
    return check_command(argv, "investigate")


#: systemd tools that can start a pager for long output. A pager waits for a key; --no-pager
#: makes sure none starts, whatever the transport's terminal. hostnamectl has no --no-pager
#: option (it would fail with one), so it is not here.
PAGERS = frozenset({"systemctl", "journalctl", "loginctl", "timedatectl", "systemd-analyze",
                    "coredumpctl", "resolvectl", "networkctl", "busctl", "machinectl",
                    "localectl", "bootctl", "systemd-cgls", "systemd-delta", "oomctl",
                    "userdbctl", "homectl", "portablectl"})


def as_run(argv: list[str] | tuple[str, ...]) -> list[str]:
    """The argv to run once the policy allowed ``argv``: ``--no-pager`` right after the
    program name for the systemd tools that page, unless it is there already. The policy
    judged the argv without it, and adding it only turns a pager off."""
    run = list(argv)
    if not run or run[0] not in PAGERS:
        return run
    options = run[1:run.index("--")] if "--" in run else run[1:]
    if "--no-pager" in options:
        return run
    return [run[0], "--no-pager", *run[1:]]
