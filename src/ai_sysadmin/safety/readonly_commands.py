"""The read-only allow-list: which programs, subcommands and options may run while
investigating. Deny by default; every refusal says why. Pure code, no I/O."""

from __future__ import annotations

import re
from collections.abc import Callable

from ..redact import redact_cut
from .argv_parser import (
    BOOT_ID,
    LINE_COUNT,
    OPTIONAL,
    Decision,
    Parsed,
    Refused,
    Spec,
    Validator,
    absolute_path,
    any_value,
    charset,
    check_value,
    deny,
    flags,
    journal_match,
    journal_operand,
    number_value,
    opt,
    output_columns,
    parse_args,
    plain_value,
    priority_value,
    property_list,
    size_value,
    time_value,
    unit_or_pid,
    unit_pattern,
    user_name,
    word_list,
)
from .network_reach import (
    LEAVES,
    RESOLVECTL_LOOKUPS,
    getent_lookup,
    lsof_address,
    resolvectl_lookup,
    ss_filter_names,
)

REDIRECT = deny("-H --host -M --machine --root --image --image-policy -D --directory --file "
                 "-i --namespace", "redirects the target (another host, container, image, "
                 "root directory or journal)")
_NOT_READ_ONLY = "is not read-only: it only matters when changing units"
_READ_VERBS = frozenset({"status", "show", "cat", "list-units", "list-unit-files",
                         "list-timers", "list-sockets", "list-dependencies", "list-jobs",
                         "list-automounts", "list-paths"})


#: journal fields systemd-coredump fills with a dead process's secrets: its environment
#: (COREDUMP_ENVIRON) and, with Storage=journal, its memory (COREDUMP). The rest of a crash
#: entry (signal, executable, unit, command line, stack trace) is what an investigation needs.
_SECRET_FIELDS = {"COREDUMP": "would print a process's memory (the core dump: secrets)"}


def _secret_field(name: str) -> str | None:
    """Why the journal field ``name`` is never shown; None when it may be."""
    field = name.strip().upper()
    if "ENVIRON" in field:
        return "would print process environments (secrets)"
    return _SECRET_FIELDS.get(field)


def _no_secret_fields(check: Validator) -> Validator:
    """A field list (``-F``, ``--output-fields``) or a FIELD=value match without the secret
    fields."""
    def no_secret(value: str) -> str | None:
        for name in value.split("=", 1)[0].split(","):
            if (why := _secret_field(name)) is not None:
                return why
        return check(value)
    return no_secret


#: journalctl output modes that print one line per entry from a few fields (cat: MESSAGE, or
#: the --output-fields named)
_LINE_OUTPUTS = frozenset({"short", "short-full", "short-iso", "short-iso-precise",
                           "short-precise", "short-monotonic", "short-delta", "short-unix",
                           "with-unit", "cat"})
#: those that print every field of an entry, unless --output-fields names them
_ALL_FIELD_OUTPUTS = frozenset({"verbose", "export", "json", "json-pretty", "json-sse",
                                "json-seq"})
_output_mode = charset("|".join(sorted(_LINE_OUTPUTS | _ALL_FIELD_OUTPUTS)),
                       "is not an output mode (short-iso, cat, json ...)")


def _journal_fields_named(parsed: Parsed) -> str | None:
    """Every field of a crash entry would hold the dead process's environment and core: a
    mode that prints all fields must be given the fields to print."""
    modes = [value for name, value in parsed.options if name == "--output"]
    if not modes or modes[-1] not in _ALL_FIELD_OUTPUTS or parsed.has("--output-fields"):
        return None
    return (f"journalctl --output={modes[-1]} prints every field of an entry, and "
            "systemd-coredump's entries hold the crashed process's environment and memory "
            "(secrets): name the fields, e.g. --output-fields=MESSAGE,_PID,_SYSTEMD_UNIT")


def _journal_operand(value: str) -> str | None:
    return journal_operand(value) if value.startswith("/") else \
        _no_secret_fields(journal_operand)(value)


#: unit properties that hold a process's environment, its values included (Environment= as
#: set in the unit, UnsetEnvironment= may hold VAR=value pairs) or a credential's data; the
#: service manager gives them to any client, whatever the mode of the unit file
_SECRET_PROPERTIES = frozenset({"Environment", "UnsetEnvironment", "SetCredential",
                                "SetCredentialEncrypted"})


def _no_secret_properties(value: str) -> str | None:
    """A -p/--property list without the properties that hold environments or credentials."""
    if (problem := property_list(value)) is not None:
        return problem
    if secret := sorted(set(value.split(",")) & _SECRET_PROPERTIES):
        return (f"names {', '.join(secret)}: properties that hold process environments or "
                "credentials (secrets)")
    return None


def _properties_named(parsed: Parsed) -> str | None:
    """``systemctl show`` prints every property, Environment= with its values too: it must be
    given the properties to print."""
    if parsed.operands[:1] != ["show"] or parsed.has("--property") or parsed.has("-P"):
        return None
    return ("systemctl show prints every property, Environment= (secrets) too: name the "
            "properties, e.g. -p ActiveState,SubState,Result,ExecMainStatus,NRestarts")


def _status_lines_only(parsed: Parsed) -> str | None:
    """``systemctl status`` shows the unit's journal entries in the -o mode, and among them
    systemd-coredump's entries for its crashes (it matches COREDUMP_UNIT= too): a mode that
    prints every field would print the crashed process's environment and core. systemctl has
    no --output-fields to name the fields, so only the modes that print a line each pass."""
    modes = [value for name, value in parsed.options if name == "--output"]
    if parsed.operands[:1] != ["status"] or not modes or modes[-1] not in _ALL_FIELD_OUTPUTS:
        return None
    return (f"systemctl status -o {modes[-1]} prints every field of the unit's journal "
            "entries, and systemd-coredump's entries for it hold the crashed process's "
            "environment and memory (secrets): use a line mode (-o short-iso, cat), or "
            "journalctl -u UNIT -o json --output-fields=MESSAGE,_PID,PRIORITY")


def _systemctl_extra(parsed: Parsed) -> str | None:
    return _properties_named(parsed) or _status_lines_only(parsed)


SYSTEMCTL = Spec(
    options=flags("--no-pager, --plain, --no-legend, --failed, --value, --reverse, --after, "
                  "--before, --with-dependencies, --show-types, --no-ask-password, --system, "
                  "-a --all, -l --full, -q --quiet, -r --recursive") + (
        opt("-t --type", value=word_list), opt("--state", value=word_list),
        opt("-p --property", value=_no_secret_properties),
        opt("-P", value=_no_secret_properties),
        opt("-n --lines", value=number_value), opt("-o --output", value=word_list),
        opt("--legend", OPTIONAL, word_list), opt("--timestamp", value=word_list)),
    denied={**{k: v for k, v in REDIRECT.items() if k not in ("-D", "--directory", "--file",
                                                               "-i", "--namespace")},
            **deny("--runtime --force -f --now -i --ignore-inhibitors --kill-whom --kill-value "
                   "--signal -s --job-mode --no-block --wait --what --preset-mode "
                   "--firmware-setup --boot-loader-menu --boot-loader-entry --reboot-argument "
                   "--check-inhibitors --dry-run --drop-in --when --mkdir --read-only --marked "
                   "--message --global", _NOT_READ_ONLY)},
    subcommands=frozenset(_READ_VERBS | {"is-active", "is-enabled", "is-failed",
                                         "is-system-running", "get-default"}),
    # `systemctl --failed` is `systemctl list-units --failed`; --no-pager is added by as_run
    default_subcommand="list-units",
    operand=unit_or_pid,
    extra=_systemctl_extra,
)

