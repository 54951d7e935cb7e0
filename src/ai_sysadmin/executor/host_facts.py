"""Read on the host what the policy needs to judge an action: the units it touches as systemd
reports them, the process it signals with its ancestry, and who the assistant itself is.

The judging is pure (``safety/unit_facts.py``, ``safety/process_facts.py``); this module only
runs the read-only commands through the host's Transport and parses their output.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
import posixpath
import re
from dataclasses import dataclass, field

from ..config import Settings
from ..errors import TransportError
from ..hosts.os_patterns import OSTREE_BOOTED, PACKAGE_PROGRAMS
from ..hosts.osinfo import OsInfo, read_os_release
from ..hosts.transport import LocalTransport, Transport
from ..monitor.parsers import (
    DF_COLUMNS,
    flagged,
    mount_flags,
    mount_places,
    parse_df,
    placed,
)
from ..monitor.sections import MOUNTINFO, NIXOS_SYSTEM_PROFILE
from ..monitor.snapshot import file_system_of
from ..redact import redact_cut
from ..safety.catalog import FactsNeeded, Generations
from ..safety.process_facts import LOGIN_CGROUPS, PS_ARGV, ProcessFacts, facts_for, parse_ps
from ..safety.protected import protected_reason
from ..safety.unit_facts import (
    COMMAND_PROPERTIES,
    PLAIN_PROPERTIES,
    RUN_PROPERTIES,
    ShowOutputError,
    UnitFacts,
    UnitFileError,
    install_also,
    parse_commands,
    parse_show,
    propagation_names,
)
from ..safety.units import UNIT_TYPES, parse_unit

log = logging.getLogger("ai_sysadmin.actions")


@dataclass
class HostFacts:
    read: bool = False
    units: dict[str, UnitFacts] = field(default_factory=dict)
    process: ProcessFacts | None = None
    #: the host's OS as its os-release says now, where the plan depends on it
    os: OsInfo | None = None
    #: why something could not be read (the plan then leaves it to a person)
    problem: str | None = None
    #: what the journal's files take on the host
    journal_bytes: int | None = None
    #: the mount point of the file system that holds a path (a clean_directory's), as its
    #: disk findings name it, and its other mount points (:func:`read_mount_of`), or why
    #: not (a path that is not there): no problem of the other facts
    path_mount: str | None = None
    path_also: tuple[str, ...] = ()
    mount_problem: str | None = None
    #: the NixOS system profile's generations, or why not (no problem of the other facts)
    generations: Generations | None = None
    generations_problem: str | None = None
    #: which of the known package managers the host has (None: not asked), and whether it
    #: booted an ostree deployment
    package_programs: frozenset[str] | None = None
    ostree_booted: bool = False
    #: every unit a disable disables too, with the unit whose Also= names it, or why not
    also: tuple[tuple[str, str], ...] | None = None
    also_problem: str | None = None


async def _show(transport: Transport, settings: Settings, names: list[str]) -> list[UnitFacts]:
    """The units' facts in two reads: their plain properties, which no unit file can print a
    line break into, read strictly; then their command lines, whose arguments can
    (:func:`parse_commands`)."""
    try:
        plain = parse_show(await _shown(transport, settings, PLAIN_PROPERTIES, names),
                           expected=len(names), properties=PLAIN_PROPERTIES)
    except ShowOutputError as exc:  # not a systemctl show this code knows: never guessed at
        raise TransportError(f"systemctl show printed what cannot be read ({exc})") from exc
    commands = parse_commands(await _shown(transport, settings, COMMAND_PROPERTIES, names),
                              [facts.id for facts in plain])
    return [dataclasses.replace(facts, commands=run, stop_commands=stops)
            for facts, (run, stops) in zip(plain, commands, strict=True)]


async def _shown(transport: Transport, settings: Settings, properties: tuple[str, ...],
                 names: list[str]) -> str:
    argv = [settings.programs.systemctl, "show", "--no-pager", "-p", ",".join(properties),
            "--", *names]
    done = await transport.run(argv, settings.command_timeout)
    if not done.ok:
        raise TransportError(f"systemctl show failed ({done.returncode}): "
                             f"{redact_cut(done.stderr.strip(), 200)}")
    return done.stdout


async def read_run(transport: Transport, settings: Settings, unit: str,
                   properties: tuple[str, ...] = RUN_PROPERTIES) -> UnitFacts:
    """What the unit's last run left (:data:`RUN_PROPERTIES`, or ``properties``), as systemd
    says now."""
    settings = settings.on_host(transport.local_programs)
    try:
        (facts,) = parse_show(await _shown(transport, settings, properties, [unit]),
                              expected=1, properties=properties)
    except ShowOutputError as exc:
        raise TransportError(f"systemctl show printed what cannot be read ({exc})") from exc
    return facts


#: how far the units a stop or restart reaches are followed: past that, the policy finds a
#: unit it has no facts for and leaves the action to a person
_MAX_UNITS = 256
_MAX_ROUNDS = 8


async def read_units(transport: Transport, settings: Settings, names: tuple[str, ...]
                     ) -> dict[str, UnitFacts]:
    """Facts by requested name and by Id, plus every unit a start, restart or stop of them
    reaches through systemd's dependencies (and what they trigger), round by round. A
    protected unit reached is not followed further: the policy stops there too."""
    found: dict[str, UnitFacts] = {}
    protected = tuple(settings.safety.protected_units)
    wanted, requested = list(names), True
    for _ in range(_MAX_ROUNDS):
        if not wanted:
            break
        shown = await _show(transport, settings, wanted)
        for name, facts in zip(wanted, shown, strict=False):
            found[name] = found[facts.id] = facts
        following = [f for f in shown if requested or protected_reason(f.id, protected) is None]
        room = max(0, _MAX_UNITS - len(found))
        wanted = sorted({n for f in following for n in propagation_names(f, requested)}
                        - set(found))[:room]
        requested = False
    return found


#: how many units a disable's Also= is followed to: past that, the disable is not judged
_MAX_ALSO = 32


async def read_also(transport: Transport, settings: Settings, unit: str
                    ) -> tuple[tuple[str, str], ...]:
    """Every unit ``systemctl disable UNIT`` disables with it, each with the unit whose
    [Install] ``Also=`` names it: systemd follows Also= from unit to unit, in the unit files
    and their drop-ins, and ``systemctl show`` reports none of it. A unit without a file has
    no Also= to follow (systemd finds none either)."""
    found: dict[str, str] = {}
    following = [unit]
    while following:
        name = following.pop(0)
        done = await transport.run([settings.programs.systemctl, "cat", "--no-pager", "--",
                                    name], settings.command_timeout)
        if not done.ok and not done.stdout.strip() and "No files found for" in done.stderr:
            continue
        if not done.ok:
            raise TransportError(f"systemctl cat {name} failed ({done.returncode}): "
                                 f"{redact_cut(done.stderr.strip(), 200)}")
        try:
            named = install_also(done.stdout)
        except UnitFileError as exc:
            raise TransportError(f"the unit file of {name} cannot be read for sure: "
                                 f"{exc}") from exc
        for other in named:
            if other == unit or other in found:
                continue
            if len(found) >= _MAX_ALSO:
                raise TransportError(f"disabling {unit} also disables more than {_MAX_ALSO} "
                                     "units (Also=)")
            found[other] = name
            following.append(other)
    return tuple(found.items())


async def read_process(transport: Transport, settings: Settings, pid: int
                       ) -> ProcessFacts | None:
    argv = [settings.programs.ps, *PS_ARGV[1:]]
    done = await transport.run(argv, settings.command_timeout)
    if not done.ok:
        raise TransportError(f"ps failed ({done.returncode}): "
                             f"{redact_cut(done.stderr.strip(), 200)}")
    return facts_for(pid, parse_ps(done.stdout))


#: ``journalctl --disk-usage``: "Archived and active journals take up 1.2G in the file system."
_JOURNAL_USAGE = re.compile(r"take up ([0-9]+(?:\.[0-9]+)?)([BKMGTPE]?)\b")


async def read_journal_bytes(transport: Transport, settings: Settings) -> int:
    done = await transport.run([settings.programs.journalctl, "--disk-usage"],
                               settings.command_timeout)
    found = _JOURNAL_USAGE.search(done.stdout) if done.ok else None
    if found is None:
        raise TransportError(f"journalctl --disk-usage failed ({done.returncode}): "
                             f"{redact_cut((done.stderr or done.stdout).strip(), 200)}")
    return int(float(found.group(1)) * 1024 ** "BKMGTPE".index(found.group(2) or "B"))


async def read_mount_of(transport: Transport, settings: Settings, path: str
                        ) -> tuple[str, ...]:
    """The mount points of the file system ``path`` is on, the one its disk findings are
    about first (:func:`file_system_of`): df of the path names its own mount point (a ZFS
    dataset's, a btrfs subvolume's, a bind mount's), and the rules judge df's whole table,
    read as the check reads it, so that a clean and the incidents it is for are of one
    file system by one judgement."""
    df = [settings.programs.df, "-B1", f"--output={DF_COLUMNS}"]
    done = await transport.run([*df, "--", path], settings.command_timeout)
    mounts = parse_df(done.stdout) if done.ok else []
    if len(mounts) != 1:
        said = redact_cut(done.stderr.strip(), 200)
        raise TransportError(f"df {path[:80]!r} failed ({done.returncode}): "
                             f"{said or 'no file system a disk check reads'}")
    # local ones alone (-l): a network file system is judged by its own mount point, and one
    # that does not answer must not hold up a clean of a local disk. df exits 1 when one
    # mount is unreadable but still reports the others, as in a check
    table = await transport.run([*df, "-l"], settings.command_timeout)
    if not table.stdout.strip():
        raise TransportError(f"df failed ({table.returncode}): "
                             f"{redact_cut(table.stderr.strip(), 200) or 'it said nothing'}")
    mountinfo = await transport.read_file(MOUNTINFO, settings.command_timeout)
    flags = mount_flags(mountinfo) if mountinfo is not None else {}
    places = mount_places(mountinfo) if mountinfo is not None else {}
    line = placed(flagged(mounts, flags), places)[0]
    return file_system_of(line, placed(flagged(parse_df(table.stdout), flags), places)) \
        or (line.target,)


#: each generation link of the system profile, and the profile's own link: name, the link's
#: own time (lstat: when the generation was made), and where it points
_PROFILE_LINKS = ("-maxdepth", "1", "-name", "system*", "-type", "l",
                  "-printf", "%f\\t%T@\\t%l\\n")
_GENERATION_LINK = re.compile(r"system-([0-9]+)-link")


def parse_generations(text: str) -> Generations:
    """The current generation (where the profile's ``system`` link points), when it was made
    and the one before it (the newest lower number: deleted ones leave gaps), from the
    profile's links as ``find -printf`` lists them; another layout is an error, never a
    guess."""
    made: dict[int, float] = {}
    current: int | None = None
    for line in text.splitlines():
        name, at, target = (line.split("\t") + ["", ""])[:3]
        if name == "system":
            found = _GENERATION_LINK.fullmatch(posixpath.basename(target))
            if found is None:
                raise ValueError(f"the system profile points at {target[:80]!r}")
            current = int(found.group(1))
        elif found := _GENERATION_LINK.fullmatch(name):
            try:
                made[int(found.group(1))] = float(at)
            except ValueError:
                raise ValueError(f"no time for {name[:80]!r}: {at[:40]!r}") from None
    if current is None or current not in made:
        raise ValueError("no generation link the system profile points at")
    earlier = [n for n in made if n < current]
    return Generations(current, made[current], max(earlier) if earlier else None)


async def read_generations(transport: Transport, settings: Settings) -> Generations:
    """The system profile's generations, from its links alone (nix-env would take the
    profile's lock, which only root may create): their times are the host's epoch seconds,
    whatever its zone."""
    profiles = posixpath.dirname(NIXOS_SYSTEM_PROFILE)
    done = await transport.run([settings.programs.find, profiles, *_PROFILE_LINKS],
                               settings.command_timeout)
    try:
        if not done.ok:
            raise ValueError(redact_cut((done.stderr or done.stdout).strip(), 200)
                             or "it said nothing")
        return parse_generations(done.stdout)
    except ValueError as exc:
        raise TransportError(f"the generations in {profiles} could not be read "
                             f"({done.returncode}): {exc}") from exc


#: whether the host booted an ostree deployment (its first argument), then each program of the
#: rest that its PATH finds: ``command -v`` is the shell's own, so one sh asks for them all
PACKAGE_PROBE = ('o=$1; shift; [ ! -e "$o" ] || echo ostree-booted; '
                 'for p do command -v -- "$p" >/dev/null 2>&1 && printf "has %s\\n" "$p"; '
                 'done; exit 0')


async def read_package_programs(transport: Transport, settings: Settings
                                ) -> tuple[frozenset[str], bool]:
    """The package managers the host has, by their bare names, and whether it booted an
    ostree deployment. Each is looked for as ``programs.*`` names it, as the fix runs it."""
    named = {settings.programs.resolve(p): p for p in PACKAGE_PROGRAMS}
    done = await transport.run([settings.programs.sh, "-c", PACKAGE_PROBE, "sh", OSTREE_BOOTED,
                                *named], settings.command_timeout)
    if not done.ok:
        raise TransportError(f"the package managers could not be looked for "
                             f"({done.returncode}): "
                             f"{redact_cut((done.stderr or done.stdout).strip(), 200)}")
    lines = done.stdout.splitlines()
    found = frozenset(named[line[4:]] for line in lines
                      if line.startswith("has ") and line[4:] in named)
    return found, "ostree-booted" in lines


async def read_facts(transport: Transport | None, settings: Settings,
                     needed: FactsNeeded) -> HostFacts:
    if transport is None:
        return HostFacts(problem="no transport to the host")
    if not (needed.units or needed.pid is not None or needed.os or needed.journal
            or needed.mount_of or needed.generations or needed.package_programs):
        return HostFacts(read=True)
    settings = settings.on_host(transport.local_programs)
    facts = HostFacts(read=True)
    try:
        if needed.os:
            facts.os = await read_os_release(transport, settings.command_timeout)
        if needed.package_programs:
            facts.package_programs, facts.ostree_booted = await read_package_programs(
                transport, settings)
        if needed.journal:
            facts.journal_bytes = await read_journal_bytes(transport, settings)
        if needed.mount_of:
            try:
                facts.path_mount, *also = await read_mount_of(transport, settings,
                                                              needed.mount_of)
                facts.path_also = tuple(also)
            except TransportError as exc:
                facts.mount_problem = str(exc)
        if needed.generations:
            try:
                facts.generations = await read_generations(transport, settings)
            except TransportError as exc:
                facts.generations_problem = str(exc)
        if needed.also_of:
            try:
                facts.also = await read_also(transport, settings, needed.also_of)
            except TransportError as exc:
                facts.also_problem = str(exc)
        if needed.units:
            # what a disable disables too is judged on its own facts; a template has none
            # (systemctl show refuses it), so it is judged as a unit that could not be read
            also = (u for u, _ in facts.also or () if not parse_unit(u).is_template)
            facts.units = await read_units(transport, settings,
                                           tuple(dict.fromkeys((*needed.units, *also))))
        if needed.pid is not None:
            facts.process = await read_process(transport, settings, needed.pid)
            # a kill is judged as a stop of every unit the process runs in
            path = tuple(u for u, _ in facts.process.process.unit_paths) \
                if facts.process else ()
            if path:
                facts.units = {**await read_units(transport, settings, path), **facts.units}
    except TransportError as exc:
        log.warning("%s: facts for the policy could not be read: %s", transport.host, exc)
        return HostFacts(problem=str(exc))
    return facts


def _own_cgroup_units(pid: int | str) -> list[str]:
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return []
    units = []
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        units += [p for p in path.split("/")
                  if p.rpartition(".")[2] in UNIT_TYPES and not p.endswith(".slice")]
    return units


def _ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1 and len(chain) < 64:
        chain.append(pid)
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
                # the command name may hold spaces and parentheses: the fields after the
                # last ')' are fixed
                pid = int(handle.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return chain


@dataclass(frozen=True)
class Self:
    """The assistant as this host sees it."""

    units: tuple[str, ...]
    pids: tuple[int, ...]


def own_identity(settings: Settings, transport: Transport | None) -> Self:
    """Its units: the names its packaging uses, plus the units its own process runs in (from
    its cgroup, so a unit named anything is still found); its PIDs only where it runs."""
    names = list(settings.own_units)
    pids: list[int] = []
    if isinstance(transport, LocalTransport):
        pids = _ancestors(os.getpid())
        # a login session or user manager is the person's, not the assistant's
        names += [u for u in _own_cgroup_units(os.getpid()) if u != "init.scope"
                  and not any(fnmatch.fnmatchcase(u, g) for g in LOGIN_CGROUPS)]
    return Self(tuple(dict.fromkeys(names)), tuple(pids))
