"""Which argv may run: a read-only allow-list for investigating, and an allow-list of remediation
shapes, each with its risk. Pure code, no I/O; deny by default; every decision has a reason a
person can read.

Every argument is checked first (text, not empty, at most 256 printable ASCII characters, no
NUL, no ``..`` path component; at most 32 arguments), the program is given by bare name (the
executor resolves paths), then the argv is parsed the way the program itself parses it: GNU
``getopt_long`` for most (``-fn`` is ``-f -n``, ``--flag=value`` and ``--flag value``, ``--``
ends the options, an unambiguous prefix such as ``--vacuum-s`` abbreviates a long option).
Only options on the allow-list pass; abbreviations never do, and an abbreviation of a refused
option says which one it would have been.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from .protected import SYSTEM_UNITS, configured_problem, protected_reason
from .units import VALID_CHARS, mangle, normalise_unit, parse_unit, unit_problem

Risk = str  # one of RISKS
RISKS: tuple[str, ...] = ("none", "low", "medium", "high")
Purpose = Literal["investigate", "remediate"]

MAX_ARGS = 32
MAX_ARG_LEN = 256
_PATHISH = re.compile(r"(^|/)\.\.(/|$)")
CHANGES_HOST = "it changes the host; not allowed while investigating (propose it as an action)"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    risk: Risk = "none"
    #: allowed, but only a person may decide to run it (a protected unit)
    needs_person: bool = False


class _Refused(Exception):
    """Internal: the argv is refused for the reason given."""


def _refuse(reason: str) -> Decision:
    return Decision(False, reason, "high")


# -- value checks: each returns what is wrong with a value, or None --------------------------
Validator = Callable[[str], str | None]


def _charset(pattern: str, what: str) -> Validator:
    rx = re.compile(pattern)

    def check(value: str) -> str | None:
        return None if rx.fullmatch(value) else what

    return check


_plain = _charset(r"[A-Za-z0-9@%+=:,./~^_\-\[\]*]+", "has characters that are not allowed")
_number = _charset(r"\+?[0-9]{1,6}", "is not a number")
_words = _charset(r"[A-Za-z0-9_,.:\-]+", "is not a list of words")
_property = _charset(r"[A-Za-z0-9_,]+", "is not a list of property names")
_when = _charset(r"[A-Za-z0-9 :+.@\-]{1,64}", "is not a time ('-1h', 'today', '2024-05-01 10:00')")
_priority = _charset(r"(emerg|alert|crit|err|warning|notice|info|debug|[0-7])"
                     r"(\.\.(emerg|alert|crit|err|warning|notice|info|debug|[0-7]))?",
                     "is not a priority (emerg .. debug, or 0-7)")
_boot = re.compile(r"-?[0-9]{1,4}|[0-9a-f]{32}([+-][0-9]{1,4})?|all")
_lines = re.compile(r"\+?[0-9]{1,6}|all")
_user = _charset(r"[A-Za-z_][A-Za-z0-9_.\-]{0,31}\$?", "is not a user name")
_size = _charset(r"[0-9]{1,12}[KMGTkmgt]?i?[Bb]?", "is not a size")
_journal_match = _charset(r"[A-Z0-9_]{1,64}=[A-Za-z0-9@%+=:,./~^_\-]{0,200}|\+",
                          "is not a journal match (FIELD=value)")


def _any(value: str) -> str | None:
    return None  # printable ASCII, already checked for every argument


def _abs_path(value: str) -> str | None:
    if (problem := _plain(value)) is not None:
        return problem
    return None if value.startswith("/") else "is not allowed: give an absolute path"


def _format(value: str) -> str | None:
    if "environ" in value:
        return "would print process environments (secrets)"
    return _charset(r"[A-Za-z0-9_,:%=+.\-]+", "is not a list of output columns")(value)


def _unit_pattern(value: str) -> str | None:
    """A unit name (``nginx``, ``sshd@.service``) or a glob of one, as systemctl takes it."""
    if value.startswith("-"):
        return "is not a valid systemd unit name (it reads as an option)"
    if set(value) - VALID_CHARS - set("@*?[]"):
        return "is not a valid systemd unit name"
    if set("*?[") & set(value):
        return None
    return None if normalise_unit(value) else "is not a valid systemd unit name"


def _unit_or_pid(value: str) -> str | None:
    return None if value.isdigit() else _unit_pattern(value)


def _journal_operand(value: str) -> str | None:
    return _abs_path(value) if value.startswith("/") else _journal_match(value)


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
    #: subcommand -> why it is refused (more specific than "not read-only")
    refused_subcommands: Mapping[str, str] = field(default_factory=dict)
    operand: Validator = _plain
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
        raise _Refused(f"{program} {name} {spec.denied[name]}")
    if name in table:
        return table[name]
    denied = sorted(d for d in spec.denied if d.startswith(name) and d.startswith("--"))
    if denied:
        full = denied[0]
        raise _Refused(f"{program} {name} abbreviates {full} (option prefixes are expanded): "
                       f"{full} {spec.denied[full]}")
    known = sorted(n for n in table if n.startswith(name) and n.startswith("--"))
    if known:
        raise _Refused(f"{program} {name}: write the option in full ({', '.join(known[:3])}); "
                       "abbreviations are not accepted")
    raise _Refused(f"{program} {name} is not allowed {context}")


def _take_value(program: str, name: str, found: Opt, args: list[str], i: int,
                attached: str | None) -> tuple[str | None, int]:
    if found.arg == NONE:
        if attached is not None:
            raise _Refused(f"{program} {name} takes no value")
        return None, i
    value = attached
    if value is None and found.arg == REQUIRED:
        if i >= len(args):
            raise _Refused(f"{program} {name} needs a value")
        value, i = args[i], i + 1
    elif value is None and found.next_if is not None and i < len(args) and \
            found.next_if.fullmatch(args[i]):
        value, i = args[i], i + 1
    if value is not None and (problem := (found.value or _plain)(value)) is not None:
        raise _Refused(f"{program} {name} {value[:40]!r} {problem}")
    return value, i


def _parse(program: str, spec: Spec, args: list[str], context: str) -> Parsed:
    """Parse like GNU getopt_long with permutation; raise _Refused for what is not allowed."""
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
                    raise _Refused(f"{program} {shown} {spec.denied[name]}")
                found = table.get(name)
                if found is None:
                    raise _Refused(f"{program} {shown} is not allowed {context}")
                j += 1
                rest = arg[j:] if found.arg != NONE and j < len(arg) else None
                if rest is not None:
                    j = len(arg)
                value, i = _take_value(program, name, found, args, i, rest)
                parsed.options.append((found.canonical, value))
    return parsed


# -- the read-only allow-list -----------------------------------------------------------------
_REDIRECT = deny("-H --host -M --machine --root --image --image-policy -D --directory --file "
                 "-i --namespace", "redirects the target (another host, container, image, "
                 "root directory or journal)")
_NOT_READ_ONLY = "is not read-only: it only matters when changing units"
_PAGING_VERBS = frozenset({"status", "show", "cat", "list-units", "list-unit-files",
                           "list-timers", "list-sockets", "list-dependencies", "list-jobs",
                           "list-automounts", "list-paths"})

SYSTEMCTL = Spec(
    options=flags("--no-pager, --plain, --no-legend, --failed, --value, --reverse, --after, "
                  "--before, --with-dependencies, --show-types, --no-ask-password, --system, "
                  "-a --all, -l --full, -q --quiet, -r --recursive") + (
        opt("-t --type", value=_words), opt("--state", value=_words),
        opt("-p --property", value=_property), opt("-P", value=_property),
        opt("-n --lines", value=_number), opt("-o --output", value=_words),
        opt("--legend", OPTIONAL, _words), opt("--timestamp", value=_words)),
    denied={**{k: v for k, v in _REDIRECT.items() if k not in ("-D", "--directory", "--file",
                                                               "-i", "--namespace")},
            **deny("--runtime --force -f --now -i --ignore-inhibitors --kill-whom --kill-value "
                   "--signal -s --job-mode --no-block --wait --what --preset-mode "
                   "--firmware-setup --boot-loader-menu --boot-loader-entry --reboot-argument "
                   "--check-inhibitors --dry-run --drop-in --when --mkdir --read-only --marked "
                   "--message --global", _NOT_READ_ONLY)},
    subcommands=frozenset(_PAGING_VERBS | {"is-active", "is-enabled", "is-failed",
                                           "is-system-running", "get-default"}),
    operand=_unit_or_pid,
    required={"--no-pager": _PAGING_VERBS},
)

JOURNALCTL = Spec(
    options=flags("--no-pager, --list-boots, -k --dmesg, -x --catalog, -r --reverse, -a --all, "
                  "-l --full, --no-full, -q --quiet, --no-hostname, --utc, -m --merge, "
                  "--system, --user, -N --fields, --disk-usage, --header, --show-cursor, "
                  "--no-tail, --truncate-newline") + (
        opt("-u --unit", value=_unit_pattern), opt("--user-unit", value=_unit_pattern),
        opt("-t --identifier", value=_user), opt("-T --exclude-identifier", value=_user),
        opt("-p --priority", value=_priority), opt("--facility", value=_words),
        opt("-g --grep", value=_any), opt("--case-sensitive", OPTIONAL, _words),
        opt("-S --since", value=_when), opt("-U --until", value=_when),
        opt("-n --lines", OPTIONAL, _charset(_lines.pattern, "is not a number"), _lines),
        opt("-b --boot", OPTIONAL, _charset(_boot.pattern, "is not a boot"), _boot),
        opt("-o --output", value=_words), opt("--output-fields", value=_property),
        opt("-F --field", value=_property), opt("-c --cursor", value=_plain),
        opt("--after-cursor", value=_plain)),
    denied={**_REDIRECT,
            **deny("--vacuum-size --vacuum-time --vacuum-files",
                   "is not read-only: it deletes archived journal files"),
            **deny("--rotate", "is not read-only: it rotates the journal files"),
            **deny("--flush --sync --relinquish-var --smart-relinquish-var",
                   "is not read-only: it moves or writes journal data"),
            **deny("--setup-keys --new-id128 --interval --force --verify-key",
                   "is not read-only: it sets up journal sealing"),
            **deny("--update-catalog", "is not read-only: it rewrites the message catalog"),
            **deny("--cursor-file", "is not read-only: it writes a cursor file"),
            **deny("-f --follow", "never ends: it follows the journal"),
            **deny("-e --pager-end", "is for a pager, and pagers are not allowed"),
            **deny("--verify", "reads every journal file; not for investigating")},
    operand=_journal_operand,
    max_operands=8,
    required={"--no-pager": None},
)

_LS_FLAGS = ", ".join(f"-{c}" for c in "aAlhdiRrtSsn1FZLgGocuUXvkpQNbqxCm")

READ_ONLY: dict[str, Spec] = {
    "systemctl": SYSTEMCTL,
    "journalctl": JOURNALCTL,
    "df": Spec(flags("-a --all, -h --human-readable, -H --si, -i --inodes, -k, -l --local, "
                     "-P --portability, -T --print-type, --total") + (
        opt("-t --type", value=_words), opt("-x --exclude-type", value=_words),
        opt("--output", OPTIONAL, _words), opt("-B --block-size", value=_size)),
        denied=deny("--sync", "is not read-only: it flushes every file system first"),
        operand=_abs_path, max_operands=8),
    "free": Spec(flags("-b --bytes, -k --kibi, -m --mebi, -g --gibi, --tebi, -h --human, "
                       "-w --wide, -t --total, -l --lohi, --si, -v --committed"),
                 denied=deny("-s --seconds -c --count", "repeats until stopped"),
                 max_operands=0),
    "uptime": Spec(flags("-p --pretty, -s --since"), max_operands=0),
    "uname": Spec(flags("-a --all, -s --kernel-name, -n --nodename, -r --kernel-release, "
                        "-v --kernel-version, -m --machine, -p --processor, "
                        "-i --hardware-platform, -o --operating-system"), max_operands=0),
    "ls": Spec(flags(f"{_LS_FLAGS}, --all, --almost-all, --human-readable, --directory, "
                     "--inode, --recursive, --reverse, --size, --numeric-uid-gid, --classify, "
                     "--context, --dereference, --full-time, --group-directories-first, "
                     "--no-group, --si") + (
        opt("--time-style", value=_plain), opt("--sort", value=_words),
        opt("--time", value=_words), opt("--color", OPTIONAL, _words),
        opt("--format", value=_words), opt("--block-size", value=_size),
        opt("--indicator-style", value=_words), opt("--quoting-style", value=_words)),
        operand=_abs_path),
    "du": Spec(flags("-a --all, -b --bytes, -c --total, -h --human-readable, -k, -m, "
                     "-s --summarize, -x --one-file-system, -l --count-links, -L --dereference, "
                     "-P --no-dereference, -D --dereference-args, -H, -S --separate-dirs, "
                     "--apparent-size, --si, --inodes") + (
        opt("-d --max-depth", value=_number), opt("--time", OPTIONAL, _words),
        opt("--exclude", value=_plain), opt("-t --threshold", value=_size),
        opt("-B --block-size", value=_size)),
        denied={**deny("--files0-from", "reads the names to measure from a file"),
                **deny("-X --exclude-from", "reads patterns from a file")},
        operand=_abs_path),
    "lsblk": Spec(flags("-a --all, -b --bytes, -d --nodeps, -D --discard, -f --fs, -J --json, "
                        "-l --list, -m --perms, -n --noheadings, -p --paths, -P --pairs, "
                        "-r --raw, -S --scsi, -t --topology, -O --output-all, -z --zoned") + (
        opt("-o --output", value=_format), opt("-e --exclude", value=_words),
        opt("-I --include", value=_words), opt("-x --sort", value=_words),
        opt("-T --tree", OPTIONAL, _words)),
        operand=_abs_path, max_operands=8),
    "findmnt": Spec(flags("-A --all, -b --bytes, -c --canonicalize, -D --df, -e --evaluate, "
                          "-f --first-only, -i --invert, -J --json, -k --kernel, -l --list, "
                          "-n --noheadings, -P --pairs, -r --raw, -R --submounts, -s --fstab, "
                          "-m --mtab, -u --notruncate, -U --uniq, -v --nofsroot, -x --verify, "
                          "--real, --pseudo") + (
        opt("-o --output", value=_format), opt("-O --options", value=_plain),
        opt("-t --types", value=_words), opt("-S --source", value=_plain),
        opt("-T --target", value=_abs_path), opt("-M --mountpoint", value=_abs_path),
        opt("-N --task", value=_number)),
        denied={**deny("-F --tab-file", "reads another file"),
                **deny("-p --poll -w --timeout", "never ends: it waits for changes")},
        max_operands=2),
    "ss": Spec(flags("-t --tcp, -u --udp, -l --listening, -n --numeric, -p --processes, "
                     "-a --all, -x --unix, -w --raw, -4 --ipv4, -6 --ipv6, -e --extended, "
                     "-m --memory, -o --options, -i --info, -s --summary, -r --resolve, "
                     "-H --no-header, -O --oneline, -0 --packet, -S --sctp, -d --dccp, "
                     "--vsock, --xdp, --tipc, -Z --context, -z --contexts, --cgroup, --tos") + (
        opt("-f --family", value=_words), opt("-A --query --socket", value=_words)),
        denied={**deny("-K --kill", "is not read-only: it closes sockets"),
                **deny("-D --diag", "is not read-only: it writes a dump file"),
                **deny("-F --filter", "reads a filter from a file"),
                **deny("-N --net", "redirects the target (another network namespace)"),
                **deny("-E --events", "never ends: it follows socket events")},
        operand=_charset(r"[A-Za-z0-9:._()=<>!\-/% *\[\]]+", "is not a socket filter")),
    "hostnamectl": Spec(flags("--no-pager, --static, --transient, --pretty") + (
        opt("--json", value=_words),), denied=_REDIRECT,
        subcommands=frozenset({"status"}), max_operands=0),
    "timedatectl": Spec(flags("--no-pager, -a --all, --value") + (
        opt("-p --property", value=_property),),
        denied={**_REDIRECT, **deny("--monitor", "never ends: it follows changes"),
                **deny("--adjust-system-clock", "only matters when setting the clock")},
        subcommands=frozenset({"status", "show", "timesync-status", "show-timesync"}),
        max_operands=0),
    "systemd-analyze": Spec(flags("--no-pager, --system") + (opt("--fuzz", value=_when),),
                            denied=_REDIRECT,
                            subcommands=frozenset({"blame", "critical-chain", "time"}),
                            operand=_unit_pattern, max_operands=4),
    "loginctl": Spec(flags("--no-pager, --no-legend, -a --all, --value, -l --full") + (
        opt("-p --property", value=_property),),
        denied={**_REDIRECT, **deny("-s --signal --kill-whom", _NOT_READ_ONLY)},
        subcommands=frozenset({"list-sessions", "list-users", "list-seats", "show-session",
                               "show-user", "session-status", "user-status"}),
        max_operands=4),
    "nixos-version": Spec(flags("--hash, --revision, --json, --configuration-revision"),
                          max_operands=0),
    "nix-env": Spec(flags("--list-generations") + (opt("-p --profile", value=_abs_path),),
                    required={"--list-generations": None}, max_operands=0),
    "dmesg": Spec(flags("-T --ctime, -t --notime, -x --decode, -k --kernel, -u --userspace, "
                        "-r --raw, -S --syslog, -d --show-delta, -P --nopager, -e --reltime, "
                        "-J --json") + (
        opt("-L --color", OPTIONAL, _words), opt("-l --level", value=_words),
        opt("-f --facility", value=_words), opt("--time-format", value=_words),
        opt("--since", value=_when), opt("--until", value=_when)),
        denied={**deny("-c --read-clear -C --clear",
                       "is not read-only: it clears the kernel ring buffer"),
                **deny("-D --console-off -E --console-on -n --console-level",
                       "is not read-only: it changes console logging"),
                **deny("-w --follow -W --follow-new", "never ends: it follows the kernel log"),
                **deny("-F --file", "reads another file"),
                **deny("-H --human", "starts a pager, and pagers are not allowed")},
        max_operands=0),
    "vmstat": Spec(flags("-a --active, -s --stats, -d --disk, -D --disk-sum, -w --wide, "
                         "-t --timestamp, -f --forks, -m --slabs") + (
        opt("-S --unit", value=_words),),
        operand=_charset(r"[1-9][0-9]?", "is not a small number"), max_operands=2,
        extra=lambda p: None if len(p.operands) in (0, 2) else
        "vmstat with a delay needs a count too, or it never ends"),
    "id": Spec(flags("-u --user, -g --group, -G --groups, -n --name, -r --real, -a, "
                     "-Z --context"), operand=_user, max_operands=1),
    "who": Spec(flags("-a --all, -b --boot, -d --dead, -H --heading, -l --login, -p --process, "
                      "-q --count, -r --runlevel, -s --short, -t --time, -T --mesg, "
                      "-u --users"), max_operands=0),
    "w": Spec(flags("-h --no-header, -s --short, -f --from, -i --ip-addr, -o --old-style, "
                    "-u --no-current"), operand=_user, max_operands=1),
    "last": Spec(flags("-x --system, -F --fulltimes, -w --fullnames, -i --ip, -a --hostlast, "
                       "-R --nohostname") + (
        opt("-n --limit", value=_number), opt("-s --since", value=_when),
        opt("-t --until", value=_when), opt("-p --present", value=_when),
        opt("--time-format", value=_words)),
        denied=deny("-f --file", "reads another file"), max_operands=4),
    "getent": Spec(flags("-i --no-idn"),
                   subcommands=frozenset({"passwd", "group", "hosts", "ahosts", "ahostsv4",
                                          "ahostsv6", "services", "networks", "protocols"}),
                   refused_subcommands=dict.fromkeys(
                       ("shadow", "gshadow"), "is not allowed: it holds password hashes"),
                   max_operands=8),
    "stat": Spec(flags("-L --dereference, -f --file-system, -t --terse") + (
        opt("-c --format", value=_any), opt("--printf", value=_any),
        opt("--cached", value=_words)), operand=_abs_path, max_operands=8),
}

# -- programs with their own argument syntax: ps, ip, find --------------------------------------
_PS_FLAGS, _PS_VALUED = set("AaedfFlHjLMNTwyZc"), set("oOpquUCgGst")
_PS_BSD = set("auxwfjlvrSTcHmhnZ")
_PS_LONG = {"--forest": False, "--no-headers": False, "--no-heading": False,
            "--headers": False, "--cumulative": False, "--deselect": False, "--sort": True,
            "--format": True, "--pid": True, "--ppid": True, "--user": True, "--User": True,
            "--group": True, "--Group": True, "--cols": True, "--columns": True,
            "--width": True, "--lines": True, "--rows": True}


def _ps_value(name: str, value: str) -> None:
    check = _format if name in ("-o", "-O", "o", "O", "--format") else _charset(
        r"[+-]?[A-Za-z0-9_,.:=%+\-]+", "has characters that are not allowed")
    if (problem := check(value)) is not None:
        raise _Refused(f"ps {name} {value[:40]!r} {problem}")


def _check_ps(args: list[str]) -> None:
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name not in _PS_LONG:
                raise _Refused(f"ps {name} is not allowed while investigating")
            if _PS_LONG[name]:
                if not eq:
                    if i >= len(args):
                        raise _Refused(f"ps {name} needs a value")
                    value, i = args[i], i + 1
                _ps_value(name, value)
            elif eq:
                raise _Refused(f"ps {name} takes no value")
            continue
        unix = arg.startswith("-")
        letters = arg[1:] if unix else arg
        for j, char in enumerate(letters):
            if not unix and char == "e":
                raise _Refused("ps with the BSD 'e' option prints process environments "
                               "(secrets)")
            if char in (_PS_FLAGS if unix else _PS_BSD):
                continue
            if char in (_PS_VALUED if unix else "oO"):
                value = letters[j + 1:]
                if not value:
                    if i >= len(args):
                        raise _Refused(f"ps {char} needs a value")
                    value, i = args[i], i + 1
                _ps_value(f"-{char}" if unix else char, value)
                break
            raise _Refused(f"ps {'-' if unix else ''}{char} (in {arg}) is not allowed while "
                           "investigating")


_IP_ALLOWED = frozenset({"-4", "-6", "-br", "-brief", "-d", "-details", "-s", "-stats",
                         "-statistics", "-j", "-json", "-p", "-pretty", "-o", "-oneline",
                         "-c", "-color", "-h", "-human", "-N", "-Numeric"})
#: refused options, the shortest prefix ip resolves to each, and why
_IP_DENIED = {"-batch": (2, "reads commands from a file"),
              "-force": (3, "goes on after errors in a batch"),
              "-netns": (2, "redirects the target (another network namespace)"),
              "-all": (2, "runs in every network namespace")}
_IP_OBJECTS = frozenset({"a", "addr", "address", "l", "link", "r", "ro", "route", "ru", "rule",
                         "n", "neigh", "neighbor", "neighbour"})
_IP_ACTIONS = frozenset({"show", "list", "ls", "lst", "get"})


def _check_ip(args: list[str]) -> None:
    """ip's own parser: one-dash long options matched by prefix, before the object."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        token = args[i][1:] if args[i].startswith("--") else args[i]
        for full, (shortest, why) in _IP_DENIED.items():
            if len(token) >= shortest and full.startswith(token):
                raise _Refused(f"ip {args[i]} is {full}, which {why}")
        if token not in _IP_ALLOWED:
            raise _Refused(f"ip {args[i]} is not allowed while investigating")
        i += 1
    operands = args[i:]
    if not operands or operands[0] not in _IP_OBJECTS:
        raise _Refused(f"ip needs one of: {', '.join(sorted(_IP_OBJECTS))}"
                       + (f" (not {operands[0]!r})" if operands else ""))
    if len(operands) >= 2 and operands[1] not in _IP_ACTIONS:
        raise _Refused(f"ip {operands[0]} {operands[1]} changes the network; only "
                       "show/list/get (written in full)")
    if len(operands) > 8:
        raise _Refused("too many operands for ip")
    for operand in operands:
        if operand.startswith("-") or _plain(operand):
            raise _Refused(f"ip operand {operand[:40]!r} is not allowed")