JOURNALCTL = Spec(
    # -e without a pager is "the last 1000 lines" (journalctl -xeu nginx)
    options=flags("--no-pager, --list-boots, -k --dmesg, -x --catalog, -r --reverse, -a --all, "
                  "-l --full, --no-full, -q --quiet, --no-hostname, --utc, -m --merge, "
                  "--system, --user, -N --fields, --disk-usage, --header, --show-cursor, "
                  "--no-tail, --truncate-newline, -e --pager-end") + (
        opt("-u --unit", value=unit_pattern), opt("--user-unit", value=unit_pattern),
        opt("-t --identifier", value=user_name), opt("-T --exclude-identifier", value=user_name),
        opt("-p --priority", value=priority_value), opt("--facility", value=word_list),
        opt("-g --grep", value=any_value), opt("--case-sensitive", OPTIONAL, word_list),
        opt("-S --since", value=time_value), opt("-U --until", value=time_value),
        opt("-n --lines", OPTIONAL, charset(LINE_COUNT.pattern, "is not a number"), LINE_COUNT),
        opt("-b --boot", OPTIONAL, charset(BOOT_ID.pattern, "is not a boot"), BOOT_ID),
        opt("-o --output", value=_output_mode),
        opt("--output-fields", value=_no_secret_fields(property_list)),
        opt("-F --field", value=_no_secret_fields(property_list)),
        opt("-c --cursor", value=plain_value),
        opt("--after-cursor", value=plain_value)),
    denied={**REDIRECT,
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
            **deny("--verify", "reads every journal file; not for investigating")},
    operand=_journal_operand,
    max_operands=8,
    extra=_journal_fields_named,
)

# -- other systemd tools ---------------------------------------------------------------------
def unit_file(value: str) -> str | None:
    """A unit name or glob, or the absolute path of a unit file (systemd-analyze verify)."""
    return absolute_path(value) if value.startswith("/") else unit_pattern(value)


_NO_OPERANDS: tuple[Validator, int] = (plain_value, 0)


def _verify_without_man(parsed: Parsed) -> str | None:
    """verify runs man(1) for each Documentation=man:... of the file it checks, with that
    entry's words as man's arguments (``man:ls(--pager=x)``): whoever wrote the unit file
    chooses them, so it runs only with --man=no (the last --man counts, as for systemd)."""
    man = [value for name, value in parsed.options if name == "--man"]
    if parsed.operands[:1] == ["verify"] and man[-1:] != ["no"]:
        return ("systemd-analyze verify runs man(1) with the words of each unit file's "
                "Documentation= as its arguments, which the file's writer chose: add --man=no")
    return None


SYSTEMD_ANALYZE = Spec(
    flags("--no-pager, --system, --no-legend, -q --quiet") + (
        opt("--fuzz", value=time_value), opt("--man", OPTIONAL, word_list),
        opt("--threshold", value=number_value), opt("--json", value=word_list),
        opt("--recursive-errors", value=word_list), opt("--iterations", value=number_value),
        opt("--base-time", value=time_value)),
    denied={**REDIRECT,
            **deny("--generators", "runs the unit generators, programs the policy could not "
                   "check"),
            **deny("--security-policy --profile", "reads another file")},
    subcommands=frozenset({"time", "blame", "critical-chain", "verify", "security",
                           "unit-paths", "calendar", "timespan", "timestamp", "exit-status"}),
    default_subcommand="time",
    refused_subcommands={
        **dict.fromkeys(("set-log-level", "set-log-target", "log-level", "log-target",
                         "service-watchdogs", "get-log-level", "get-log-target"),
                        "changes (or, without a value, shows) the service manager's logging "
                        "or watchdogs; not allowed"),
        "cat-config": "prints configuration files around read_file's checks; read them with "
                      "read_file",
        "inspect-elf": "reads files around read_file's checks",
        "dump": "prints the whole service manager state; use systemctl status or show",
    },
    sub_operands={"time": _NO_OPERANDS, "blame": _NO_OPERANDS, "unit-paths": _NO_OPERANDS,
                  "critical-chain": (unit_pattern, 8), "verify": (unit_file, 8),
                  "security": (unit_pattern, 8), "calendar": (time_value, 4),
                  "timespan": (time_value, 4), "timestamp": (time_value, 4),
                  "exit-status": (word_list, 8)},
    extra=_verify_without_man,
)

_COREDUMP_COMM = charset(r"[A-Za-z0-9_.:@+\-]{1,64}", "is not a PID, program name, path or "
                         "FIELD=value match")


def coredump_match(value: str) -> str | None:
    if value.startswith("/"):
        return absolute_path(value)
    if "=" in value:
        return _no_secret_fields(journal_match)(value)
    return _COREDUMP_COMM(value)


COREDUMPCTL = Spec(
    flags("--no-pager, --no-legend, -r --reverse, -1, -q --quiet, --all") + (
        opt("-n", value=number_value), opt("-S --since", value=time_value),
        opt("-U --until", value=time_value),
        opt("-F --field", value=_no_secret_fields(property_list)),
        opt("--json", value=word_list)),
    denied={**REDIRECT,
            **deny("-o --output", "is not read-only: it writes the core dump to a file"),
            **deny("--debugger -A --debugger-arguments", "runs a debugger, which the policy "
                   "could not check")},
    subcommands=frozenset({"list", "info"}), default_subcommand="list",
    refused_subcommands={"dump": "prints a process's memory (secrets)",
                         **dict.fromkeys(("debug", "gdb"), "runs a debugger, which the policy "
                                         "could not check")},
    operand=coredump_match, max_operands=8,
)

interface_name = charset(r"[A-Za-z0-9_.:@*\-]{1,64}", "is not a network interface name")
host_or_address = charset(r"[A-Za-z0-9_.:%\-]{1,253}", "is not a host name or address")
_RESOLVED_SETTERS = dict.fromkeys(
    ("dns", "domain", "default-route", "llmnr", "mdns", "dnssec", "dnsovertls", "nta"),
    "sets a link's DNS settings when given values; resolvectl status shows them")
RESOLVECTL = Spec(
    flags("--no-pager, -4, -6") + (
        opt("-i --interface", value=interface_name), opt("-p --protocol", value=word_list),
        opt("-t --type", value=word_list), opt("-c --class", value=word_list),
        opt("--legend", value=word_list), opt("--json", value=word_list),
        *(opt(f"--{o}", value=word_list) for o in (
            "cname", "validate", "synthesize", "cache", "zone", "trust-anchor", "network",
            "search", "stale-data", "relax-single-label"))),
    denied={**REDIRECT,
            **deny("--set-dns --set-domain --set-llmnr --set-mdns --set-dnsovertls "
                   "--set-dnssec --set-nta --revert --flush-caches --reset-statistics "
                   "--reset-server-features", "is not read-only: it changes the resolver")},
    subcommands=frozenset({"status", "query", "statistics", "show-server-state"}),
    default_subcommand="status",
    refused_subcommands={
        **_RESOLVED_SETTERS,
        **dict.fromkeys(("flush-caches", "reset-statistics", "reset-server-features"),
                        "is not read-only: it resets the resolver's caches or counters"),
        "revert": "is not read-only: it drops a link's DNS settings",
        "log-level": "changes the resolver's log level",
        "monitor": "never ends: it follows DNS queries",
        **dict.fromkeys(RESOLVECTL_LOOKUPS[1:], f"asks the network: {LEAVES}"),
    },
    sub_operands={"status": (interface_name, 8), "query": (host_or_address, 8),
                  "statistics": _NO_OPERANDS, "show-server-state": _NO_OPERANDS},
    extra=resolvectl_lookup,
)

