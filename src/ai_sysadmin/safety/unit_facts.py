"""What systemd says a unit does, and what that means for starting it (pure).

A name says little: ``systemd-reboot.service`` reboots because its ``SuccessAction`` is
``reboot-force``, ``dbus-org.freedesktop.login1.service`` is logind under another name, and a unit
called ``cleanup.service`` may ``Requires=poweroff.target``. So before a unit is started,
restarted, stopped or reset, the executor reads its properties on the host
(``systemctl show -p`` :data:`SHOW_PROPERTIES`, and the same for the units a timer, path or socket
triggers), :func:`parse_show` turns them into :class:`UnitFacts`, and :func:`judge_unit` says
whether automation may touch it, needs a person, or must never run it.

systemd carries a stop or restart on to other units (``Requires=``, ``BindsTo=``, ``PartOf=``
and ``Conflicts=`` on *them*, ``PropagatesStopTo=`` here), and a start to what the unit pulls
in (its own ``Requires=``, ``Wants=``, ``BindsTo=``, ``Upholds=``) where that does not run yet,
and the unit's end starts what its ``OnSuccess=`` or ``OnFailure=`` names, so the executor
also reads every unit :func:`propagation_names` names, and each is judged as if it were itself
stopped, restarted or started. A kill of a unit's process is judged as a stop of that unit.

The only names here are systemd's own special units (``man systemd.special``), which are
interfaces, not guesses, plus a short list of well-known update and remote-access units that
carry no property saying so (``nixos-upgrade``, ``tailscaled``): a miss there still meets the
rule that closes the whole class, that an automatic start touches only the incident's unit.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..redact import redact_cut
from .protected import protected_reason
from .units import unit_problem

SHOW_PROPERTIES: tuple[str, ...] = (
    "Id", "Names", "LoadState", "ActiveState", "SuccessAction", "FailureAction",
    "JobTimeoutAction", "JobRunningTimeoutAction", "StartLimitAction", "RefuseManualStart",
    "RefuseManualStop", "DefaultDependencies", "Requires", "Requisite", "Wants", "BindsTo",
    "Upholds", "PartOf", "Conflicts", "Before", "After", "WantedBy", "RequiredBy", "OnSuccess",
    "OnFailure", "Triggers", "ExecCondition", "ExecStartPre", "ExecStart", "ExecStartPost",
    "ExecStop", "ExecStopPost", "ExecReload", "ControlGroup", "RequisiteOf", "BoundBy",
    "ConsistsOf", "ConflictedBy", "PropagatesStopTo", "PropagatesReloadTo", "UpheldBy",
    "UnitFileState", "Type", "RemainAfterExit", "Restart", "Result", "NRestarts",
    "ActiveEnterTimestampMonotonic", "TriggeredBy",
)
#: what a unit's last run left: read before and after a fix that runs a oneshot job
RUN_PROPERTIES: tuple[str, ...] = (
    "Id", "ActiveState", "SubState", "Result", "ExecMainStatus", "InvocationID",
    "ExecMainStartTimestampMonotonic",
)
_LISTS = frozenset({"Names", "Requires", "Requisite", "Wants", "BindsTo", "Upholds", "PartOf",
                    "Conflicts", "Before", "After", "WantedBy", "RequiredBy", "OnSuccess",
                    "OnFailure", "Triggers", "RequisiteOf", "BoundBy", "ConsistsOf",
                    "ConflictedBy", "PropagatesStopTo", "PropagatesReloadTo", "UpheldBy",
                    "TriggeredBy"})
_EXEC = ("ExecCondition", "ExecStartPre", "ExecStart", "ExecStartPost", "ExecStop",
         "ExecStopPost", "ExecReload")
_STOP_EXEC = frozenset({"ExecStop", "ExecStopPost"})

#: systemd.unit(5) and src/core/unit-dependency-atom.c: the other units an explicit stop or
#: restart of this one reaches, named by this unit's own (reverse) properties. Requires=,
#: Requisite=, BindsTo= and PartOf= on *them* show up here as RequiredBy, RequisiteOf,
#: BoundBy and ConsistsOf; those are restarted with it (try-restart) and stopped with it.
RESTART_PROPAGATES = ("RequiredBy", "RequisiteOf", "BoundBy", "ConsistsOf")
#: stopped with this unit, never restarted with it (PropagatesStopTo=)
STOP_PROPAGATES = (*RESTART_PROPAGATES, "PropagatesStopTo")
#: stopped when this unit starts: its own Conflicts= and the Conflicts= of others on it
START_STOPS = ("Conflicts", "ConflictedBy")
#: started with this unit where they do not run yet (systemd.unit(5)): each is judged as if it
#: were started itself, so that what its start does (stop a protected unit, reboot) is not
#: done by way of another unit's automatic restart
PULLS_IN = ("Requires", "Wants", "BindsTo", "Upholds")
#: started by systemd when this unit ends (systemd.unit(5)): OnSuccess= once it goes inactive
#: after running (a clean stop too), OnFailure= once it fails (a killed process, a failed
#: start). A start, restart, stop or kill of it can end there, so each is judged as if it were
#: started itself: systemd-reboot.service reboots by its SuccessAction, not by a name
ON_END_STARTS = ("OnSuccess", "OnFailure")
#: states in which a start job has nothing left to do (nor do the units the unit pulls in)
RUNNING_STATES = frozenset({"active", "activating", "reloading", "refreshing"})
RELOAD_PROPAGATES = ("PropagatesReloadTo",)
#: restart-like verbs: a stop and a start in one job
_RESTARTING_VERBS = frozenset({"restart", "try-restart", "reload-or-restart",
                               "try-reload-or-restart"})
_ACTIONS = ("SuccessAction", "FailureAction", "JobTimeoutAction", "JobRunningTimeoutAction",
            "StartLimitAction")

#: systemd.special(7): reaching one of these powers off, reboots, suspends or leaves the
#: normal system state
SYSTEM_STATE_TARGETS = frozenset(f"{t}.target" for t in (
    "shutdown", "final", "reboot", "poweroff", "halt", "kexec", "soft-reboot", "exit", "umount",
    "sleep", "suspend", "hibernate", "hybrid-sleep", "suspend-then-hibernate", "emergency",
    "rescue", "ctrl-alt-del", "factory-reset", "initrd-switch-root", "system-update",
    "system-update-pre"))
#: systemd.special(7): units ordered before these, or pulled in by them, bring the network up
NETWORK_TARGETS = frozenset({"network.target", "network-pre.target", "network-online.target"})
UPDATE_TARGETS = frozenset({"system-update.target", "system-update-pre.target"})
_NET_DEVICE = re.compile(r"^sys-subsystem-net-devices-.+\.device$")

#: programs whose run installs software: starting a unit that runs one is update_packages
UPDATE_PROGRAMS = frozenset({
    "apt", "apt-get", "aptitude", "unattended-upgrade", "unattended-upgrades",
    "apt.systemd.daily", "dnf", "dnf-automatic", "dnf5", "yum", "yum-cron", "microdnf",
    "zypper", "pacman", "pamac", "nixos-rebuild", "nixos-upgrade", "nixos-upgrade-start",
    "nix-channel", "systemd-sysupdate", "pkcon", "pk-offline-update", "rpm-ostree", "bootc",
    "apk", "emerge", "xbps-install", "swupd", "eopkg", "fwupdmgr", "fwupdtool", "snap",
    "flatpak", "softwareupdate",
})
#: well-known units that install updates without a property saying so (globs on the Id)
UPDATE_UNITS = ("nixos-upgrade.*", "apt-daily-upgrade.*", "apt-daily.*", "dnf-automatic*",
                "dnf5-automatic*", "packagekit-offline-update.*", "systemd-sysupdate*",
                "unattended-upgrades.*", "yum-cron.*", "rpm-ostreed-automatic.*",
                "fwupd-offline-update.*", "fwupd-refresh.*", "snapd.autorefresh.*",
                "pamac-*", "zypper-*", "auto-upgrade*", "nixos-rebuild*")
#: units that carry the way in to a host, beyond those ordered before the network targets
WAY_IN_UNITS = ("dhcpcd*", "dhclient*", "network-addresses-*", "network-setup.*",
                "network-link-*", "network-local-commands.*", "networking.*",
                "wpa_supplicant*", "iwd.*", "NetworkManager*", "systemd-networkd*",
                "connman*", "netplan*", "ifup@*", "tailscaled.*", "tailscale*", "wg-quick@*",
                "wireguard-*", "openvpn*", "zerotier-one.*", "nebula*", "tinc*",
                "strongswan*", "ipsec.*", "dropbear*", "sshd*", "ssh.*", "ssh@*",
                "cloudflared*", "headscale*", "netbird*", "yggdrasil*")

#: systemctl verbs that ask systemd to start the unit (and what it pulls in)
STARTING_VERBS = frozenset({"start", "restart", "try-restart", "reload-or-restart",
                            "try-reload-or-restart", "reload"})
#: systemctl verbs that take the unit away
STOPPING_VERBS = frozenset({"stop", "disable", "mask", "kill", "freeze"})

_POWER_PROGRAMS = frozenset({"reboot", "poweroff", "halt", "shutdown", "kexec", "telinit",
                             "init"})
_POWER_VERBS = frozenset({"reboot", "poweroff", "halt", "kexec", "suspend", "hibernate",
                          "hybrid-sleep", "suspend-then-hibernate", "soft-reboot", "isolate",
                          "emergency", "rescue", "default", "exit", "switch-root"})
_ARGV_IN_SHOW = re.compile(r"argv\[\]=(.*?) ;", re.DOTALL)
#: shells that run the script given with -c
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "fish",
                     "csh", "tcsh", "yash", "posh", "lksh", "oksh", "loksh"})
#: the flag that gives a shell its script, alone or among others (-c, -ec, -xec, -euc)
_SCRIPT_FLAG = re.compile(r"[-+][A-Za-z]*c[A-Za-z]*")
#: interpreters given their program on the command line, by the flag that gives it
#: (``python3 -c``, ``perl -ne``, ``ruby -e``, ``node --eval``, ``php -r``, ``lua -e``); awk's
#: program is its first word that is no option: every word after awk counts (None)
_INLINE_CODE: tuple[tuple[re.Pattern[str], re.Pattern[str] | None], ...] = (
    (re.compile(r"(python|pypy)[0-9.]*"), re.compile(r"-[A-Za-z]*c")),
    (re.compile(r"perl[0-9.]*"), re.compile(r"-[A-Za-z]*[eE][A-Za-z]*")),
    (re.compile(r"ruby[0-9.]*"), re.compile(r"-[A-Za-z]*e")),
    (re.compile(r"node(js)?[0-9.]*"), re.compile(r"-e|--eval|-p|--print")),
    (re.compile(r"php[0-9.]*"), re.compile(r"-r")),
    (re.compile(r"lua(jit)?[0-9.]*"), re.compile(r"-e")),
    (re.compile(r"[gmn]?awk"), None),
)
#: what ends one command of a script and starts the next (;, &&, ||, |, $(...), backquotes)
_COMMAND_BREAK = re.compile(r"[;&|()`\n]")
#: what separates the words of a command: quotes, braces, redirections, and $ and backslash,
#: so that "$(reboot)" or \reboot reads as reboot; commas and brackets, so that another
#: language's ['systemctl', 'poweroff'] reads as its two words
_WORD_BREAK = re.compile(r"[\s'\"{}<>$\\,\[\]]+")
#: systemctl verbs that are no everyday shell words, judged anywhere later in a script
_SCRIPT_POWER_VERBS = _POWER_VERBS - {"exit", "default", "emergency", "rescue"}


@dataclass(frozen=True)
class UnitFacts:
    """One unit as ``systemctl show`` reports it on the host."""

    id: str
    names: tuple[str, ...] = ()
    properties: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: the commands the unit runs, each an argv (ExecStart and friends)
    commands: tuple[tuple[str, ...], ...] = ()
    #: the commands a stop runs (ExecStop, ExecStopPost), also in ``commands``
    stop_commands: tuple[tuple[str, ...], ...] = ()

    def get(self, name: str) -> str:
        values = self.properties.get(name, ())
        return values[0] if values else ""

    def all(self, *names: str) -> tuple[str, ...]:
        return tuple(v for n in names for v in self.properties.get(n, ()))

    @property
    def every_name(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.id, *self.names)))


_PROPERTY_NAME = re.compile(r"[A-Z][A-Za-z0-9]*")


class ShowOutputError(ValueError):
    """``systemctl show`` printed what cannot be read as one block of properties per unit."""


def parse_show(text: str, expected: int | None = None,
               properties: Collection[str] = SHOW_PROPERTIES) -> list[UnitFacts]:
    """``systemctl show -p ... -- A B`` output: one block per unit, blank lines between.

    systemd 252 prints an ``Exec*`` argument as it is, newlines included, so a unit whose
    command holds ``"\\n\\nId=sshd.service\\nSuccessAction=none"`` prints lines that read as
    another unit's or as its own properties. Such output is refused (:class:`ShowOutputError`)
    rather than guessed at: every line must be a property (``Name=value``), every ``Exec*``
    value a whole ``{ ... }``, every other property asked for there once per block, and
    (``expected``) one block per unit asked. A forged line then either repeats a property
    systemd printed too, leaves a fragment of a command, or adds a block."""
    blocks = [b for b in re.split(r"\n[ \t]*\n", text.strip()) if b.strip()]
    if expected is not None and len(blocks) != expected:
        raise ShowOutputError(f"{len(blocks)} blocks of properties for {expected} unit(s)")
    return [_parse_block(block, frozenset(properties)) for block in blocks]


def _parse_block(block: str, properties: frozenset[str]) -> UnitFacts:
    props: dict[str, list[str]] = {}
    commands: list[tuple[str, ...]] = []
    stop_commands: list[tuple[str, ...]] = []
    for line in block.splitlines():
        key, eq, value = line.partition("=")
        if not eq or not _PROPERTY_NAME.fullmatch(key):
            raise ShowOutputError(f"a line that is no property ({redact_cut(key, 40)!r})")
        if key not in properties:
            continue  # not asked for, so not judged: nothing a forged one could change
        if key in _EXEC:
            if not (value.startswith("{ path=") and value.endswith(" }")):
                raise ShowOutputError(f"{key} with a value that is not one whole command")
            # `{ path=/usr/bin/x ; argv[]=/usr/bin/x --flag ; ignore_errors=no ; ... }`
            found = [tuple(m.split()) for m in _ARGV_IN_SHOW.findall(value) if m]
            commands += found
            stop_commands += found if key in _STOP_EXEC else []
            continue
        if key in props:
            raise ShowOutputError(f"{key} twice for one unit")
        props[key] = value.split() if key in _LISTS else [value] if value else []
    unit_id = (props.get("Id") or [""])[0]
    if not unit_id:
        raise ShowOutputError("a block of properties without an Id")
    return UnitFacts(unit_id, tuple(props.get("Names", ())),
                     {k: tuple(v) for k, v in props.items()}, tuple(commands),
                     tuple(stop_commands))


#: what a unit is judged by apart from its command lines: unit names, enums and paths, none of
#: which systemd prints with a line break in it
PLAIN_PROPERTIES: tuple[str, ...] = tuple(p for p in SHOW_PROPERTIES if p not in _EXEC)
#: the command lines, read on their own (:func:`parse_commands`)
COMMAND_PROPERTIES: tuple[str, ...] = ("Id", *_EXEC)
#: one command as systemd 252 prints it, its argv up to the ending systemd writes after it
_COMMAND_LINE = re.compile(
    r"Id=\S+|(?P<key>Exec[A-Za-z]+)=(?:\{ path=(?P<path>\S*) ; argv\[\]=(?P<argv>.*) ; "
    r"ignore_errors=(?:yes|no) ; start_time=\[[^]]*\] ; stop_time=\[[^]]*\] ; "
    r"pid=[0-9]+ ; code=\S+ ; status=\S+ \})?")
_PATH_IN_SHOW = re.compile(r"path=(\S+)")
#: the words of systemctl's own layout around the arguments
_SHOW_SYNTAX = re.compile(r"[;{}]|(?:path|argv\[\]|ignore_errors|start_time|stop_time|pid|code|"
                          r"status|Id|Exec[A-Za-z]+)=\S*")


def parse_commands(text: str, ids: Sequence[str]) -> list[tuple[tuple[tuple[str, ...], ...],
                                                                  tuple[tuple[str, ...], ...]]]:
    """``systemctl show -p`` :data:`COMMAND_PROPERTIES` output for the units ``ids`` (as the
    plain properties' read named them, in order): each unit's commands and stop commands.

    An argument with a line break prints lines that read as properties or as another unit's
    block, so such output is not guessed at: where every block is one of the units asked, in
    order, and each line one whole command, each unit has its own (each argv whole, up to
    systemd's fixed ending, however many `` ; `` an argument holds). Otherwise every program
    the output names is judged as every unit's, at a start and at a stop, with every word of
    the output as its arguments: a forged line then only adds to what is judged, never hides
    a ``reboot``, and a unit whose command holds a line break (a ``python3 -c`` script) is
    judged by its programs rather than left to a person."""
    blocks = [b for b in re.split(r"\n[ \t]*\n", text.strip()) if b.strip()]
    if len(blocks) == len(ids) and all(
            [line for line in block.splitlines() if line.startswith("Id=")] == [f"Id={unit}"]
            and all(_COMMAND_LINE.fullmatch(line) for line in block.splitlines())
            for block, unit in zip(blocks, ids, strict=True)):
        return [_commands_of(block) for block in blocks]
    words = tuple(w for w in text.split() if not _SHOW_SYNTAX.fullmatch(w))
    every = tuple((program, *words) for program in dict.fromkeys(_PATH_IN_SHOW.findall(text)))
    return [(every, every) for _ in ids]


def _commands_of(block: str) -> tuple[tuple[tuple[str, ...], ...], tuple[tuple[str, ...], ...]]:
    commands: list[tuple[str, ...]] = []
    stops: list[tuple[str, ...]] = []
    for line in block.splitlines():
        if (command := _COMMAND_LINE.fullmatch(line)) is None or not command["argv"]:
            continue
        argv = tuple(command["argv"].split())
        if command["path"]:
            # what runs is path=: argv[0] is only the name it is given, another one where
            # the command's "@" prefix says so (@/bin/sh stopper -c "systemctl poweroff")
            argv = (command["path"], *argv[1:])
        commands.append(argv)
        stops += [argv] if command["key"] in _STOP_EXEC else []
    return tuple(commands), tuple(stops)


class UnitFileError(ValueError):
    """A unit file's text names what cannot be told for sure."""


#: a line that systemd continues in the next: it ends in a backslash that is not escaped
_CONTINUED = re.compile(r"(?<!\\)(?:\\\\)*\\$")
_COMMENT = ("#", ";")


def install_also(text: str) -> tuple[str, ...]:
    """The units ``systemctl disable U`` disables with U, by the ``Also=`` lines in
    ``systemctl cat -- U`` output (the unit file and its drop-ins: systemd follows both);
    ``systemctl show`` does not report them.

    The text is the host's, so it is read as systemd reads it and more: a line ending in a
    backslash goes on in the next (comment lines between are skipped), and each line is
    also read on its own; an ``Also=`` counts in any section, and no ``# /path`` line that
    names a file (which the file itself can hold) ends one. Where systemd and this reading
    could differ, this one names more, never fewer. A name given with a specifier
    (``%i``), or that is no valid unit name, cannot be told: :class:`UnitFileError`."""
    lines = [line.strip() for line in text.splitlines()]
    logical: list[str] = []
    going: str | None = None
    for line in lines:
        if going is not None and line.startswith(_COMMENT):
            continue
        joined = line if going is None else f"{going} {line}"
        going = joined[:-1] if _CONTINUED.search(joined) else None
        if going is None:
            logical.append(joined)
    if going is not None:
        logical.append(going)
    named: dict[str, None] = {}
    for line in (*logical, *(line.removesuffix("\\") for line in lines)):
        key, eq, value = line.partition("=")
        if not eq or key.strip() != "Also" or line.startswith(_COMMENT):
            continue
        for word in value.split():
            if "%" in word or (problem := unit_problem(word)) is not None:
                why = "a specifier" if "%" in word else problem
                raise UnitFileError(f"Also= names {redact_cut(word, 60)!r} ({why})")
            named[word] = None
    return tuple(named)


@dataclass(frozen=True)
class Verdict:
    """``refused``: never by automation, at any level. ``person``: allowed, but only a person
    decides (high risk). Both empty: nothing against it."""

    refused: str | None = None
    person: tuple[str, ...] = ()
    #: refused by the unit's name alone: no fact the host gives later lifts it
    firm: bool = False


def _matches(names: Iterable[str], globs: Iterable[str]) -> str | None:
    return next((n for n in names for g in globs if fnmatch.fnmatchcase(n, g)), None)


def _power_program(argv: Sequence[str]) -> bool:
    program = posixpath.basename(argv[0].lstrip("@!+-:|"))
    if program in _POWER_PROGRAMS and (program != "init" or tuple(argv[1:2]) in (("0",),
                                                                                  ("6",))):
        return True
    return program in ("systemctl", "loginctl") and bool(_POWER_VERBS & set(argv[1:]))


def _code_flag(program: str) -> tuple[bool, re.Pattern[str] | None]:
    """Whether ``program`` runs code given on its command line, and the flag that gives it
    (None: every word after the program)."""
    if program in _SHELLS:
        return True, _SCRIPT_FLAG
    return next(((True, flag) for name, flag in _INLINE_CODE if name.fullmatch(program)),
                (False, None))


def shell_script(argv: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """The commands of the script a shell in ``argv`` is given with ``-c`` (``sh -c``,
    ``bash -ec``, ``/usr/bin/env sh -c``, ``nice sh -c``), or the program an interpreter is
    given on the command line (a unit's ``python3 -c`` program that calls reboot, ``perl -e``,
    awk's: text a host holds, judged here, never run),
    each as its words; empty when none is. systemctl show prints an argv without its quotes,
    so where the script ends is unknown: every word after the flag counts as the script's (an
    option's value after it, ``-o errexit``, only adds a word to judge). Another language's
    code is split as sh's: ``system("reboot")`` and ``["systemctl", "poweroff"]`` read as
    the words reboot, systemctl and poweroff."""
    for at, word in enumerate(argv):
        runs_code, flag = _code_flag(posixpath.basename(word.lstrip("@!+-:|")))
        if not runs_code:
            continue
        start = at + 1 if flag is None else _code_start(argv, at + 1, flag)
        if start is not None:
            parts = _COMMAND_BREAK.split(" ".join(argv[start:]))
            return tuple(words for part in parts
                         if (words := tuple(w for w in _WORD_BREAK.split(part) if w)))
    return ()


def _code_start(argv: Sequence[str], after: int, flag: re.Pattern[str]) -> int | None:
    """Where the code an interpreter is given on the command line starts: the word after its
    ``flag``. None where the word right after the interpreter is no option: that is a script
    file it runs (``python3 app.py -c app.conf``), whose own arguments the rest are. After an
    option, the next word may be its value (``sh -o errexit -c``): the flag is looked for
    further."""
    if after < len(argv) and not argv[after].startswith(("-", "+")):
        return None
    return next((i + 1 for i in range(after, len(argv)) if flag.fullmatch(argv[i])), None)


def _script_power(commands: tuple[tuple[str, ...], ...]) -> str | None:
    """The words of a script that power off, reboot or leave the normal system state: each
    word judged as a program with the words after it in its command as arguments, and a
    systemctl or loginctl also with every later word of the script, since a quoted ';' is an
    argument that the printed argv no longer tells from a separator. Only the verbs that are
    also everyday shell words (exit, default ...) must be in the same command."""
    later = [w for command in commands for w in command]
    for command in commands:
        for at in range(len(command)):
            later.pop(0)
            if _power_program(command[at:]):
                return " ".join(command[at:at + 3])
            if posixpath.basename(command[at]) in ("systemctl", "loginctl") and (
                    verbs := _SCRIPT_POWER_VERBS & set(later)):
                return f"{command[at]} ... {min(verbs)}"
    return None


def _power_command(argv: tuple[str, ...]) -> str | None:
    """The command, shown, when it (or a shell script it runs) powers off, reboots or leaves
    the normal system state: what runs is judged, however the script is quoted."""
    if _power_program(argv):
        return redact_cut(" ".join(argv), 80)
    if runs := _script_power(shell_script(argv)):
        return f"{redact_cut(' '.join(argv), 60)} (its script runs {runs})"
    return None


def _update_program(argv: tuple[str, ...]) -> str | None:
    """The program in ``argv`` that installs software: its own program, one a wrapper runs
    (``/usr/bin/env apt-get``), or one a shell script runs (``sh -c 'apt-get -y upgrade'``),
    every word judged as systemctl show prints it, quotes gone."""
    script = shell_script(argv)
    heads = (argv[0], *(command[0] for command in script))
    for word in (*heads, *argv[1:], *(w for command in script for w in command)):
        program = posixpath.basename(word.lstrip("@!+-:|"))
        if program in UPDATE_PROGRAMS or (word in heads and any(
                p in program for p in ("upgrade", "sysupdate"))):
            return program
    return None


def _runs_updates(facts: UnitFacts) -> str | None:
    for argv in facts.commands:
        if program := _update_program(argv):
            return f"it runs {program}, which installs software"
    if hit := UPDATE_TARGETS & set(facts.all("Before", "WantedBy", "RequiredBy")):
        return f"it is part of an offline update ({sorted(hit)[0]})"
    if name := _matches(facts.every_name, UPDATE_UNITS):
        return f"{name} is a unit that installs updates"
    return None


def _way_in(facts: UnitFacts) -> str | None:
    if hit := NETWORK_TARGETS & set(facts.all("Before", "WantedBy", "RequiredBy", "PartOf")):
        return f"it brings the network up ({sorted(hit)[0]})"
    if dev := next((d for d in facts.all("BindsTo", "Requires", "After")
                    if _NET_DEVICE.match(d)), None):
        return f"it configures a network interface ({dev})"
    if name := _matches(facts.every_name, WAY_IN_UNITS):
        return f"{name} carries network or remote access to the host"
    return None


def _protected(facts: UnitFacts, protected: Iterable[str], own: Iterable[str]
               ) -> str | None:
    own_set = set(own)
    for name in facts.every_name:
        if name in own_set:
            return f"{name} is the assistant's own service"
        if why := protected_reason(name, protected):
            shown = name if name == facts.id else f"{name} (an alias of {facts.id})"
            return f"{shown} is protected: {why}"
    return None


def _start_refused(facts: UnitFacts, protected: tuple[str, ...], pulled: bool = False
                   ) -> str | None:
    """Why starting this unit is never automation's to do: it takes the host out of its
    normal state, or stops something that carries it. ``pulled``: started as another unit's
    dependency, which RefuseManualStart= does not refuse."""
    if facts.get("RefuseManualStart") == "yes" and not pulled:
        return f"{facts.id} refuses a manual start (RefuseManualStart=yes)"
    if (value := facts.get("SuccessAction")) not in ("", "none"):
        return f"starting {facts.id} ends in {value} (SuccessAction={value})"
    pulled = facts.all("Requires", "Requisite", "Wants", "BindsTo", "Upholds", "OnSuccess")
    if hit := sorted(SYSTEM_STATE_TARGETS & set(pulled)):
        return (f"starting {facts.id} pulls in {hit[0]}, which leaves the normal system "
                "state (shutdown, reboot, sleep or rescue)")
    for argv in facts.commands:
        if shown := _power_command(argv):
            return (f"{facts.id} runs {shown!r}, which powers off, reboots or leaves the "
                    "normal system state")
    for prop in START_STOPS:
        for other in facts.all(prop):
            # every unit with default dependencies conflicts with shutdown.target: harmless
            if other not in SYSTEM_STATE_TARGETS and (
                    other.endswith(".target") or protected_reason(other, protected)):
                return f"starting {facts.id} stops {other} ({prop}={other})"
    return None


def _start_consequences(facts: UnitFacts) -> list[str]:
    """What starting this unit may do that a person should weigh."""
    person = [f"starting it stops {other} ({prop}={other})"
              for prop in START_STOPS for other in facts.all(prop)
              if other not in SYSTEM_STATE_TARGETS]
    for prop in _ACTIONS[1:]:
        if (value := facts.get(prop)) not in ("", "none"):
            person.append(f"when it fails or times out the host does {value} ({prop})")
    if hit := sorted(SYSTEM_STATE_TARGETS & set(facts.all("OnFailure"))):
        person.append(f"when it fails it starts {hit[0]} (OnFailure)")
    if SYSTEM_STATE_TARGETS & set(facts.all("After")) or facts.get(
            "DefaultDependencies") == "no":
        person.append("it runs at early boot or at shutdown (DefaultDependencies=no or "
                      "ordered after shutdown)")
    if why := _runs_updates(facts):
        person.append(f"{why}: the same as update_packages")
    if why := _way_in(facts):
        person.append(f"{why}; restarting it can cut the way in")
    return person


def _not_the_incidents(facts: UnitFacts, incident_unit: str | None, verb: str = "start"
                       ) -> str | None:
    what = "reset-failed" if verb == "reset-failed" else "start or restart"
    if incident_unit is None:
        return (f"no incident names this unit: an automatic {what} touches only the unit an "
                "incident is about")
    if incident_unit not in facts.every_name:
        return (f"the incident is about {incident_unit}, not {facts.id}: an automatic {what} "
                "touches only that unit")
    return None


def _stop_refused(facts: UnitFacts) -> str | None:
    """Why stopping this unit, or killing a process of it, is never automation's to do: the
    unit's end takes the host out of its normal state, or systemd itself refuses the stop."""
    if facts.get("RefuseManualStop") == "yes":
        return f"{facts.id} refuses a manual stop (RefuseManualStop=yes)"
    # a clean stop is a success, a killed process often a failure: both end the unit
    for prop in ("SuccessAction", "FailureAction"):
        if (value := facts.get(prop)) not in ("", "none"):
            return f"when {facts.id} ends the host does {value} ({prop}={value})"
    if hit := sorted(SYSTEM_STATE_TARGETS & set(facts.all("OnSuccess", "OnFailure"))):
        return (f"when {facts.id} ends it starts {hit[0]}, which leaves the normal system "
                "state (OnSuccess/OnFailure)")
    for argv in facts.stop_commands:
        if shown := _power_command(argv):
            return (f"stopping {facts.id} runs {shown!r}, which powers off, reboots or leaves "
                    "the normal system state")
    return None


def _stop_consequences(facts: UnitFacts) -> list[str]:
    """What stopping this unit may do that a person should weigh."""
    person = [f"when stopping it times out the host does {value} ({prop})"
              for prop in ("JobTimeoutAction", "JobRunningTimeoutAction")
              if (value := facts.get(prop)) not in ("", "none")]
    if facts.get("DefaultDependencies") == "no":
        person.append("it is part of early boot or shutdown (DefaultDependencies=no)")
    if why := _runs_updates(facts):
        person.append(f"{why}: stopping it can break an installation half-way")
    if why := _way_in(facts):
        person.append(f"{why}; stopping it can cut the way in")
    return person


def _propagation(facts: UnitFacts, verb: str) -> list[tuple[str, str, str]]:
    """(other unit, the property naming it, what systemd does to it) for ``systemctl VERB``
    of this unit: restarts propagate as try-restart, stops as stop (unit-dependency-atom.c)."""
    reached: list[tuple[str, str, str]] = []
    if verb in STOPPING_VERBS:
        reached += [(o, p, "stop") for p in STOP_PROPAGATES for o in facts.all(p)]
    if verb in _RESTARTING_VERBS:
        reached += [(o, p, "try-restart") for p in RESTART_PROPAGATES for o in facts.all(p)]
        restarted = {o for o, _, _ in reached}
        reached += [(o, "PropagatesStopTo", "stop") for o in facts.all("PropagatesStopTo")
                    if o not in restarted]
    if verb in STARTING_VERBS and verb != "reload":
        reached += [(o, p, "stop") for p in START_STOPS for o in facts.all(p)
                    if o not in SYSTEM_STATE_TARGETS]
        reached += [(o, p, "start") for p in PULLS_IN for o in facts.all(p)]
    if verb in STARTING_VERBS | STOPPING_VERBS:
        # a system-state target there is judged by its name (_start_refused, _stop_refused)
        reached += [(o, p, "start") for p in ON_END_STARTS for o in facts.all(p)
                    if o not in SYSTEM_STATE_TARGETS]
    if verb in ("reload", "reload-or-restart", "try-reload-or-restart"):
        reached += [(o, p, "reload") for p in RELOAD_PROPAGATES for o in facts.all(p)]
    return reached


def propagation_names(facts: UnitFacts, requested: bool = False) -> tuple[str, ...]:
    """Every unit a start, restart, reload, stop or kill of this one may reach: what the
    executor reads next so that each is judged on its own facts. What a unit pulls in is
    followed from the unit asked for (``requested``) and from those that do not run yet: a
    start of a running one pulls in nothing more. What its end starts (OnSuccess=,
    OnFailure=) is followed always: a stop or kill of a running one ends it."""
    props = (*STOP_PROPAGATES, *START_STOPS, *RELOAD_PROPAGATES, *ON_END_STARTS, "Triggers")
    if requested or facts.get("ActiveState") not in RUNNING_STATES:
        props += PULLS_IN
    return tuple(dict.fromkeys(o for o in facts.all(*props) if o not in SYSTEM_STATE_TARGETS))


def _what_it_does(verb: str) -> str:
    return {"stop": "stops", "try-restart": "restarts", "reload": "reloads",
            "start": "starts"}[verb]


def _judge_reached(verb: str, facts: UnitFacts, name: str, prop: str, other_verb: str,
                   other: UnitFacts | None, seen: frozenset[str], *,
                   protected: tuple[str, ...], own: tuple[str, ...],
                   related: Mapping[str, UnitFacts]) -> Verdict:
    """The verdict on what ``systemctl VERB`` of ``facts`` does to one unit it reaches."""
    how = f"{verb} of {facts.id} {_what_it_does(other_verb)} {name} ({prop}={name})"
    if prop in ON_END_STARTS:
        ends = "fails" if prop == "OnFailure" else "ends"
        how = f"when {facts.id} {ends} after a {verb}, systemd starts {name} ({prop}={name})"
    if other is None:
        if other_verb == "stop" and (why := protected_reason(name, protected)):
            return Verdict(f"{how}: {name} is protected ({why}): never stopped by automation")
        return Verdict(None, (f"{how}, and what {name} is could not be read on the host",))
    if other_verb == "start" and (other.get("ActiveState") in RUNNING_STATES or other.get(
            "LoadState") in ("not-found", "masked")):
        return Verdict()  # it runs already, or there is nothing systemd could start
    # the unit reached is judged as if it were itself the one asked for; an incident about
    # the first unit does not make a restart of the second something to weigh again
    inner = judge_unit(other_verb, other, protected=protected, own=own,
                       incident_unit=other.id, related=related, _seen=seen,
                       _pulled=other_verb == "start")
    if inner.refused and prop == "OnFailure" and verb in STARTING_VERBS:
        # a start asked for is meant to succeed: what its failure would do is a person's to
        # weigh, as FailureAction= is (_start_consequences); a stop or kill ends it for sure
        return Verdict(None, (f"{how}: {inner.refused}",))
    if inner.refused:
        return Verdict(f"{how}: {inner.refused}")
    return Verdict(None, tuple(f"{how}: {p}" for p in inner.person))


def needed_running(facts: UnitFacts | None) -> str | None:
    """Why the host needs the unit running (or, a job a timer, path or socket starts, run
    again), from what systemd says of it; None where nothing does (a one-off job run by
    hand, a static unit nothing pulls in or triggers). A unit whose facts could not be read
    counts as needed: a fix must not pass for done on a guess."""
    if facts is None:
        return "what it is could not be read on the host"
    by = facts.all("WantedBy", "RequiredBy", "UpheldBy", "BoundBy")
    if by:
        return f"{facts.id} is wanted by {_some(by)}"
    # a timer's job, a path's or a socket's service: its trigger starts it again, and a
    # failed run is fixed only by one that succeeds. A socket starts an instance only per
    # connection (Accept=yes): that one ended with its connection, and a start has none
    if by := tuple(t for t in facts.all("TriggeredBy")
                   if "@" not in facts.id or not t.endswith(".socket")):
        return f"{facts.id} is started by {_some(by)}"
    # enabled through an Also= or an alias its WantedBy does not show yet (no daemon-reload)
    if (state := facts.get("UnitFileState")) in ("enabled", "enabled-runtime"):
        return f"{facts.id} is {state}"
    return kept_running(facts)


def _some(names: Sequence[str]) -> str:
    return f"{', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"


def kept_running(facts: UnitFacts) -> str | None:
    """Why systemd itself was keeping the unit running, where nothing wants it: it restarts
    it (Restart= not no) and it ran (was active, was restarted) or crash-looped into its
    start limit; None for a unit systemd leaves down once it ended."""
    restart = facts.get("Restart")
    if restart in ("", "no"):
        return None
    how = f"{facts.id} has Restart={restart}"
    if facts.get("Result") == "start-limit-hit":
        return f"{how} and hit its start limit restarting"
    if facts.get("NRestarts") not in ("", "0"):
        return f"{how} and was restarted {facts.get('NRestarts')} times"
    if facts.get("ActiveEnterTimestampMonotonic") not in ("", "0"):
        return f"{how} and was running"
    return None


def runs_to_an_end(facts: UnitFacts | None) -> bool:
    """A oneshot job without RemainAfterExit: inactive again once its run ended, so its
    success is that run's result, never 'active'."""
    return facts is not None and facts.get("Type") == "oneshot" \
        and facts.get("RemainAfterExit") != "yes"


def last_run(before: UnitFacts | None, now: UnitFacts, started: bool) -> tuple[bool, str]:
    """Whether a oneshot job ran after a fix and succeeded, from its facts before the fix
    and now, and in what words. ``started``: the fix was a start job that systemd answered
    done (``systemctl start`` of a oneshot returns once the run ended, and fails with it)."""
    unit, state = now.id, f"{now.get('ActiveState')}/{now.get('SubState')}"
    ended = f"Result={now.get('Result') or '?'}, status {now.get('ExecMainStatus') or '?'}"
    if now.get("ActiveState") == "failed":
        return False, f"{unit} failed again ({ended})"
    if now.get("ActiveState") != "inactive":
        return False, f"{unit} has not ended its run ({state})"
    invocation = now.get("InvocationID")
    if not invocation:
        # systemd unloads a unit nothing refers to once it ended, unless it failed: its run
        # is forgotten, and only a start job answered done says one ran
        return (True, f"{unit} ran and ended without failing") if started else (
            False, f"{unit} did not run after the fix ({state})")
    if before is None or invocation == before.get("InvocationID"):
        return False, f"{unit} did not run after the fix ({state})"
    if now.get("Result") != "success" or now.get("ExecMainStatus") != "0":
        return False, f"{unit} ran after the fix and did not succeed ({ended})"
    return True, f"{unit} ran after the fix and succeeded ({ended})"


def judge_unit(
    verb: str,
    facts: UnitFacts,
    *,
    protected: Iterable[str] = (),
    own: Iterable[str] = (),
    incident_unit: str | None = None,
    triggered: Iterable[UnitFacts] = (),
    related: Mapping[str, UnitFacts] | None = None,
    _seen: frozenset[str] = frozenset(),
    _pulled: bool = False,
) -> Verdict:
    """May automation run ``systemctl VERB`` on this unit?

    ``facts``: the unit as the host reports it (aliases resolved to its ``Id``).
    ``incident_unit``: the unit the incident is about; an automatic start or restart touches
    only that one. ``triggered``: the facts of what a timer, path or socket unit starts.
    ``related``: facts by Id of the units a stop or restart of this one reaches
    (:func:`propagation_names`); each is judged as if it were itself stopped or restarted.
    A ``kill`` (of the unit or of one of its processes) is judged as a stop.
    """
    protected, own = tuple(protected), tuple(own)
    person: list[str] = []
    load = facts.get("LoadState")
    if load in ("not-found", "masked") and verb not in ("reset-failed", "stop", "disable"):
        return Verdict(f"{facts.id} is not loaded on the host (LoadState={load})")
    if why := _protected(facts, protected, own):
        if verb in STOPPING_VERBS:
            return Verdict(f"{why}: never stopped, masked, disabled or killed by automation")
        if verb != "reset-failed":
            person.append(why)
    if verb in STOPPING_VERBS:
        if refused := _stop_refused(facts):
            return Verdict(refused)
        person += _stop_consequences(facts)
    elif verb in STARTING_VERBS:
        if refused := _start_refused(facts, protected, _pulled):
            return Verdict(refused)
        if verb in _RESTARTING_VERBS and not _seen and facts.get("RefuseManualStop") == "yes":
            # a restart asked for is a stop too, which systemd refuses such a unit (one it
            # propagates to is no job asked for, and is not refused)
            also = "" if verb in ("restart", "try-restart") else \
                " wherever it restarts rather than reloads (a reload is asked as reload)"
            return Verdict(f"{facts.id} refuses a manual stop (RefuseManualStop=yes), so "
                           f"systemd refuses a {verb} of it{also}; a start is what it takes "
                           "where it does not run")
        person += _start_consequences(facts)
        for unit in triggered:
            inner = judge_unit("start", unit, protected=protected, own=own,
                               incident_unit=unit.id, related=related)
            if inner.refused:
                return Verdict(f"{facts.id} triggers {unit.id}: {inner.refused}")
            person += [f"it triggers {unit.id}: {p}" for p in inner.person]
        if verb != "reload" and (why := _not_the_incidents(facts, incident_unit)):
            person.append(why)
    else:
        # a reset erases the failure another incident, or none, is about: a person's to
        # decide, as a start of that unit is
        if verb == "reset-failed" and (why := _not_the_incidents(facts, incident_unit, verb)):
            person.append(why)
        return Verdict(None, tuple(person))
    # a protected unit reached through another already needs a person: what it reaches in
    # turn is that person's to weigh (the executor reads no further either)
    if not (_seen and person and _protected(facts, protected, own)):
        seen = _seen | {facts.id}
        for name, prop, other_verb in _propagation(facts, verb):
            if name in seen:
                continue
            reached = _judge_reached(verb, facts, name, prop, other_verb,
                                     (related or {}).get(name), seen, protected=protected,
                                     own=own, related=related or {})
            if reached.refused:
                return reached
            person += reached.person
    return Verdict(None, tuple(dict.fromkeys(person)))
