"""The read-only allow-list: which programs, subcommands and options may run while
investigating. Deny by default; every refusal says why. Pure code, no I/O."""

from __future__ import annotations

from collections.abc import Callable

from .argv_parser import (
    BOOT_ID,
    LINE_COUNT,
    OPTIONAL,
    Decision,
    Refused,
    Spec,
    absolute_path,
    any_value,
    charset,
    deny,
    flags,
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

REDIRECT = deny("-H --host -M --machine --root --image --image-policy -D --directory --file "
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
        opt("-t --type", value=word_list), opt("--state", value=word_list),
        opt("-p --property", value=property_list), opt("-P", value=property_list),
        opt("-n --lines", value=number_value), opt("-o --output", value=word_list),
        opt("--legend", OPTIONAL, word_list), opt("--timestamp", value=word_list)),
    denied={**{k: v for k, v in REDIRECT.items() if k not in ("-D", "--directory", "--file",
                                                               "-i", "--namespace")},
            **deny("--runtime --force -f --now -i --ignore-inhibitors --kill-whom --kill-value "
                   "--signal -s --job-mode --no-block --wait --what --preset-mode "
                   "--firmware-setup --boot-loader-menu --boot-loader-entry --reboot-argument "
                   "--check-inhibitors --dry-run --drop-in --when --mkdir --read-only --marked "
                   "--message --global", _NOT_READ_ONLY)},
    subcommands=frozenset(_PAGING_VERBS | {"is-active", "is-enabled", "is-failed",
                                           "is-system-running", "get-default"}),
    operand=unit_or_pid,
    required={"--no-pager": _PAGING_VERBS},
)

JOURNALCTL = Spec(
    options=flags("--no-pager, --list-boots, -k --dmesg, -x --catalog, -r --reverse, -a --all, "
                  "-l --full, --no-full, -q --quiet, --no-hostname, --utc, -m --merge, "
                  "--system, --user, -N --fields, --disk-usage, --header, --show-cursor, "
                  "--no-tail, --truncate-newline") + (
        opt("-u --unit", value=unit_pattern), opt("--user-unit", value=unit_pattern),
        opt("-t --identifier", value=user_name), opt("-T --exclude-identifier", value=user_name),
        opt("-p --priority", value=priority_value), opt("--facility", value=word_list),
        opt("-g --grep", value=any_value), opt("--case-sensitive", OPTIONAL, word_list),
        opt("-S --since", value=time_value), opt("-U --until", value=time_value),
        opt("-n --lines", OPTIONAL, charset(LINE_COUNT.pattern, "is not a number"), LINE_COUNT),
        opt("-b --boot", OPTIONAL, charset(BOOT_ID.pattern, "is not a boot"), BOOT_ID),
        opt("-o --output", value=word_list), opt("--output-fields", value=property_list),
        opt("-F --field", value=property_list), opt("-c --cursor", value=plain_value),
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
            **deny("-e --pager-end", "is for a pager, and pagers are not allowed"),
            **deny("--verify", "reads every journal file; not for investigating")},
    operand=journal_operand,
    max_operands=8,
    required={"--no-pager": None},
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
        operand=charset(r"[A-Za-z0-9:._()=<>!\-/% *\[\]]+", "is not a socket filter")),
    "hostnamectl": Spec(flags("--no-pager, --static, --transient, --pretty") + (
        opt("--json", value=word_list),), denied=REDIRECT,
        subcommands=frozenset({"status"}), max_operands=0),
    "timedatectl": Spec(flags("--no-pager, -a --all, --value") + (
        opt("-p --property", value=property_list),),
        denied={**REDIRECT, **deny("--monitor", "never ends: it follows changes"),
                **deny("--adjust-system-clock", "only matters when setting the clock")},
        subcommands=frozenset({"status", "show", "timesync-status", "show-timesync"}),
        max_operands=0),
    "systemd-analyze": Spec(flags("--no-pager, --system") + (opt("--fuzz", value=time_value),),
                            denied=REDIRECT,
                            subcommands=frozenset({"blame", "critical-chain", "time"}),
                            operand=unit_pattern, max_operands=4),
    "loginctl": Spec(flags("--no-pager, --no-legend, -a --all, --value, -l --full") + (
        opt("-p --property", value=property_list),),
        denied={**REDIRECT, **deny("-s --signal --kill-whom", _NOT_READ_ONLY)},
        subcommands=frozenset({"list-sessions", "list-users", "list-seats", "show-session",
                               "show-user", "session-status", "user-status"}),
        max_operands=4),
    "nixos-version": Spec(flags("--hash, --revision, --json, --configuration-revision"),
                          max_operands=0),
    "nix-env": Spec(flags("--list-generations") + (opt("-p --profile", value=absolute_path),),
                    required={"--list-generations": None}, max_operands=0),
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
                   max_operands=8),
    "stat": Spec(flags("-L --dereference, -f --file-system, -t --terse") + (
        opt("-c --format", value=any_value), opt("--printf", value=any_value),
        opt("--cached", value=word_list)), operand=absolute_path, max_operands=8),
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
    check = output_columns if name in ("-o", "-O", "o", "O", "--format") else charset(
        r"[+-]?[A-Za-z0-9_,.:=%+\-]+", "has characters that are not allowed")
    if (problem := check(value)) is not None:
        raise Refused(f"ps {name} {value[:40]!r} {problem}")