NETWORKCTL = Spec(
    flags("--no-pager, --no-legend, -a --all, -s --stats, -l --full") + (
        opt("-n --lines", value=number_value),
        opt("--json", value=charset(r"pretty|short|off", "is not one of pretty, short, off"))),
    denied={**REDIRECT, **deny("--no-reload --runtime --drop-in --stdin",
                               "only matters when changing network configuration")},
    subcommands=frozenset({"list", "status", "lldp", "label"}), default_subcommand="list",
    refused_subcommands={
        **dict.fromkeys(("up", "down", "renew", "forcerenew", "reconfigure", "reload",
                         "delete", "edit", "mask", "unmask", "persistent-storage"),
                        "is not read-only: it changes network links or their configuration"),
        "cat": "prints network configuration files (they can hold WireGuard keys) around "
               "read_file's checks; read them with read_file",
    },
    operand=interface_name, max_operands=8,
)

# -- kernel, processes, clock ----------------------------------------------------------------
def sysctl_name(value: str) -> str | None:
    if "=" in value:
        return "sets a kernel setting (NAME=VALUE writes it even without -w)"
    return charset(r"[A-Za-z0-9_.*/\-]{1,128}", "is not a kernel setting name")(value)


_LOADS = "is not read-only: it loads kernel settings from files"
SYSCTL = Spec(
    flags("-a --all, -A, -X, -b --binary, -e --ignore, -N --names, -n --values, -q --quiet, "
          "-o, -x, -d, --deprecated") + (opt("-r --pattern", value=any_value),),
    denied={**deny("-w --write", "is not read-only: it writes kernel settings"),
            **deny("-p --load -f", _LOADS), **deny("--system", _LOADS)},
    operand=sysctl_name,
)

PGREP = Spec(
    flags("-l --list-name, -a --list-full, -v --inverse, -w --lightweight, -c --count, "
          "-f --full, -i --ignore-case, -n --newest, -o --oldest, -x --exact, "
          "-A --ignore-ancestors") + (
        opt("-d --delimiter", value=charset(r"[A-Za-z0-9 ,:;|_\-]{1,8}", "is not a delimiter")),
        opt("-g --pgroup", value=word_list), opt("-G --group", value=word_list),
        opt("-P --parent", value=word_list), opt("-s --session", value=word_list),
        opt("-t --terminal", value=word_list), opt("-u --euid", value=word_list),
        opt("-U --uid", value=word_list), opt("-r --runstates", value=word_list),
        opt("-O --older", value=number_value), opt("--cgroup", value=plain_value),
        opt("--ns", value=number_value), opt("--nslist", value=word_list)),
    denied={**deny("-F --pidfile -L --logpidfile", "reads another file"),
            **deny("--signal -q --queue", "only matters for pkill, which is never allowed"),
            **deny("--env", "matches on process environments (secrets)")},
    operand=any_value, max_operands=1,
)


def _top_runs_once(parsed: Parsed) -> str | None:
    if not parsed.has("--batch-mode"):
        return "top without -b wants a terminal and never ends: use top -b -n 1"
    if not parsed.has("--iterations"):
        return "top -b without -n N never ends: use top -b -n 1"
    return None


TOP = Spec(
    flags("-b --batch-mode, -c --cmdline-toggle, -H --threads-show, -i --idle-toggle, "
          "-S --accum-time-toggle, -s --secure-mode, -1 --single-cpu-toggle") + (
        opt("-n --iterations", value=charset(r"[1-9]|10", "is not a count from 1 to 10")),
        opt("-d --delay", value=charset(r"[0-9]{1,2}(\.[0-9]{1,2})?", "is not a delay in "
                                        "seconds below 100")),
        opt("-p --pid", value=charset(r"[0-9,]{1,128}", "is not a list of PIDs")),
        opt("-u --filter-only-euser", value=user_name),
        opt("-U --filter-any-user", value=user_name),
        opt("-o --sort-override", value=charset(r"[+-]?[A-Za-z%]{1,12}", "is not a field")),
        # -w alone widens to top's most; a number cuts where the model chose (_CUTS)
        opt("-w --width", OPTIONAL, lambda value: f"takes no number here: it {_CUTS}"),
        opt("-E --scale-summary-mem", value=charset(r"[kmgtpe]", "is not k, m, g, t, p or e")),
        opt("-e --scale-task-mem", value=charset(r"[kmgtp]", "is not k, m, g, t or p"))),
    max_operands=0, extra=_top_runs_once,
)


def date_operand(value: str) -> str | None:
    if not value.startswith("+"):
        return "would set the clock (date MMDDhhmm...); only +FORMAT is allowed"
    return charset(r"\+[A-Za-z0-9%:_.,/ \-]{0,64}", "is not a +FORMAT")(value)


DATE = Spec(
    flags("-u --utc --universal, -R --rfc-email, --debug") + (
        opt("-I --iso-8601", OPTIONAL, charset(r"date|hours|minutes|seconds|ns",
                                               "is not date, hours, minutes, seconds or ns")),
        opt("--rfc-3339", value=charset(r"date|seconds|ns", "is not date, seconds or ns")),
        opt("-d --date", value=charset(r"[A-Za-z0-9 :+.@,/\-]{1,64}", "is not a date")),
        opt("-r --reference", value=absolute_path)),
    denied={**deny("-s --set", "is not read-only: it sets the clock"),
            **deny("-f --file", "reads dates from another file")},
    operand=date_operand, max_operands=1,
)

# -- storage: ZFS, RAID ----------------------------------------------------------------------
def _zfs_name(kind: str) -> Validator:
    """Pool and dataset names start with a letter; a number after the pools is an interval,
    and then zpool status/list repeat until stopped."""
    name = charset(r"[A-Za-z][A-Za-z0-9_.:/@#,\-]{0,255}", f"is not a {kind} name")

    def check(value: str) -> str | None:
        if kind == "pool" and value[:1].isdigit():
            return "is an interval: it repeats until stopped (never ends)"
        return name(value)
    return check