_FIND_NO_ARG = frozenset({"-empty", "-xdev", "-mount", "-nouser", "-nogroup", "-readable",
                          "-writable", "-executable", "-true", "-false", "-print", "-print0",
                          "-ls", "-prune", "-quit", "-depth", "-daystart", "-follow",
                          "-noleaf", "-ignore_readdir_race", "-not", "-a", "-and", "-o", "-or",
                          "!", "(", ")", ","})
_FIND_ONE_ARG = frozenset({"-name", "-iname", "-path", "-ipath", "-wholename", "-iwholename",
                           "-regex", "-iregex", "-type", "-xtype", "-size", "-mtime", "-mmin",
                           "-atime", "-amin", "-ctime", "-cmin", "-user", "-group", "-uid",
                           "-gid", "-perm", "-links", "-inum", "-fstype", "-maxdepth",
                           "-mindepth", "-used", "-printf", "-newer", "-anewer", "-cnewer",
                           "-samefile"})
_FIND_DENIED = {**dict.fromkeys(("-exec", "-execdir", "-ok", "-okdir"),
                                "runs another program, which the policy could not check"),
                "-delete": "is not read-only: it deletes files",
                **dict.fromkeys(("-fprint", "-fprint0", "-fprintf", "-fls"),
                                "is not read-only: it writes a file"),
                "-files0-from": "reads the starting points from a file"}