def _check_ps(args: list[str]) -> None:
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
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
        unix = arg.startswith("-")
        letters = arg[1:] if unix else arg
        for j, char in enumerate(letters):
            if not unix and char == "e":
                raise Refused("ps with the BSD 'e' option prints process environments "
                               "(secrets)")
            if char in (_PS_FLAGS if unix else _PS_BSD):
                continue
            if char in (_PS_VALUED if unix else "oO"):
                value = letters[j + 1:]
                if not value:
                    if i >= len(args):
                        raise Refused(f"ps {char} needs a value")
                    value, i = args[i], i + 1
                _ps_value(f"-{char}" if unix else char, value)
                break
            raise Refused(f"ps {'-' if unix else ''}{char} (in {arg}) is not allowed while "
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
                raise Refused(f"ip {args[i]} is {full}, which {why}")
        if token not in _IP_ALLOWED:
            raise Refused(f"ip {args[i]} is not allowed while investigating")
        i += 1
    operands = args[i:]
    if not operands or operands[0] not in _IP_OBJECTS:
        raise Refused(f"ip needs one of: {', '.join(sorted(_IP_OBJECTS))}"
                       + (f" (not {operands[0]!r})" if operands else ""))
    if len(operands) >= 2 and operands[1] not in _IP_ACTIONS:
        raise Refused(f"ip {operands[0]} {operands[1]} changes the network; only "
                       "show/list/get (written in full)")
    if len(operands) > 8:
        raise Refused("too many operands for ip")
    for operand in operands:
        if operand.startswith("-") or plain_value(operand):
            raise Refused(f"ip operand {operand[:40]!r} is not allowed")


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
        if (problem := absolute_path(args[i])) is not None:
            raise Refused(f"find starting point {args[i][:40]!r} {problem}")
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
            raise Refused(f"find {token[:40]} is not allowed while investigating")
        if i >= len(args):
            raise Refused(f"find {token} needs a value")
        value, i = args[i], i + 1
        check = absolute_path if token.endswith(("newer", "samefile")) else any_value
        if (problem := check(value)) is not None:
            raise Refused(f"find {token} {value[:40]!r} {problem}")


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


def never_reason(program: str) -> str | None:
    if program in NEVER:
        return NEVER[program]
    return next((why for prefix, why in _NEVER_PREFIXES.items() if program.startswith(prefix)),
                None)


def check_read_only(program: str, args: list[str]) -> Decision:
    if program in CUSTOM:
        CUSTOM[program](args)
        return Decision(True, f"{program} is read-only with these arguments")
    spec = READ_ONLY.get(program)
    if spec is None:
        allowed = ", ".join(sorted({*READ_ONLY, *CUSTOM}))
        why = never_reason(program)
        raise Refused(f"{program!r} is not on the read-only allow-list"
                       + (f": {program} {why}" if why else f" ({allowed})"))
    parsed = parse_args(program, spec, args, "while investigating")
    operands, sub = parsed.operands, None
    if spec.subcommands is not None:
        if not operands:
            raise Refused(f"{program} needs one of: {', '.join(sorted(spec.subcommands))}")
        sub, operands = operands[0], operands[1:]
        if sub in spec.refused_subcommands:
            raise Refused(f"{program} {sub} {spec.refused_subcommands[sub]}")
        if sub not in spec.subcommands:
            raise Refused(f"{program} {sub} is not read-only; allowed while investigating: "
                           f"{', '.join(sorted(spec.subcommands))}")
    for needed, subs in spec.required.items():
        if (subs is None or sub in subs) and not parsed.has(needed):
            raise Refused(f"{program} needs {needed} here")
    if len(operands) > spec.max_operands:
        raise Refused(f"too many operands for {program} ({spec.max_operands} at most)")
    for operand in operands:
        if (problem := spec.operand(operand)) is not None:
            raise Refused(f"{program} operand {operand[:40]!r} {problem}")
    if spec.extra is not None and (why := spec.extra(parsed)) is not None:
        raise Refused(why)
    return Decision(True, f"{program} is read-only with these arguments")