_ZFS_CHANGES = "is not read-only: it changes pools, datasets or their data"
ZPOOL = Spec(
    flags("-D, -e, -g, -i, -L, -p, -P, -s, -t, -v, -x, -H") + (
        opt("-o", value=word_list), opt("-T", value=charset(r"[ud]", "is not u or d"))),
    denied=deny("-c", "runs the zpool.d scripts named with it, which the policy could not "
                "check"),
    subcommands=frozenset({"status", "list", "get"}),
    refused_subcommands={
        **dict.fromkeys(("create", "add", "remove", "attach", "detach", "online", "offline",
                         "replace", "split", "upgrade", "set", "sync", "trim", "initialize",
                         "resilver", "reguid", "reopen", "labelclear", "checkpoint",
                         "prefetch", "ddtprune"), _ZFS_CHANGES),
        "scrub": "is not read-only: it starts, pauses or stops a scrub",
        "clear": "is not read-only: it clears device errors",
        "import": "is not read-only: it imports pools",
        "export": "is not read-only: it exports a pool (its file systems go away)",
        "destroy": "is not read-only: it destroys a pool and all its data",
        "events": "can clear or follow the event log; zpool status -v shows errors",
        "iostat": "repeats until stopped with an interval; use zpool status or list",
        "wait": "never ends until an activity ends",
    },
    operand=_zfs_name("pool"), max_operands=8,
)
ZFS = Spec(
    flags("-r, -H, -p") + (
        opt("-d", value=number_value), opt("-o", value=word_list), opt("-s", value=word_list),
        opt("-S", value=word_list), opt("-t", value=word_list)),
    subcommands=frozenset({"list", "get"}),
    refused_subcommands={
        **dict.fromkeys(("create", "snapshot", "rollback", "clone", "promote", "rename", "set",
                         "inherit", "mount", "unmount", "umount", "share", "unshare", "receive",
                         "recv", "allow", "unallow", "hold", "release", "upgrade", "bookmark",
                         "redact", "jail", "unjail", "zone", "unzone", "project"),
                        _ZFS_CHANGES),
        "destroy": "is not read-only: it destroys datasets and their data",
        "send": "prints a whole dataset's data",
        **dict.fromkeys(("load-key", "unload-key", "change-key"),
                        "is not read-only: it handles encryption keys"),
        "program": "runs a channel program, which the policy could not check",
        "wait": "never ends until an activity ends",
    },
    operand=_zfs_name("dataset"), max_operands=8,
)

# -- nftables: `nft list ...` only ----------------------------------------------------------
# nft joins its words into one line of its own language, so `nft list ruleset ";" flush
# ruleset` would run two commands: every word is a plain name, never ';', '{' or '#'
_NFT_OBJECTS = frozenset({"ruleset", "tables", "table", "chains", "chain", "sets", "set",
                          "maps", "map", "flowtables", "flowtable", "counters", "counter",
                          "quotas", "quota", "limits", "limit", "meters", "meter", "secmarks",
                          "secmark", "synproxys", "synproxy", "ct", "hooks"})
nft_word = charset(r"[A-Za-z0-9_.\-]{1,64}", "is not a family, table, chain or set name "
                   "(nft reads all its words as one line of rules)")


def _nft_lists(parsed: Parsed) -> str | None:
    words = parsed.operands[1:]
    if not words or words[0] not in _NFT_OBJECTS:
        return ("nft list needs what to list: ruleset, tables, table FAMILY NAME, chains, "
                "sets, set FAMILY TABLE NAME ...")
    return None


_NFT_CHANGES = "is not read-only: it changes the firewall"
NFT = Spec(
    flags("-a --handle, -j --json, -n --numeric, -s --stateless, -t --terse, "
          "-y --numeric-priority, -p --numeric-protocol, -T --numeric-time, -S --service"),
    denied={**deny("-f --file", "is not read-only: it loads rules from a file"),
            **deny("-i --interactive", "reads commands from the terminal"),
            **deny("-I --includepath", "reads rule files"),
            **deny("-D --define -c --check -e --echo -o --optimize",
                   "only matters when loading or changing rules")},
    subcommands=frozenset({"list"}),
    refused_subcommands={
        **dict.fromkeys(("add", "insert", "create", "replace", "delete", "destroy", "rename",
                         "import"), _NFT_CHANGES),
        "flush": "is not read-only: it deletes rules",
        "reset": "is not read-only: it zeroes counters or quotas",
        "monitor": "never ends: it follows firewall changes",
    },
    sub_operands={"list": (nft_word, 5)}, extra=_nft_lists,
)

_LS_FLAGS = ", ".join(f"-{c}" for c in "aAlhdiRrtSsn1FZLgGocuUXvkpQNbqxCm")