def _check_find(args: list[str]) -> None:
    i = 0
    while i < len(args) and args[i] in ("-H", "-L", "-P"):
        i += 1
    starts = 0
    while i < len(args) and not args[i].startswith("-") and args[i] not in ("(", "!", ","):
        if (problem := _abs_path(args[i])) is not None:
            raise _Refused(f"find starting point {args[i][:40]!r} {problem}")
        starts, i = starts + 1, i + 1
    if not starts:
        raise _Refused("find needs an absolute starting path first")
    while i < len(args):
        token = args[i]
        i += 1
        if token in _FIND_DENIED:
            raise _Refused(f"find {token} {_FIND_DENIED[token]}")
        if token in _FIND_NO_ARG:
            continue
        if token not in _FIND_ONE_ARG:
            raise _Refused(f"find {token[:40]} is not allowed while investigating")
        if i >= len(args):
            raise _Refused(f"find {token} needs a value")
        value, i = args[i], i + 1
        check = _abs_path if token.endswith(("newer", "samefile")) else _any
        if (problem := check(value)) is not None:
            raise _Refused(f"find {token} {value[:40]!r} {problem}")


CUSTOM: dict[str, Callable[[list[str]], None]] = {
    "ps": _check_ps, "ip": _check_ip, "find": _check_find,
}

