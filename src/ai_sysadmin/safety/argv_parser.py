"""The grammar of an argv: how each program parses its arguments, and the checks on values.

The argv is parsed the way the program itself parses it: GNU ``getopt_long`` for most (``-fn``
is ``-f -n``, ``--flag=value`` and ``--flag value``, ``--`` ends the options, an unambiguous
prefix such as ``--vacuum-s`` abbreviates a long option). Only options on a :class:`Spec` pass;
abbreviations never do, and an abbreviation of a refused option says which one it would have
been. Pure code, no I/O.

Every value goes through :func:`check_value`: letters beyond ASCII pass only where the grammar
takes the value as a path (:func:`absolute_path`), because a file may be called
``/srv/my files/naïve.txt``, while a look-alike letter in a unit, program, option or pattern
could name something else than what a person reads.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..redact import redact_cut
from .units import VALID_CHARS, normalise_unit

Risk = str  # one of RISKS
RISKS: tuple[str, ...] = ("none", "low", "medium", "high")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    risk: Risk = "none"


class Refused(Exception):
    """Internal: the argv is refused for the reason given."""


def refuse(reason: str) -> Decision:
    return Decision(False, reason, "high")


# -- characters ------------------------------------------------------------------------------
#: Unicode categories nobody can see or that steer how text is shown: control, format (U+200B,
#: U+202E, U+FEFF), private use, surrogates, unassigned, line and paragraph separators
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})


def hidden_char(text: str) -> str | None:
    """The first character of ``text`` that is invisible or a control (a space other than
    U+0020 counts: it looks like one and is not); None when there is none."""
    for char in text:
        category = unicodedata.category(char)
        if category in _HIDDEN_CATEGORIES or (category == "Zs" and char != " "):
            return char
        if char.isascii() and not char.isprintable():
            return char
    return None


def describe_char(char: str) -> str:
    """How a refusal names a character: U+200B (ZERO WIDTH SPACE)."""
    name = unicodedata.name(char, unicodedata.category(char))
    return f"U+{ord(char):04X} ({name})"


def ascii_problem(value: str) -> str | None:
    char = next((c for c in value if not c.isascii()), None)
    if char is None:
        return None
    return (f"holds the non-ASCII character U+{ord(char):04X}: letters beyond ASCII are "
            "allowed in paths only (a look-alike could name another unit, program or option)")


# -- value checks: each returns what is wrong with a value, or None --------------------------
Validator = Callable[[str], str | None]


def charset(pattern: str, what: str) -> Validator:
    rx = re.compile(pattern)

    def check(value: str) -> str | None:
        return None if rx.fullmatch(value) else what

    return check


plain_value = charset(r"[A-Za-z0-9@%+=:,./~^_\-\[\]*]+", "has characters that are not allowed")
number_value = charset(r"\+?[0-9]{1,6}", "is not a number")
word_list = charset(r"[A-Za-z0-9_,.:\-]+", "is not a list of words")
#: NAME,NAME...: no name empty, since systemctl -p and journalctl --output-fields given only
#: empty names (",") have none to keep and print every property or field, secrets included
property_list = charset(r"[A-Za-z0-9_]+(,[A-Za-z0-9_]+)*",
                        "is not a list of names (NAME,NAME..., none empty): empty names "
                        "alone name nothing, and then every one is printed, process "
                        "environments too")
time_value = charset(r"[A-Za-z0-9 :+.@\-]{1,64}",
                     "is not a time ('-1h', 'today', '2024-05-01 10:00')")
priority_value = charset(r"(emerg|alert|crit|err|warning|notice|info|debug|[0-7])"
                         r"(\.\.(emerg|alert|crit|err|warning|notice|info|debug|[0-7]))?",
                         "is not a priority (emerg .. debug, or 0-7)")
BOOT_ID = re.compile(r"-?[0-9]{1,4}|[0-9a-f]{32}([+-][0-9]{1,4})?|all")
LINE_COUNT = re.compile(r"\+?[0-9]{1,6}|all")
user_name = charset(r"[A-Za-z_][A-Za-z0-9_.\-]{0,31}\$?", "is not a user name")
size_value = charset(r"[0-9]{1,12}[KMGTkmgt]?i?[Bb]?", "is not a size")
journal_match = charset(r"[A-Z0-9_]{1,64}=[A-Za-z0-9@%+=:,./~^_\-]{0,200}|\+",
                        "is not a journal match (FIELD=value)")


def any_value(value: str) -> str | None:
    """Printable ASCII (patterns, formats): the argument checks already refused the rest."""
    return ascii_problem(value)


#: the kernel's PATH_MAX (linux/limits.h): bytes, the terminating NUL included
PATH_MAX = 4096


def path_too_long(value: str) -> str | None:
    """Why the kernel would refuse ``value`` as a path for its length; None when it takes it.
    The one length check of paths, for the command policy and the file policy alike."""
    size = len(value.encode("utf-8", "surrogatepass"))
    if size < PATH_MAX:
        return None
    return f"too long a path ({size} bytes; the kernel takes {PATH_MAX - 1} at most)"


def absolute_path(value: str) -> str | None:
    """An absolute path, as the file policy takes one: any printable character (``/srv/app
    (old)/it's #2``, ``/srv/naïve``), since an argv never meets a shell and a file may be named
    so; invisible and control characters are not (a person could not read what runs)."""
    if (char := hidden_char(value)) is not None:
        return f"holds the invisible or control character {describe_char(char)}"
    if (problem := path_too_long(value)) is not None:
        return f"is {problem}"
    return None if value.startswith("/") else "is not allowed: give an absolute path"


#: the only validators that accept letters beyond ASCII: they take the value as a path
UNICODE_VALIDATORS: frozenset[Validator] = frozenset({absolute_path})


def check_value(validator: Validator, value: str) -> str | None:
    """What is wrong with ``value`` for ``validator``; every value check goes through here, so
    a validator written for ASCII (``str.isdigit`` takes Arabic-Indic digits) never sees more."""
    if validator not in UNICODE_VALIDATORS and (problem := ascii_problem(value)):
        return problem
    return validator(value)


def output_columns(value: str) -> str | None:
    if "environ" in value:
        return "would print process environments (secrets)"
    return charset(r"[A-Za-z0-9_,:%=+.\-]+", "is not a list of output columns")(value)


def unit_pattern(value: str) -> str | None:
    """A unit name (``nginx``, ``sshd@.service``) or a glob of one, as systemctl takes it."""
    if value.startswith("-"):
        return "is not a valid systemd unit name (it reads as an option)"
    if set(value) - VALID_CHARS - set("@*?[]"):
        return "is not a valid systemd unit name"
    if set("*?[") & set(value):
        return None
    return None if normalise_unit(value) else "is not a valid systemd unit name"


def unit_or_pid(value: str) -> str | None:
    return None if value.isascii() and value.isdigit() else unit_pattern(value)


def journal_operand(value: str) -> str | None:
    return absolute_path(value) if value.startswith("/") else journal_match(value)


# -- options and the argv parser --------------------------------------------------------------
NONE, REQUIRED, OPTIONAL = "none", "required", "optional"


@dataclass(frozen=True)
class Opt:
    names: tuple[str, ...]
    arg: str = NONE
    value: Validator | None = None
    #: an optional value given as the next argument (journalctl -n 50, -b -1)
    next_if: re.Pattern[str] | None = None

    @property
    def canonical(self) -> str:
        return next((n for n in self.names if n.startswith("--")), self.names[0])


def opt(names: str, arg: str = REQUIRED, value: Validator | None = None,
        next_if: re.Pattern[str] | None = None) -> Opt:
    return Opt(tuple(names.split()), arg, value, next_if)


def flags(groups: str) -> tuple[Opt, ...]:
    """``"-a --all, --plain"``: options without a value."""
    return tuple(Opt(tuple(g.split())) for g in groups.split(",") if g.strip())


def deny(names: str, why: str) -> dict[str, str]:
    return dict.fromkeys(names.split(), why)


@dataclass(frozen=True)
class Spec:
    options: tuple[Opt, ...] = ()
    #: refused options (with their abbreviations): name -> "is not read-only: ..."
    denied: Mapping[str, str] = field(default_factory=dict)
    #: the first operand must be one of these
    subcommands: frozenset[str] | None = None
    #: the subcommand the program runs when none is given (``systemctl`` is ``list-units``)
    default_subcommand: str | None = None
    #: subcommand -> (its operands' check, how many at most), instead of operand/max_operands
    sub_operands: Mapping[str, tuple[Validator, int]] = field(default_factory=dict)
    #: subcommand -> why it is refused (more specific than "not read-only")
    refused_subcommands: Mapping[str, str] = field(default_factory=dict)
    operand: Validator = plain_value
    max_operands: int = 16
    #: option -> the subcommands that need it (None: always)
    required: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    extra: Callable[[Parsed], str | None] | None = None

    def table(self) -> dict[str, Opt]:
        return {name: o for o in self.options for name in o.names}


@dataclass
class Parsed:
    program: str
    options: list[tuple[str, str | None]]
    operands: list[str]

    def has(self, name: str) -> bool:
        return any(n == name for n, _ in self.options)

    def value(self, name: str) -> str | None:
        return next((v for n, v in self.options if n == name), None)


def _long_option(program: str, spec: Spec, table: dict[str, Opt], name: str,
                 context: str) -> Opt:
    if name in spec.denied:
        raise Refused(f"{program} {name} {spec.denied[name]}")
    if name in table:
        return table[name]
    denied = sorted(d for d in spec.denied if d.startswith(name) and d.startswith("--"))
    if denied:
        full = denied[0]
        raise Refused(f"{program} {name} abbreviates {full} (option prefixes are expanded): "
                       f"{full} {spec.denied[full]}")
    known = sorted(n for n in table if n.startswith(name) and n.startswith("--"))
    if known:
        raise Refused(f"{program} {name}: write the option in full ({', '.join(known[:3])}); "
                       "abbreviations are not accepted")
    raise Refused(f"{program} {name} is not allowed {context}")


def _take_value(program: str, name: str, found: Opt, args: list[str], i: int,
                attached: str | None) -> tuple[str | None, int]:
    if found.arg == NONE:
        if attached is not None:
            raise Refused(f"{program} {name} takes no value")
        return None, i
    value = attached
    if value is None and found.arg == REQUIRED:
        if i >= len(args):
            raise Refused(f"{program} {name} needs a value")
        value, i = args[i], i + 1
    elif value is None and found.next_if is not None and i < len(args) and \
            found.next_if.fullmatch(args[i]):
        value, i = args[i], i + 1
    if value is not None and (problem := check_value(found.value or plain_value, value)):
        raise Refused(f"{program} {name} {redact_cut(value, 40)!r} {problem}")
    return value, i


def parse_args(program: str, spec: Spec, args: list[str], context: str) -> Parsed:
    """Parse like GNU getopt_long with permutation; raise Refused for what is not allowed."""
    table = spec.table()
    parsed = Parsed(program, [], [])
    i, ended = 0, False
    while i < len(args):
        arg = args[i]
        i += 1
        if ended or arg == "-" or not arg.startswith("-"):
            parsed.operands.append(arg)
        elif arg == "--":
            ended = True
        elif arg.startswith("--"):
            name, eq, attached = arg.partition("=")
            found = _long_option(program, spec, table, name, context)
            value, i = _take_value(program, name, found, args, i, attached if eq else None)
            parsed.options.append((found.canonical, value))
        else:
            j = 1
            while j < len(arg):
                name = f"-{arg[j]}"
                shown = name if len(arg) == 2 else f"{name} (in {arg})"
                if name in spec.denied:
                    raise Refused(f"{program} {shown} {spec.denied[name]}")
                found = table.get(name)
                if found is None:
                    raise Refused(f"{program} {shown} is not allowed {context}")
                j += 1
                rest = arg[j:] if found.arg != NONE and j < len(arg) else None
                if rest is not None:
                    j = len(arg)
                value, i = _take_value(program, name, found, args, i, rest)
                parsed.options.append((found.canonical, value))
    return parsed