READ_ONLY: dict[str, Spec] = {
    "systemctl": SYSTEMCTL,
    "journalctl": JOURNALCTL,
    "df": Spec(flags("-a --all, -h --human-readable, -H --si, -i --inodes, -k, -l --local, "
                     "-P --portability, -T --print-type, --total") + (
        opt("-t --type", value=word_list), opt("-x --exclude-type", value=word_list),
        opt("--output", OPTIONAL, word_list), opt("-B --block-size", value=size_value)),
        denied=deny("--sync", "is not read-only: it flushes every file system first"),
        operand=absolute_path, max_operands=8),
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
        opt("--time-style", value=plain_value), opt("--sort", value=word_list),
        opt("--time", value=word_list), opt("--color", OPTIONAL, word_list),
        opt("--format", value=word_list), opt("--block-size", value=size_value),
        opt("--indicator-style", value=word_list), opt("--quoting-style", value=word_list)),
        operand=absolute_path),
    "du": Spec(flags("-a --all, -b --bytes, -c --total, -h --human-readable, -k, -m, "
                     "-s --summarize, -x --one-file-system, -l --count-links, -L --dereference, "
                     "-P --no-dereference, -D --dereference-args, -H, -S --separate-dirs, "
                     "--apparent-size, --si, --inodes") + (
        opt("-d --max-depth", value=number_value), opt("--time", OPTIONAL, word_list),
        opt("--exclude", value=plain_value), opt("-t --threshold", value=size_value),
        opt("-B --block-size", value=size_value)),
        denied={**deny("--files0-from", "reads the names to measure from a file"),
                **deny("-X --exclude-from", "reads patterns from a file")},
        operand=absolute_path),
    "lsblk": Spec(flags("-a --all, -b --bytes, -d --nodeps, -D --discard, -f --fs, -J --json, "
                        "-l --list, -m --perms, -n --noheadings, -p --paths, -P --pairs, "
                        "-r --raw, -S --scsi, -t --topology, -O --output-all, -z --zoned") + (
        opt("-o --output", value=output_columns), opt("-e --exclude", value=word_list),
        opt("-I --include", value=word_list), opt("-x --sort", value=word_list),
        opt("-T --tree", OPTIONAL, word_list)),
        operand=absolute_path, max_operands=8),
    "findmnt": Spec(flags("-A --all, -b --bytes, -c --canonicalize, -D --df, -e --evaluate, "
                          "-f --first-only, -i --invert, -J --json, -k --kernel, -l --list, "
                          "-n --noheadings, -P --pairs, -r --raw, -R --submounts, -s --fstab, "
                          "-m --mtab, -u --notruncate, -U --uniq, -v --nofsroot, -x --verify, "
                          "--real, --pseudo") + (
        opt("-o --output", value=output_columns), opt("-O --options", value=plain_value),
        opt("-t --types", value=word_list), opt("-S --source", value=plain_value),
        opt("-T --target", value=absolute_path), opt("-M --mountpoint", value=absolute_path),
        opt("-N --task", value=number_value)),
        denied={**deny("-F --tab-file", "reads another file"),
                **deny("-p --poll -w --timeout", "never ends: it waits for changes")},
        max_operands=2),
    "ss": Spec(flags("-t --tcp, -u --udp, -l --listening, -n --numeric, -p --processes, "
                     "-a --all, -x --unix, -w --raw, -4 --ipv4, -6 --ipv6, -e --extended, "
                     "-m --memory, -o --options, -i --info, -s --summary, -r --resolve, "
                     "-H --no-header, -O --oneline, -0 --packet, -S --sctp, -d --dccp, "
                     "--vsock, --xdp, --tipc, -Z --context, -z --contexts, --cgroup, --tos") + (
        opt("-f --family", value=word_list), opt("-A --query --socket", value=word_list)),
        denied={**deny("-K --kill", "is not read-only: it closes sockets"),
                **deny("-D --diag", "is not read-only: it writes a dump file"),
                **deny("-F --filter", "reads a filter from a file"),
                **deny("-N --net", "redirects the target (another network namespace)"),
                **deny("-E --events", "never ends: it follows socket events")},
        operand=charset(r"[A-Za-z0-9:._()=<>!\-/% *\[\]]+", "is not a socket filter"),
        extra=ss_filter_names),
    # hostnamectl has no --no-pager (it never pages and would fail on the option)
    "hostnamectl": Spec(flags("--static, --transient, --pretty") + (
        opt("--json", value=word_list),), denied=REDIRECT,
        subcommands=frozenset({"status"}), default_subcommand="status",
        refused_subcommands=dict.fromkeys(
            ("hostname", "set-hostname", "icon-name", "set-icon-name", "chassis",
             "set-chassis", "deployment", "set-deployment", "location", "set-location"),
            "sets the host's name or description when given a value; hostnamectl status "
            "shows them"),
        max_operands=0),
    "timedatectl": Spec(flags("--no-pager, -a --all, --value") + (
        opt("-p --property", value=property_list),),
        denied={**REDIRECT, **deny("--monitor", "never ends: it follows changes"),
                **deny("--adjust-system-clock", "only matters when setting the clock")},
        subcommands=frozenset({"status", "show", "timesync-status", "show-timesync",
                               "list-timezones"}),
        default_subcommand="status",
        refused_subcommands=dict.fromkeys(
            ("set-time", "set-timezone", "set-local-rtc", "set-ntp", "ntp-servers", "revert"),
            "is not read-only: it changes the clock or how it is kept"),
        max_operands=0),
    "systemd-analyze": SYSTEMD_ANALYZE,
    "loginctl": Spec(flags("--no-pager, --no-legend, -a --all, --value, -l --full") + (
        opt("-p --property", value=property_list),),
        denied={**REDIRECT, **deny("-s --signal --kill-whom", _NOT_READ_ONLY)},
        subcommands=frozenset({"list-sessions", "list-users", "list-seats", "show-session",
                               "show-user", "session-status", "user-status"}),
        default_subcommand="list-sessions",
        refused_subcommands=dict.fromkeys(
            ("activate", "lock-session", "unlock-session", "lock-sessions", "unlock-sessions",
             "terminate-session", "kill-session", "enable-linger", "disable-linger",
             "terminate-user", "kill-user", "attach", "flush-devices", "terminate-seat"),
            "is not read-only: it changes sessions, users or seats"),
        max_operands=4),
    "nixos-version": Spec(flags("--hash, --revision, --json, --configuration-revision"),
                          max_operands=0),
    "dmesg": Spec(flags("-T --ctime, -t --notime, -x --decode, -k --kernel, -u --userspace, "
                        "-r --raw, -S --syslog, -d --show-delta, -P --nopager, -e --reltime, "
                        "-J --json") + (
        opt("-L --color", OPTIONAL, word_list), opt("-l --level", value=word_list),
        opt("-f --facility", value=word_list), opt("--time-format", value=word_list),
        opt("--since", value=time_value), opt("--until", value=time_value)),
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
        opt("-S --unit", value=word_list),),
        operand=charset(r"[1-9][0-9]?", "is not a small number"), max_operands=2,
        extra=lambda p: None if len(p.operands) in (0, 2) else
        "vmstat with a delay needs a count too, or it never ends"),
    "id": Spec(flags("-u --user, -g --group, -G --groups, -n --name, -r --real, -a, "
                     "-Z --context"), operand=user_name, max_operands=1),
    "who": Spec(flags("-a --all, -b --boot, -d --dead, -H --heading, -l --login, -p --process, "
                      "-q --count, -r --runlevel, -s --short, -t --time, -T --mesg, "
                      "-u --users"), max_operands=0),
    "w": Spec(flags("-h --no-header, -s --short, -f --from, -i --ip-addr, -o --old-style, "
                    "-u --no-current"), operand=user_name, max_operands=1),
    "last": Spec(flags("-x --system, -F --fulltimes, -w --fullnames, -i --ip, -a --hostlast, "
                       "-R --nohostname") + (
        opt("-n --limit", value=number_value), opt("-s --since", value=time_value),
        opt("-t --until", value=time_value), opt("-p --present", value=time_value),
        opt("--time-format", value=word_list)),
        denied=deny("-f --file", "reads another file"), max_operands=4),
    "getent": Spec(flags("-i --no-idn"),
                   subcommands=frozenset({"passwd", "group", "hosts", "ahosts", "ahostsv4",
                                          "ahostsv6", "services", "networks", "protocols"}),
                   refused_subcommands=dict.fromkeys(
                       ("shadow", "gshadow"), "is not allowed: it holds password hashes"),
                   max_operands=8, extra=getent_lookup),
    "stat": Spec(flags("-L --dereference, -f --file-system, -t --terse") + (
        opt("-c --format", value=any_value), opt("--printf", value=any_value),
        opt("--cached", value=word_list)), operand=absolute_path, max_operands=8),
    "pgrep": PGREP,
    "top": TOP,
    "sysctl": SYSCTL,
    "date": DATE,
    "nproc": Spec(flags("--all") + (opt("--ignore", value=number_value),), max_operands=0),
    "lscpu": Spec(flags("-a --all, -b --online, -c --offline, -J --json, -x --hex, "
                        "-y --physical, -B --bytes, --output-all") + (
        opt("-e --extended", OPTIONAL, word_list), opt("-p --parse", OPTIONAL, word_list),
        opt("-C --caches", OPTIONAL, word_list)),
        denied=deny("-s --sysroot", "redirects the target (another root directory)"),
        max_operands=0),
    "coredumpctl": COREDUMPCTL,
    "resolvectl": RESOLVECTL,
    "networkctl": NETWORKCTL,
    "nft": NFT,
    "zpool": ZPOOL,
    "zfs": ZFS,
}

# -- programs with their own argument syntax: ps, ip, find, lsof, mdadm ----------------------
_PS_FLAGS, _PS_VALUED = set("AaedfFlHjLMNTwyZc"), set("oOpquUCgGst")
#: BSD-style letters (no dash): flags, and those that take a value (``ps p 42``, ``ps U www``)
_PS_BSD, _PS_BSD_VALUED = set("auxwfjlvrSTcHmhnZ"), set("oOpUtqk")
_PS_LONG = {"--forest": False, "--no-headers": False, "--no-heading": False,
            "--headers": False, "--cumulative": False, "--deselect": False, "--sort": True,
            "--format": True, "--pid": True, "--ppid": True, "--user": True, "--User": True,
            "--group": True, "--Group": True, "--lines": True, "--rows": True}
#: what ps is refused that cuts what it prints at a width (masking reads whole lines: a
#: secret in a command line cut a character short of its end matches no pattern)
_PS_CUTS = frozenset({"--cols", "--columns", "--width"})
_CUTS = "cuts each line at a width, and a secret cut there would show in part"
_PS_LIST = charset(r"[+-]?[A-Za-z0-9_,.:=%+\-]+", "has characters that are not allowed")