# -- programs that are never allowed, with why ------------------------------------------------
_NEVER_GROUPS: dict[str, str] = {
    "less more most pg view": "is a pager: it waits for a terminal and can run commands "
    "('!sh')",
    "vi vim nvim nano emacs ed ex pico joe mcedit micro sensible-editor editor vim.tiny vimdiff "
    "sudoedit": "is an editor: it changes files and can run commands",
    "sh bash dash zsh ksh mksh csh tcsh fish busybox python python2 python3 perl ruby node "
    "nodejs php lua luajit tclsh wish guile awk gawk mawk nawk sed expect gdb "
    "jq": "is a shell or interpreter: it runs arbitrary code",
    "env xargs nohup nice ionice timeout watch time stdbuf setsid sudo su doas pkexec runuser "
    "chroot nsenter unshare systemd-run strace ltrace script flock taskset chrt exec eval "
    "command builtin parallel systemd-nspawn": "runs another program, which the policy "
    "could not check",
    "ssh scp sftp rsync nc ncat netcat socat curl wget telnet ftp": "talks to other machines "
    "or fetches code",
    "tee dd cp mv rm rmdir shred truncate install ln chmod chown chgrp chattr mkdir touch "
    "mount umount mkfs fdisk sfdisk parted wipefs mkswap swapon swapoff crontab at batch "
    "tar": "writes, moves or deletes files",
    "shutdown poweroff halt init telinit": "powers off or halts the host",
    "pkill killall": "kills processes by name; only kill with one PID is allowed",
}
NEVER: dict[str, str] = {name: why for names, why in _NEVER_GROUPS.items()
                         for name in names.split()}
