"""Which argv may run while investigating: a read-only allow-list per program and subcommand.

Deny by default. A decision always carries a reason a person can read. This is the policy the
``run_readonly`` tool goes through; remediation actions get their own policy (safety issue).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

Risk = str  # "none" | "low" | "medium" | "high"

_SAFE_ARG = re.compile(r"^[\w@%+=:,./~^\-\[\]*]{1,256}$")
_PATHISH = re.compile(r"(^|/)\.\.(/|$)")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    risk: Risk = "none"


@dataclass(frozen=True)
class ProgramRule:
    """Allowed subcommands (first non-option argument), or None when the program takes none;
    flags that are refused anywhere in the argv; whether any non-option argument may follow."""

    subcommands: frozenset[str] | None = None
    denied_flags: frozenset[str] = field(default_factory=frozenset)
    allowed_flags: frozenset[str] | None = None
    required_flags: frozenset[str] = field(default_factory=frozenset)
    max_operands: int = 16
    #: whether "-abc" means "-a -b -c" (GNU getopt); ip's "-br" is one flag
    combined_short: bool = True
    #: a last program-specific check: returns a refusal reason or None
    extra: Callable[[list[str]], str | None] | None = None


def _ip_show_only(args: list[str]) -> str | None:
    operands = [a for a in args if not a.startswith("-")]
    if len(operands) >= 2 and operands[1] not in {"show", "list", "ls", "get"}:
        return f"ip {operands[0]} {operands[1]} changes the network; only show/list/get"
    return None


_PS_VALUE_FLAGS = frozenset({"-o", "-p", "-u", "-U", "-C", "-g", "-G", "--sort", "-q"})


def _ps_no_environment(args: list[str]) -> str | None:
    # BSD-style "e" prints every process's environment, where secrets live
    for before, arg in zip(["", *args], args, strict=False):
        takes_value = before in _PS_VALUE_FLAGS or (
            before.startswith("-") and not before.startswith("--") and before[-1] in "opuUCgGq"
        )
        if arg.startswith("-") or takes_value:
            continue
        if "e" in arg:
            return "ps with the BSD 'e' option prints process environments (secrets)"
    return None


_REDIRECT = frozenset({"-H", "--host", "-M", "--machine", "--root", "--image", "-D",
                       "--directory", "--file", "-i"})

READ_ONLY: dict[str, ProgramRule] = {
    "systemctl": ProgramRule(
        subcommands=frozenset({"status", "show", "is-active", "is-enabled", "is-failed",
                               "list-units", "list-unit-files", "list-timers", "list-sockets",
                               "list-dependencies", "cat", "get-default"}),
        denied_flags=_REDIRECT | {"--runtime", "--force", "-f", "--now"},
    ),
    "journalctl": ProgramRule(
        denied_flags=_REDIRECT | {"--vacuum-size", "--vacuum-time", "--vacuum-files",
                                  "--rotate", "--flush", "--sync", "--relinquish-var",
                                  "--smart-relinquish-var", "--setup-keys", "--update-catalog",
                                  "-f", "--follow", "--verify", "--new-id128", "--interval",
                                  "--force"},
        required_flags=frozenset({"--no-pager"}),
        max_operands=4,
    ),
    "df": ProgramRule(),
    "free": ProgramRule(),
    "uptime": ProgramRule(),
    "uname": ProgramRule(),
    "ps": ProgramRule(extra=_ps_no_environment),
    "ls": ProgramRule(),
    "du": ProgramRule(denied_flags=frozenset({"--files0-from"})),
    "lsblk": ProgramRule(),
    "findmnt": ProgramRule(),
    "ss": ProgramRule(denied_flags=frozenset({"-K", "--kill", "-D", "--diag", "-F",
                                              "--filter"})),
    "ip": ProgramRule(
        subcommands=frozenset({"addr", "address", "link", "route", "neigh", "rule"}),
        denied_flags=frozenset({"-b", "-batch", "-force", "-n", "-netns", "-all"}),
        max_operands=3,
        combined_short=False,
        extra=_ip_show_only,
    ),
    "hostnamectl": ProgramRule(subcommands=frozenset({"status"}), denied_flags=_REDIRECT),
    "timedatectl": ProgramRule(subcommands=frozenset({"status", "show",
                                                      "timesync-status"}),
                               denied_flags=_REDIRECT),
    "systemd-analyze": ProgramRule(subcommands=frozenset({"blame", "critical-chain", "time"}),
                                   denied_flags=_REDIRECT),
    "loginctl": ProgramRule(subcommands=frozenset({"list-sessions", "list-users",
                                                   "show-session"}), denied_flags=_REDIRECT),
    "nixos-version": ProgramRule(),
    "nix-env": ProgramRule(allowed_flags=frozenset({"--list-generations", "-p", "--profile"}),
                           required_flags=frozenset({"--list-generations"})),
    "dmesg": ProgramRule(denied_flags=frozenset({"-c", "--read-clear", "-C", "--clear", "-D",
                                                 "--console-off", "-E", "--console-on", "-n",
                                                 "--console-level", "-w", "--follow", "-W",
                                                 "--follow-new", "-F", "--file"})),
    "vmstat": ProgramRule(max_operands=0),
    "id": ProgramRule(),
    "who": ProgramRule(max_operands=0),
    "w": ProgramRule(max_operands=0),
    "last": ProgramRule(denied_flags=frozenset({"-f", "--file"})),
    "getent": ProgramRule(subcommands=frozenset({"passwd", "group", "hosts", "services"})),
    "stat": ProgramRule(),
}


def _flag_name(arg: str) -> str:
    return arg.split("=", 1)[0]


def check_readonly(argv: list[str] | tuple[str, ...]) -> Decision:
    """May this argv run during an investigation?"""
    if isinstance(argv, str) or not argv:
        return Decision(False, "a command must be a non-empty list of arguments, not a string")
    program, args = argv[0], list(argv[1:])
    if "/" in program:
        return Decision(False, f"give the program by name, not by path: {program!r}")
    rule = READ_ONLY.get(program)
    if rule is None:
        allowed = ", ".join(sorted(READ_ONLY))
        return Decision(False, f"{program!r} is not on the read-only allow-list ({allowed})")
    if len(args) > 32:
        return Decision(False, "too many arguments (32 at most)")
    for arg in args:
        if not _SAFE_ARG.match(arg):
            return Decision(False, f"argument {arg[:40]!r} has characters that are not allowed")
        if _PATHISH.search(arg):
            return Decision(False, f"argument {arg!r} climbs out of a directory with '..'")
    flags = [_flag_name(a) for a in args if a.startswith("-") and a != "-"]
    operands = [a for a in args if not a.startswith("-")]
    for flag in flags:
        if flag in rule.denied_flags or (
            # combined short options: -fn hides -f
            rule.combined_short and not flag.startswith("--") and len(flag) > 2
            and any(f"-{c}" in rule.denied_flags for c in flag[1:])
        ):
            return Decision(False, f"{program} {flag} is not read-only or redirects the target")
        if rule.allowed_flags is not None and flag not in rule.allowed_flags:
            return Decision(False, f"{program} {flag} is not allowed while investigating")
    for needed in rule.required_flags:
        if needed not in flags:
            return Decision(False, f"{program} needs {needed} here")
    if rule.subcommands is not None:
        if not operands:
            return Decision(False, f"{program} needs one of: {', '.join(sorted(rule.subcommands))}")
        if operands[0] not in rule.subcommands:
            return Decision(
                False,
                f"{program} {operands[0]} is not read-only; allowed: "
                f"{', '.join(sorted(rule.subcommands))}",
            )
    if len(operands) > rule.max_operands + (1 if rule.subcommands else 0):
        return Decision(False, f"too many operands for {program}")
    if rule.extra is not None and (why := rule.extra(args)) is not None:
        return Decision(False, why)
    return Decision(True, f"{program} is read-only with these arguments")