def _ps_value(name: str, value: str) -> None:
    columns = name in ("-o", "-O", "o", "O", "--format")
    # the command line's column cut at a width (args:30); a user name's width cuts no secret
    if columns and re.search(r"(?:^|,)(?:args|cmd|command):[0-9]", value):
        raise Refused(f"ps {name} {redact_cut(value, 40)!r}: a width of the command line "
                      "cuts it, and a secret cut there would show in part")
    check = output_columns if columns else _PS_LIST
    if (problem := check_value(check, value)) is not None:
        raise Refused(f"ps {name} {redact_cut(value, 40)!r} {problem}")


def _check_ps(args: list[str]) -> None:
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in _PS_CUTS:
                raise Refused(f"ps {name} {_CUTS}")
            if name not in _PS_LONG:
                raise Refused(f"ps {name} is not allowed while investigating")
            if _PS_LONG[name]:
                if not eq:
                    if i >= len(args):
                        raise Refused(f"ps {name} needs a value")
                    value, i = args[i], i + 1
                _ps_value(name, value)
            elif eq:
                raise Refused(f"ps {name} takes no value")
            continue
        if re.fullmatch(r"[0-9][0-9,]*", arg):
            continue  # `ps 4242`: a bare number is a PID list
        unix = arg.startswith("-")
        letters = arg[1:] if unix else arg
        for j, char in enumerate(letters):
            if not unix and char == "e":
                raise Refused("ps with the BSD 'e' option prints process environments "
                               "(secrets)")
            if char in (_PS_FLAGS if unix else _PS_BSD):
                continue
            if char in (_PS_VALUED if unix else _PS_BSD_VALUED):
                value = letters[j + 1:]
                if not value:
                    if i >= len(args):
                        raise Refused(f"ps {char} needs a value")
                    value, i = args[i], i + 1
                _ps_value(f"-{char}" if unix else char, value)
                break
            raise Refused(f"ps {'-' if unix else ''}{char} (in {arg}) is not allowed while "
                           "investigating")


# ip matches every word by prefix, taking the first entry of its own tables in their order
# (iproute2 ip/ip.c and the do_* functions): `ip a s` is `ip address show`, but `ip l s` is
# `ip link set`. The tables below keep ip's order so a prefix resolves as ip resolves it.
#: (name, exact only, takes a value) in the order ip tries them
_IP_OPTIONS: tuple[tuple[str, bool, bool], ...] = (
    ("-loops", False, True), ("-family", False, True), ("-4", True, False),
    ("-6", True, False), ("-0", True, False), ("-M", True, False), ("-B", True, False),
    ("-human", False, False), ("-human-readable", False, False), ("-iec", False, False),
    ("-stats", False, False), ("-statistics", False, False), ("-details", False, False),
    ("-resolve", False, False), ("-oneline", False, False), ("-timestamp", False, False),
    ("-tshort", False, False), ("-Version", False, False), ("-force", False, False),
    ("-batch", False, True), ("-brief", False, False), ("-json", False, False),
    ("-pretty", False, False), ("-rcvbuf", False, True), ("-color", False, False),
    ("-help", False, False), ("-netns", False, True), ("-Numeric", False, False),
    ("-all", False, False), ("-echo", True, False))
_IP_READ_OPTIONS = frozenset({"-family", "-4", "-6", "-0", "-M", "-B", "-human",
                              "-human-readable", "-iec", "-stats", "-statistics", "-details",
                              "-oneline", "-brief", "-json", "-pretty", "-color", "-Numeric",
                              "-Version", "-help"})
_IP_OPTION_WHY = {"-batch": "reads commands from a file", "-force": "goes on after errors in "
                  "a batch", "-netns": "redirects the target (another network namespace)",
                  "-all": "runs in every network namespace", "-loops": "only matters when "
                  "flushing", "-echo": "only matters when changing the network"}
_IP_FAMILIES = frozenset({"inet", "inet6", "link", "bridge", "mpls"})
_IP_OBJECTS = ("address", "addrlabel", "maddress", "route", "rule", "neighbor", "neighbour",
               "ntable", "ntbl", "link", "l2tp", "fou", "ila", "macsec", "tunnel", "tunl",
               "tuntap", "tap", "token", "tcpmetrics", "tcp_metrics", "monitor", "xfrm",
               "mroute", "mrule", "netns", "netconf", "vrf", "sr", "nexthop", "mptcp", "ioam",
               "help", "stats")
_IP_OBJECT_WHY = {"monitor": "never ends: it follows network changes",
                  "netns": "runs programs in, or changes, network namespaces",
                  "xfrm": "prints IPsec keys (secrets)"}
_SHOW, _GET = ("list", "show", "lst"), ("get",)
#: per object, ip's actions in order, each a tuple of spellings (exact-only ones marked "=")
_IP_ACTIONS: dict[str, tuple[tuple[str, ...], ...]] = {
    "address": (("add",), ("change", "=chg"), ("replace",), ("delete",), _SHOW, ("flush",),
                ("save",), ("showdump",), ("restore",), ("help",)),
    "link": (("add",), ("set", "change"), ("replace",), ("delete",), ("show", "lst", "list"),
             ("xstats",), ("afstats",), ("property",), ("help",)),
    "route": (("add",), ("change", "=chg"), ("replace",), ("prepend",), ("append",),
              ("test",), ("delete",), _SHOW, _GET, ("flush",), ("save",), ("restore",),
              ("showdump",), ("help",)),
    "rule": (("list", "lst", "show"), ("save",), ("restore",), ("add",), ("delete",),
             ("flush",), ("help",)),
    "neighbor": (("add",), ("change", "=chg"), ("replace",), ("delete",), _GET,
                 ("show", "lst", "list"), ("flush",), ("help",)),
}
_IP_ACTIONS["neighbour"] = _IP_ACTIONS["neighbor"]
_IP_READS = frozenset({"list", "show", "lst", "get"})


def _ip_matches(word: str, full: str) -> bool:
    """iproute2's matches(): a non-empty prefix."""
    return bool(word) and full.startswith(word)


def _ip_action(obj: str, word: str) -> str | None:
    """The action ip takes ``word`` for after ``obj``: the first in ip's order."""
    for group in _IP_ACTIONS[obj]:
        for spelling in group:
            full = spelling.lstrip("=")
            if word == full if spelling.startswith("=") else _ip_matches(word, full):
                return full
    return None


def _ip_option(token: str) -> tuple[str, bool]:
    """(the option ip takes ``token`` for, whether it takes the next word as its value)."""
    option = token[1:] if token.startswith("--") else token
    name, _, color = option.partition("=")
    for full, exact, valued in _IP_OPTIONS:
        if full == "-color":
            if _ip_matches(name, "-color") and color in ("", "always", "auto", "never"):
                return full, False
            continue
        if option == full or (not exact and _ip_matches(option, full)):
            return full, valued
    raise Refused(f"ip {token} is not an option ip knows")