_NEVER_PREFIXES = {"python": NEVER["python"], "perl": NEVER["perl"], "ruby": NEVER["ruby"],
                   "php": NEVER["php"], "lua": NEVER["lua"], "node": NEVER["node"],
                   "mkfs.": NEVER["mkfs"], "pip": NEVER["python"]}


def _never(program: str) -> str | None:
    if program in NEVER:
        return NEVER[program]
    return next((why for prefix, why in _NEVER_PREFIXES.items() if program.startswith(prefix)),
                None)


def _read_only(program: str, args: list[str]) -> Decision:
    if program in CUSTOM:
        CUSTOM[program](args)
        return Decision(True, f"{program} is read-only with these arguments")
    spec = READ_ONLY.get(program)
    if spec is None:
        allowed = ", ".join(sorted({*READ_ONLY, *CUSTOM}))
        why = _never(program)
        raise _Refused(f"{program!r} is not on the read-only allow-list"
                       + (f": {program} {why}" if why else f" ({allowed})"))
    parsed = _parse(program, spec, args, "while investigating")
    operands, sub = parsed.operands, None
    if spec.subcommands is not None:
        if not operands:
            raise _Refused(f"{program} needs one of: {', '.join(sorted(spec.subcommands))}")
        sub, operands = operands[0], operands[1:]
        if sub in spec.refused_subcommands:
            raise _Refused(f"{program} {sub} {spec.refused_subcommands[sub]}")
        if sub not in spec.subcommands:
            raise _Refused(f"{program} {sub} is not read-only; allowed while investigating: "
                           f"{', '.join(sorted(spec.subcommands))}")
    for needed, subs in spec.required.items():
        if (subs is None or sub in subs) and not parsed.has(needed):
            raise _Refused(f"{program} needs {needed} here")
    if len(operands) > spec.max_operands:
        raise _Refused(f"too many operands for {program} ({spec.max_operands} at most)")
    for operand in operands:
        if (problem := spec.operand(operand)) is not None:
            raise _Refused(f"{program} operand {operand[:40]!r} {problem}")
    if spec.extra is not None and (why := spec.extra(parsed)) is not None:
        raise _Refused(why)
    return Decision(True, f"{program} is read-only with these arguments")