def _check_ip(args: list[str]) -> None:
    """ip's own parser: one-dash options and words matched by prefix, in ip's order."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        token = args[i]
        i += 1
        if token == "--":
            break
        full, valued = _ip_option(token)
        shown = token if token == full else f"{token} (ip reads it as {full})"
        if full in _IP_OPTION_WHY:
            raise Refused(f"ip {shown} {_IP_OPTION_WHY[full]}")
        if full not in _IP_READ_OPTIONS:
            raise Refused(f"ip {shown} is not allowed while investigating")
        if valued:
            if i >= len(args) or args[i] not in _IP_FAMILIES:
                raise Refused(f"ip {token} needs one of: {', '.join(sorted(_IP_FAMILIES))}")
            i += 1
    words = args[i:]
    readable = ", ".join(_IP_ACTIONS)
    if not words:
        raise Refused(f"ip needs one of: {readable}")
    obj = next((o for o in _IP_OBJECTS if _ip_matches(words[0], o)), None)
    if obj is None:
        raise Refused(f"ip needs one of: {readable} (not {redact_cut(words[0], 40)!r})")
    shown = words[0] if words[0] == obj else f"{words[0]} (ip reads it as {obj})"
    if obj in _IP_OBJECT_WHY:
        raise Refused(f"ip {shown} {_IP_OBJECT_WHY[obj]}")
    if obj not in _IP_ACTIONS:
        raise Refused(f"ip {shown} is not allowed while investigating; allowed: {readable}")
    if len(words) >= 2:
        action = _ip_action(obj, words[1])
        if action not in _IP_READS:
            what = f"ip {obj} {action}" if action else f"ip {obj} {redact_cut(words[1], 40)!r}"
            said = f"ip {' '.join(words[:2])}"
            means = what if said == what else f"{said} (ip reads it as {what})"
            raise Refused(f"{means} changes the network or is not a plain read: only "
                           "show/list/get are allowed")
    if len(words) > 10:
        raise Refused("too many operands for ip")
    for word in words[2:]:
        if word.startswith("-") or check_value(plain_value, word):
            raise Refused(f"ip operand {redact_cut(word, 40)!r} is not allowed")


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
        if (problem := check_value(absolute_path, args[i])) is not None:
            raise Refused(f"find starting point {redact_cut(args[i], 40)!r} {problem}")
        starts, i = starts + 1, i + 1
    if not starts:
        raise Refused("find needs an absolute starting path first")
    while i < len(args):
        token = args[i]
        i += 1
        if token in _FIND_DENIED:
            raise Refused(f"find {token} {_FIND_DENIED[token]}")
        if token in _FIND_NO_ARG:
            continue
        if token not in _FIND_ONE_ARG:
            raise Refused(f"find {redact_cut(token, 40)} is not allowed while investigating")
        if i >= len(args):
            raise Refused(f"find {token} needs a value")
        value, i = args[i], i + 1
        check = absolute_path if token.endswith(("newer", "samefile")) else any_value
        if (problem := check_value(check, value)) is not None:
            raise Refused(f"find {token} {redact_cut(value, 40)!r} {problem}")


# lsof (lsof-org/lsof src/main.c GetOpt): options start with '-' or '+' and end at the first
# word that starts with neither, or at "--"/"++"; letters combine (-nP). A value is the rest of
# the word or the next word; for the optional ones lsof gives the next word back when it starts
# with '-' or '+'. What follows the options are file names.
_LSOF_FLAGS = frozenset("abhHJjlnNOPQRtUvVwE?")
_LSOF_DENIED = {**dict.fromkeys(("-r", "+r"), "repeats until stopped: it never ends"),
                "-D": "writes or reads a device cache file",
                "-k": "reads another kernel name list",
                **dict.fromkeys(("-m", "+m"), "reads another kernel memory file or writes a "
                                "mount supplement"),
                "-A": "reads another name cache file",
                "+M": "asks the portmapper for registrations"}
_LSOF_ADDRESS = charset(r"[A-Za-z0-9@:.,_\[\]\-]{1,128}", "is not a network address "
                        "([46][protocol][@host][:port])")
_LSOF_REQUIRED: dict[str, Validator] = {
    "-c": charset(r"\^?[A-Za-z0-9_.:@+\-]{1,64}", "is not a command name"),
    "+c": charset(r"[0-9]{1,3}", "is not a width"),
    "-d": charset(r"[A-Za-z0-9,^\-]{1,64}", "is not a list of file descriptors"),
    "+d": absolute_path, "+D": absolute_path,
    "-p": charset(r"\^?[0-9]{1,7}(,\^?[0-9]{1,7}){0,31}", "is not a list of PIDs"),
    "-u": charset(r"\^?[A-Za-z0-9_.\-]{1,32}(,\^?[A-Za-z0-9_.\-]{1,32}){0,15}",
                  "is not a list of users"),
}
_LSOF_OPTIONAL: dict[str, Validator] = {
    "-i": lambda value: _LSOF_ADDRESS(value) or lsof_address(value),
    "-s": charset(r"(?i)(tcp|udp):\^?[A-Za-z_]+(,\^?[A-Za-z_]+)*",
                  "is not a protocol state like TCP:LISTEN"),
    "-T": charset(r"[fqsw]{1,4}", "is not a set of f, q, s, w"),
    "+T": charset(r"[fqsw]{1,4}", "is not a set of f, q, s, w"),
    "-F": charset(r"[A-Za-z0-9?]{1,40}", "is not a list of field letters"),
    "-g": charset(r"\^?[0-9]{1,7}(,\^?[0-9]{1,7}){0,31}", "is not a list of process groups"),
    "-K": charset(r"[iI]", "is not i"),
    "-x": charset(r"[fl]{1,2}", "is not f or l"),
    "+x": charset(r"[fl]{1,2}", "is not f or l"),
    "-f": charset(r"[cCfFgGnN]{1,8}", "is not a set of c, f, g, n"),
    "+f": charset(r"[cCfFgGnN]{1,8}", "is not a set of c, f, g, n"),
}
#: optional values that are leading digits; lsof reads the rest of the word as more letters
_LSOF_NUMBER = frozenset({"+L", "-L", "-o", "-S"})


def _check_lsof(args: list[str]) -> None:
    lsof_options(args)


def lsof_options(args: list[str]) -> tuple[list[str], list[str]]:
    """The options of an lsof command line (each by its name, ``-i`` of ``-nPiTCP:22``) and
    the file names it gives; :class:`Refused` where the policy does not allow it."""
    used: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("--", "++"):
            i += 1
            break
        if arg[0] not in "-+" or len(arg) == 1:
            break
        i += 1
        sign, j = arg[0], 1
        while j < len(arg):
            name = sign + arg[j]
            used.append(name)
            j += 1
            shown = name if len(arg) == 2 else f"{name} (in {arg})"
            if name in _LSOF_DENIED:
                raise Refused(f"lsof {shown} {_LSOF_DENIED[name]}")
            if sign == "-" and name[1] in _LSOF_FLAGS:
                continue
            attached = arg[j:]
            if name in _LSOF_NUMBER:
                digits = re.match(r"[0-9]*", attached)
                assert digits is not None
                if digits.group():
                    j += digits.end()
                elif not attached and i < len(args) and args[i].isdigit():
                    digits, i = re.match(r"[0-9]*", args[i]), i + 1
                if digits is not None and digits.group() and name == "-L":
                    raise Refused("lsof -L takes no number (+L1 lists files with fewer than "
                                   "one link)")
                if digits is not None and len(digits.group()) > 6:
                    raise Refused(f"lsof {shown}: too large a number")
                continue
            valued = _LSOF_REQUIRED.get(name) or _LSOF_OPTIONAL.get(name)
            if valued is None:
                raise Refused(f"lsof {shown} is not allowed while investigating")
            j = len(arg)
            if attached:
                value: str | None = attached
            elif i < len(args) and args[i] != "--":
                value, i = args[i], i + 1
            else:
                value = None
            if name in _LSOF_OPTIONAL and value is not None and value[0] in "-+":
                if attached:  # lsof reads the letters again: '-' is no option letter
                    raise Refused(f"lsof {shown}: '{value[0]}' is not an option letter")
                value, i = None, i - 1
            if value is None:
                if name in _LSOF_REQUIRED:
                    raise Refused(f"lsof {name} needs a value")
                continue
            if (problem := check_value(valued, value)) is not None:
                raise Refused(f"lsof {name} {redact_cut(value, 40)!r} {problem}")
    names = args[i:]
    if len(names) > 16:
        raise Refused("too many file names for lsof (16 at most)")
    for name in names:
        if (problem := check_value(absolute_path, name)) is not None:
            raise Refused(f"lsof file name {redact_cut(name, 40)!r} {problem}")
    return used, names


_DEV_NODE = charset(r"/dev/[A-Za-z0-9_.:/\-]{1,64}", "is not a device under /dev")


def _dev_written_by_anyone(value: str) -> str | None:
    """/dev/shm and /dev/mqueue are directories anyone may write: a name there could be
    swapped for another device between the host's check that it is a block device and
    mdadm's open of it as root."""
    if value.split("/")[2] in ("shm", "mqueue"):
        return "is in a directory anyone may write, not a device"
    return None