# -- remediation shapes -----------------------------------------------------------------------
_REMEDIATE = "in a remediation"
_UNIT_VERBS: dict[str, Risk] = {
    "restart": "low", "try-restart": "low", "reload-or-restart": "low",
    "try-reload-or-restart": "low", "reload": "low", "start": "low", "reset-failed": "low",
    "stop": "medium", "disable": "medium", "mask": "medium",
}
#: verbs a person may still run on a protected unit (high risk); reset-failed stays low
_PROTECTED_WITH_PERSON = frozenset({"restart", "try-restart", "reload-or-restart",
                                    "try-reload-or-restart", "reload", "start"})
_NEVER_VERBS: dict[str, str] = {
    "kill": "kills a unit's processes (use kill_process with one PID)",
    "isolate": "stops every unit the target does not want",
    "freeze": "freezes a unit's processes", "clean": "deletes a unit's state, cache or logs",
    **dict.fromkeys(("poweroff", "halt", "kexec", "suspend", "hibernate", "hybrid-sleep",
                     "suspend-then-hibernate", "soft-reboot", "emergency", "rescue", "default",
                     "switch-root", "exit"), "changes the state of the whole host"),
}
#: starting one of these powers off, reboots or drops to a rescue shell
_SYSTEM_STATE_TARGETS = frozenset(f"{t}.target" for t in (
    "poweroff", "reboot", "halt", "kexec", "shutdown", "emergency", "rescue", "soft-reboot",
    "ctrl-alt-del", "exit", "final", "sleep", "suspend", "hibernate", "hybrid-sleep",
    "suspend-then-hibernate", "umount", "factory-reset", "initrd-switch-root",
    "system-update"))

_FILE_SYSTEM_TYPES = frozenset({"mount", "automount", "swap"})
_WHOLE_TYPES = {"slice": "it acts on every unit in the slice",
                "scope": "it acts on a whole session, container or the system manager",
                "device": "devices come and go with the hardware, not with systemctl"}


def _whole_system(unit: str, unit_type: str) -> str | None:
    if unit in _SYSTEM_STATE_TARGETS:
        return "it powers off, reboots, suspends or leaves the normal system state"
    if unit in SYSTEM_UNITS:
        return f"it is {SYSTEM_UNITS[unit]}"
    return _WHOLE_TYPES.get(unit_type)


SYSTEMCTL_REMEDIATE = Spec(
    options=flags("--no-pager, --no-ask-password, -q --quiet"),
    denied={**{k: v for k, v in SYSTEMCTL.denied.items() if k in _REDIRECT},
            **deny("--runtime --force -f --now -i --ignore-inhibitors --kill-whom --signal -s "
                   "--job-mode --no-block --wait --no-reload --no-wall --global --dry-run "
                   "--drop-in --when --what --marked",
                   "is not allowed in a remediation: only the plain verb is")},
)


def _unit_operand(verb: str, operands: list[str]) -> str:
    if not operands:
        raise _Refused(f"systemctl {verb} needs a unit")
    if len(operands) > 1:
        raise _Refused(f"systemctl {verb} takes one unit at a time here")
    given = operands[0]
    if set("*?[") & set(given):
        raise _Refused(f"systemctl {verb} {given[:40]!r}: patterns are not allowed when "
                       "changing the host; name one unit")
    if problem := unit_problem(mangle(given)):
        raise _Refused(f"{given[:60]!r} is not a valid systemd unit name: {problem}")
    return mangle(given)


def _is_read(args: list[str]) -> bool:
    try:
        operands = _parse("systemctl", SYSTEMCTL, args, "").operands
    except _Refused:
        return False
    return not operands or operands[0] in (SYSTEMCTL.subcommands or ())


def _systemctl(args: list[str], protected: tuple[str, ...]) -> Decision | None:
    try:
        parsed = _parse("systemctl", SYSTEMCTL_REMEDIATE, args, _REMEDIATE)
    except _Refused:
        if _is_read(args):
            return None  # a read: the read-only allow-list decides
        raise
    if not parsed.operands or parsed.operands[0] in (SYSTEMCTL.subcommands or ()):
        return None
    verb, operands = parsed.operands[0], parsed.operands[1:]
    if verb not in _UNIT_VERBS and verb not in _NEVER_VERBS and verb != "reboot":
        raise _Refused(f"systemctl {verb} is not on the remediation allow-list (allowed: "
                       f"{', '.join(_UNIT_VERBS)}, reboot)")
    if verb == "reboot":
        if operands:
            raise _Refused("systemctl reboot takes no operands here")
        return Decision(True, "reboots the host", "high")
    unit = _unit_operand(verb, operands) if operands or verb in _UNIT_VERBS else None
    why = protected_reason(unit, protected) if unit else None
    if why and unit and verb not in _PROTECTED_WITH_PERSON and verb != "reset-failed":
        raise _Refused(f"{unit} is protected ({why}): systemctl {verb} is never run on it, at "
                       "any autonomy level")
    if verb in _NEVER_VERBS:
        raise _Refused(f"systemctl {verb} is never run by automation: it "
                       f"{_NEVER_VERBS[verb]}")
    assert unit is not None
    parsed_unit = parse_unit(unit)
    if parsed_unit.is_template:
        raise _Refused(f"{unit} is a template: name an instance")
    if verb != "reset-failed" and (whole := _whole_system(unit, parsed_unit.type)):
        raise _Refused(f"systemctl {verb} {unit} is never run by automation: {whole}")
    if why and verb in _PROTECTED_WITH_PERSON:
        return Decision(True, f"protected unit: needs a person ({unit}: {why})", "high",
                        needs_person=True)
    risk = _UNIT_VERBS[verb]
    if parsed_unit.type in _FILE_SYSTEM_TYPES and verb != "reset-failed":
        # unmounting /var or /nix, or turning swap off, can take the host down
        risk = "high" if risk == "medium" else "medium"
        return Decision(True, f"systemctl {verb} of {unit} (a file system or swap)", risk)
    return Decision(True, f"systemctl {verb} of {unit}", risk)


_VACUUM_SIZE = re.compile(r"([1-9][0-9]{0,5})([KMG])")
_VACUUM_TIME = re.compile(r"([1-9][0-9]{0,3})(d|w|month|months|y|year|years)")
_DAYS = {"d": 1, "w": 7, "month": 30, "months": 30, "y": 365, "year": 365, "years": 365}
JOURNALCTL_REMEDIATE = Spec(
    options=flags("--no-pager, -q --quiet") + (
        opt("--vacuum-size", value=_charset(_VACUUM_SIZE.pattern, "is not a size like 500M")),
        opt("--vacuum-time", value=_charset(_VACUUM_TIME.pattern, "is not a time like 30d"))),
    denied={**_REDIRECT, **{k: v for k, v in JOURNALCTL.denied.items()
                            if k not in ("--vacuum-size", "--vacuum-time")},
            "--vacuum-files": "is not on the remediation allow-list (use --vacuum-size or "
                              "--vacuum-time)"},
    max_operands=0,
)


def _journalctl(args: list[str], protected: tuple[str, ...]) -> Decision | None:
    if not any(len(a) > 4 and "--vacuum-".startswith(a.partition("=")[0][:9]) for a in args):
        return None
    parsed = _parse("journalctl", JOURNALCTL_REMEDIATE, args, _REMEDIATE)
    if parsed.operands:
        raise _Refused("journalctl takes no operands when vacuuming")
    size, time = parsed.value("--vacuum-size"), parsed.value("--vacuum-time")
    if (size is None) == (time is None) or len(parsed.options) > 2:
        raise _Refused("journalctl vacuums with one --vacuum-size or one --vacuum-time")
    if size is not None:
        match = _VACUUM_SIZE.fullmatch(size)
        assert match is not None
        mib = int(match.group(1)) * {"K": 1 / 1024, "M": 1, "G": 1024}[match.group(2)]
        if mib < 100:
            return Decision(True, f"shrinks the journal to {size}: little history is left",
                            "medium")
        return Decision(True, f"shrinks the journal to {size}", "low")
    match = _VACUUM_TIME.fullmatch(time or "")
    assert match is not None
    days = int(match.group(1)) * _DAYS[match.group(2)]
    risk = "low" if days >= 7 else "medium"
    return Decision(True, f"deletes archived journal entries older than {time}", risk)


def _exact(program: str, args: list[str], shapes: dict[tuple[str, ...], tuple[Risk, str]],
           why: Mapping[str, str]) -> Decision:
    """Programs with their own parsers get exact argument sets (order free)."""
    for arg in args:
        if arg in why:
            raise _Refused(f"{program} {arg} {why[arg]}")
    found = shapes.get(tuple(sorted(args)))
    if found is None:
        shown = " | ".join(" ".join((program, *s)) for s in shapes)
        raise _Refused(f"{program} {' '.join(args)[:80]} is not on the remediation allow-list "
                       f"(allowed: {shown})")
    return Decision(True, found[1], found[0])


def _yes_forms(verbs: Iterable[str], yeses: Iterable[str], risk: Risk, why: str
               ) -> dict[tuple[str, ...], tuple[Risk, str]]:
    return {tuple(sorted((v, y))): (risk, why) for v in verbs for y in yeses}


_APT_WHY = {**dict.fromkeys(("-o", "--option", "-c", "--config-file"),
                            "can run arbitrary commands (APT hooks); not allowed"),
            **dict.fromkeys(("dist-upgrade", "full-upgrade", "autoremove", "remove", "purge"),
                            "may remove packages; a person must do it"),
            "install": "installs named packages; not allowed"}
_DNF_WHY = {**dict.fromkeys(("--setopt", "-c", "--config", "--enablerepo", "--repofrompath"),
                            "changes repositories or configuration; not allowed"),
            "--nogpgcheck": "skips signature checks; never allowed"}
_PACMAN_WHY = {**dict.fromkeys(("--overwrite", "-d", "--nodeps", "-dd"),
                               "skips package safety checks; never allowed"),
               **dict.fromkeys(("-r", "--root", "-b", "--dbpath", "--config"),
                               "redirects the target (another root or database)")}
_NIX_GC_WHY = dict.fromkeys(("-d", "--delete-old"), "deletes every old generation: no "
                            "rollback would be left")
_NIX_ENV_WHY = {**dict.fromkeys(("--delete-generations", "-e", "--uninstall", "-i",
                                 "--install", "-u", "--upgrade", "--set"),
                                "changes installed software; not allowed"),
                "--switch-generation": "is not on the remediation allow-list (use --rollback)"}
_NIXOS_REBUILD_WHY = {**dict.fromkeys(("--target-host", "--build-host"),
                                      "redirects the target (another host)"),
                      **dict.fromkeys(("-I", "--flake", "--option", "--override-input",
                                       "--install-bootloader", "--specialisation", "-p",
                                       "--profile-name"),
                                      "changes what is built or booted; not allowed")}
_PID_MAX = 1 << 22
_SIGNALS = {"-TERM": "TERM", "-SIGTERM": "TERM", "-15": "TERM", "-KILL": "KILL",
            "-SIGKILL": "KILL", "-9": "KILL"}