_MDADM_CHANGES = "is not read-only: it changes an array or its superblocks"
MDADM = Spec(
    flags("-D --detail, -E --examine, -Q --query, --detail-platform, -b --brief, "
          "-v --verbose, -s --scan, -Y --export, -t --test"),
    denied={**deny("-f --fail --set-faulty", "is not read-only: it marks a device faulty "
                   "(or forces an operation)"),
            **deny("-r --remove", "is not read-only: it removes a device from an array"),
            **deny("-a --add --re-add --add-spare --add-journal",
                   "is not read-only: it adds a device to an array"),
            **deny("-S --stop", "is not read-only: it stops an array"),
            **deny("-A --assemble -B --build -I --incremental --auto-detect",
                   "is not read-only: it assembles or starts arrays"),
            **deny("-C --create", "is not read-only: it creates an array (and overwrites "
                   "superblocks)"),
            **deny("-G --grow", "is not read-only: it changes an array's shape"),
            **deny("-F --follow --monitor", "never ends: it monitors arrays"),
            **deny("--manage --misc", "selects another mode; use --detail, --examine or "
                   "--query"),
            **deny("-R --run -o --readonly -w --readwrite --zero-superblock -W --wait "
                   "--wait-clean -U --update --kill-subarray --update-subarray --action "
                   "--replace --with --force --rebuild-map", _MDADM_CHANGES),
            **deny("-c --config", "reads another configuration file")},
    operand=lambda value: _DEV_NODE(value) or _dev_written_by_anyone(value),
)
_MDADM_MODES = frozenset({"--detail", "--examine", "--query", "--detail-platform"})


def _check_mdadm(args: list[str]) -> None:
    parsed = parse_args("mdadm", MDADM, args, "while investigating")
    if len({name for name, _ in parsed.options if name in _MDADM_MODES}) != 1:
        raise Refused("mdadm needs one of --detail, --examine or --query here")
    # a device before the mode puts mdadm in manage mode, where options change the array
    first_mode = next(i for i, a in enumerate(args)
                      if a in _MDADM_MODES or a in ("-D", "-E", "-Q")
                      or (a.startswith("-") and not a.startswith("--") and set("DEQ") & set(a)))
    if any(not a.startswith("-") for a in args[:first_mode]):
        raise Refused("mdadm with a device before --detail/--examine is manage mode: put the "
                       "mode first")
    for operand in parsed.operands:
        if (problem := check_value(MDADM.operand, operand)) is not None:
            raise Refused(f"mdadm operand {redact_cut(operand, 40)!r} {problem}")
    if len(parsed.operands) > 16:
        raise Refused("too many operands for mdadm (16 at most)")


CUSTOM: dict[str, Callable[[list[str]], None]] = {
    "ps": _check_ps, "ip": _check_ip, "find": _check_find, "lsof": _check_lsof,
    "mdadm": _check_mdadm,
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


#: programs that look like reads in some forms and are not, with why and what to run instead
NOT_READ_ONLY: dict[str, str] = {
    # Nix's PathLocks: open(PROFILE.lock, O_CREAT), flock, then unlink it; an empty file of
    # that name already there is deleted, a non-empty one is taken for a stale lock and
    # retried in a loop that no SIGTERM ends. As root it also opens the store's database.
    "nix-env": "is not read-only, even with --list-generations: it takes the profile's "
               "lock, creating PROFILE.lock beside the profile and deleting it (one already "
               "there is deleted, or waited on until killed), and as root it writes Nix's "
               "database and directories. The generations are the profile's links: "
               "ls -l --time-style=full-iso /nix/var/nix/profiles",
}


def never_reason(program: str) -> str | None:
    if program in NEVER:
        return NEVER[program]
    return next((why for prefix, why in _NEVER_PREFIXES.items() if program.startswith(prefix)),
                None)


def check_read_only(program: str, args: list[str]) -> Decision:
    if program in CUSTOM:
        CUSTOM[program](args)
        return Decision(True, f"{program} is read-only with these arguments")
    if program in NOT_READ_ONLY:
        raise Refused(f"{program} {NOT_READ_ONLY[program]}")
    spec = READ_ONLY.get(program)
    if spec is None:
        allowed = ", ".join(sorted({*READ_ONLY, *CUSTOM}))
        why = never_reason(program)
        raise Refused(f"{program!r} is not on the read-only allow-list"
                       + (f": {program} {why}" if why else f" ({allowed})"))
    parsed = parse_args(program, spec, args, "while investigating")
    operands, sub = parsed.operands, None
    if spec.subcommands is not None:
        if operands:
            sub, operands = operands[0], operands[1:]
        elif spec.default_subcommand is not None:
            sub = spec.default_subcommand
        else:
            raise Refused(f"{program} needs one of: {', '.join(sorted(spec.subcommands))}")
        if sub in spec.refused_subcommands:
            raise Refused(f"{program} {sub} {spec.refused_subcommands[sub]}")
        if sub not in spec.subcommands:
            raise Refused(f"{program} {redact_cut(sub, 40)} is not read-only; allowed while "
                           f"investigating: {', '.join(sorted(spec.subcommands))}")
    for needed, subs in spec.required.items():
        if (subs is None or sub in subs) and not parsed.has(needed):
            raise Refused(f"{program} needs {needed} here")
    validator, most = spec.sub_operands.get(sub or "", (spec.operand, spec.max_operands))
    if len(operands) > most:
        where = f"{program} {sub}" if sub in spec.sub_operands else program
        raise Refused(f"too many operands for {where} ({most} at most)")
    for operand in operands:
        if (problem := check_value(validator, operand)) is not None:
            raise Refused(f"{program} operand {redact_cut(operand, 40)!r} {problem}")
    if spec.extra is not None and (why := spec.extra(parsed)) is not None:
        raise Refused(why)
    return Decision(True, f"{program} is read-only with these arguments")