def _kill(args: list[str], protected: tuple[str, ...]) -> Decision:
    signal, rest = "TERM", list(args)
    if rest and rest[0] in _SIGNALS:
        signal = _SIGNALS[rest.pop(0)]
    if len(rest) != 1:
        raise _Refused("kill takes one signal (-TERM or -KILL) and one PID")
    pid = rest[0]
    if pid == "0" or re.fullmatch(r"-[0-9]+", pid):
        raise _Refused(f"kill {pid} would signal a process group or every process: one "
                       "positive PID only")
    if not re.fullmatch(r"[1-9][0-9]{0,6}", pid) or int(pid) >= _PID_MAX:
        raise _Refused(f"kill: {pid[:20]!r} is not a PID (a positive number below {_PID_MAX})")
    if pid == "1":
        raise _Refused("kill 1: PID 1 (init) is never killed")
    return Decision(True, f"sends SIG{signal} to process {pid}", "medium")


def _reboot(args: list[str], protected: tuple[str, ...]) -> Decision:
    if args:
        raise _Refused("reboot takes no arguments here (--force/-f would skip a clean "
                       "shutdown)")
    return Decision(True, "reboots the host", "high")


def _nix_gc(args: list[str], protected: tuple[str, ...]) -> Decision:
    if len(args) == 2 and args[0] == "--delete-older-than" and not re.fullmatch(
            r"[1-9][0-9]{0,3}d", args[1]):
        raise _Refused(f"nix-collect-garbage --delete-older-than {args[1][:20]!r} is not a "
                       "number of days like 14d (at least 1d)")
    shape = ["--delete-older-than", "Nd"] if len(args) == 2 else args
    decision = _exact("nix-collect-garbage", shape, {
        ("--delete-older-than", "Nd"): ("low", "deletes Nix generations older than "
                                        f"{args[-1] if args else ''}")}, _NIX_GC_WHY)
    return decision


REMEDIATION: dict[str, Callable[[list[str], tuple[str, ...]], Decision | None]] = {
    "systemctl": _systemctl,
    "journalctl": _journalctl,
    "kill": _kill,
    "reboot": _reboot,
    "nix-collect-garbage": _nix_gc,
    "nix-env": lambda args, _: None if "--list-generations" in args else _exact(
        "nix-env", args,
        {tuple(sorted((p, "/nix/var/nix/profiles/system", "--rollback"))):
         ("medium", "rolls the system profile back one generation") for p in
         ("-p", "--profile")}, _NIX_ENV_WHY),
    "nixos-rebuild": lambda args, _: _exact(
        "nixos-rebuild", args,
        {("switch",): ("high", "rebuilds and switches the NixOS configuration"),
         ("--rollback", "switch"): ("medium", "switches back to the previous generation"),
         ("--upgrade", "switch"): ("high", "upgrades channels, rebuilds and switches")},
        _NIXOS_REBUILD_WHY),
    "apt-get": lambda args, _: _exact(
        "apt-get", args, _yes_forms(["upgrade"], ["-y", "--yes", "--assume-yes"], "high",
                                    "installs pending package updates"), _APT_WHY),
    "dnf": lambda args, _: _exact(
        "dnf", args, _yes_forms(["upgrade", "update"], ["-y", "--assumeyes"], "high",
                                "installs pending package updates"), _DNF_WHY),
    "pacman": lambda args, _: _exact(
        "pacman", args, {tuple(sorted((f"-{''.join(p)}", "--noconfirm"))):
                         ("high", "installs pending package updates")
                         for p in ("Syu", "Suy", "ySu", "yuS", "uSy", "uyS")}, _PACMAN_WHY),
}


# -- the entry points -------------------------------------------------------------------------
def _arg_problem(index: int, arg: object) -> str | None:
    where = "the program name" if index == 0 else f"argument {index}"
    if not isinstance(arg, str):
        return f"{where} is not text"
    if not arg:
        return f"{where} is empty"
    if len(arg) > MAX_ARG_LEN:
        return f"{where} is too long ({len(arg)} characters; {MAX_ARG_LEN} at most)"
    if "\x00" in arg:
        return f"{where} holds a NUL byte"
    for char in arg:
        if not char.isascii():
            return (f"{where} holds the non-ASCII character U+{ord(char):04X}: look-alike "
                    "letters and invisible characters are not allowed")
        if not char.isprintable():
            return f"{where} holds the control character {char!r}"
    if _PATHISH.search(arg):
        return f"argument {arg[:60]!r} climbs out of a directory with '..'"
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
        return _refuse(f"unknown purpose {purpose!r}: investigate or remediate")
    if (problem := _basic_problem(argv)) is not None:
        return _refuse(problem)
    extra = (protected,) if isinstance(protected, str) else tuple(protected or ())
    for entry in extra if purpose == "remediate" else ():
        if (bad := configured_problem(entry)) is not None:
            return _refuse(f"the configured protected units hold an invalid entry ({bad}); "
                           "fix safety.protected_units")
    program, args = argv[0], list(argv[1:])
    try:
        if purpose == "remediate":
            return _remediate(program, args, extra)
        return _read_only(program, args)
    except _Refused as refused:
        reason = str(refused)
    if purpose == "investigate" and program in REMEDIATION:
        try:
            if _remediate(program, args, extra).allowed:
                known = program in READ_ONLY or program in CUSTOM
                reason = f"{reason}; {CHANGES_HOST}" if known else \
                    f"{program} is not read-only: {CHANGES_HOST}"
        except _Refused:
            pass
    return _refuse(reason)


def _remediate(program: str, args: list[str], protected: tuple[str, ...]) -> Decision:
    """A read is fine while remediating (risk "none"); otherwise a remediation shape."""
    try:
        return _read_only(program, args)
    except _Refused as refused:
        read_refusal = refused
    handler = REMEDIATION.get(program)
    decision = handler(args, protected) if handler else None
    if decision is not None:
        return decision
    if program in READ_ONLY or program in CUSTOM:
        raise read_refusal
    why = _never(program)
    raise _Refused(f"{program!r} is not on the remediation allow-list"
                   + (f": {program} {why}" if why else f" ({', '.join(sorted(REMEDIATION))})"))


def check_readonly(argv: list[str] | tuple[str, ...]) -> Decision:
    """May this argv run during an investigation?"""
    return check_command(argv, "investigate")
