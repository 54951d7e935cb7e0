"""Whom a process belongs to, and whether automation may kill it (pure).

A PID says nothing; its cgroup says which unit or login session it runs in, and its ancestry
who started it. The executor reads the process table once on the host
(:data:`PS_ARGV`: pid, parent, command name, cgroup), :func:`parse_ps` builds
:class:`ProcessFacts` for one PID with its ancestors, and :func:`judge_process` decides.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..monitor.parsers import cgroup_unit, manager_root, systemd_cgroup
from .protected import protected_reason
from .unit_facts import UnitFacts, Verdict, judge_unit
from .units import UNIT_TYPES

#: one ps for the whole table: the command name has a fixed width, the cgroup comes last
#: because ps neither pads nor cuts the last column
PS_ARGV: tuple[str, ...] = ("ps", "-ww", "-e", "-o", "pid=,ppid=,comm:16=,cgroup=")
_MAX_DEPTH = 64
#: cgroup components of a login: systemd-logind puts every session and user manager here
LOGIN_CGROUPS = ("session-*.scope", "user@*.service", "user-*.slice")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    comm: str
    cgroup: str

    @property
    def units(self) -> tuple[str, ...]:
        """The cgroup path's components that are units, outermost first."""
        return tuple(part for part in self.cgroup.split("/")
                     if part.rpartition(".")[2] in UNIT_TYPES)

    @property
    def unit_paths(self) -> tuple[tuple[str, str], ...]:
        """Each unit on the cgroup path that is not a slice, outermost first, with the cgroup
        systemd gives it: a name deeper inside a delegated subtree (a container's, a user
        manager's) is no unit of the host's systemd, and its cgroup tells them apart."""
        found: list[tuple[str, str]] = []
        path = ""
        for part in self.cgroup.strip("/").split("/") if self.cgroup.strip("/") else ():
            path = f"{path}/{part}"
            if part.rpartition(".")[2] in UNIT_TYPES and not part.endswith(".slice"):
                found.append((part, path))
        return tuple(found)

    @property
    def unit(self) -> str | None:
        """The innermost unit on the cgroup path (a name inside a delegated subtree may be
        no unit of the host's: :attr:`ProcessFacts.unit` is whose it is)."""
        units = [u for u in self.units if not u.endswith(".slice")]
        return units[-1] if units else None


@dataclass(frozen=True)
class ProcessFacts:
    process: Proc
    #: parent first, up to PID 1
    ancestors: tuple[Proc, ...]
    #: where the host's service manager keeps its units (:func:`manager_root`)
    root: str = "/"

    @property
    def unit(self) -> str | None:
        """The host's unit the process runs in, as the checks name it (:func:`cgroup_unit`,
        as sd_pid_get_unit does): a container's or a user manager's service deeper in the
        path is theirs, not the host's unit of that name, and an incident about the host's
        unit is not about it."""
        return cgroup_unit(self.process.cgroup, self.root)


def _cgroup(field: str) -> str:
    found = systemd_cgroup(field)
    if found is not None:
        return found
    return "" if field.strip() in ("", "-") else field.rpartition(":")[2]


def parse_ps(text: str) -> dict[int, Proc]:
    table: dict[int, Proc] = {}
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 3 or not parts[0].isdigit() or not parts[1].isdigit():
            continue
        rest = parts[2]
        table[int(parts[0])] = Proc(int(parts[0]), int(parts[1]), rest[:16].strip(),
                                    _cgroup(rest[16:].strip()))
    return table


def facts_for(pid: int, table: dict[int, Proc]) -> ProcessFacts | None:
    process = table.get(pid)
    if process is None:
        return None
    ancestors: list[Proc] = []
    parent = table.get(process.ppid)
    while parent is not None and len(ancestors) < _MAX_DEPTH and parent not in ancestors:
        ancestors.append(parent)
        parent = table.get(parent.ppid) if parent.pid > 1 else None
    init = table.get(1)
    return ProcessFacts(process, tuple(ancestors), manager_root(init.cgroup if init else None))


def _login(proc: Proc) -> str | None:
    """The innermost cgroup component that is a login (session scope, user manager)."""
    return next((part for part in reversed(proc.cgroup.split("/"))
                 if any(fnmatch.fnmatchcase(part, g) for g in LOGIN_CGROUPS)), None)


def _judge_as_stop(proc: Proc, units: Mapping[str, UnitFacts], protected: tuple[str, ...],
                   own: tuple[str, ...]) -> Verdict:
    """Killing a process can end its unit as a stop does (and its SuccessAction, FailureAction
    and BindsTo= with it), so what a stop of a unit it runs in would refuse or leave to a
    person, the kill does too."""
    person: list[str] = []
    for unit, cgroup in proc.unit_paths:
        facts = units.get(unit)
        if facts is None:
            person.append(f"what {unit} is could not be read on the host")
            continue
        if facts.get("ControlGroup") != cgroup:
            continue  # a name inside a delegated subtree, judged above by its name only
        verdict = judge_unit("kill", facts, protected=protected, own=own, related=units)
        if verdict.refused:
            return Verdict(f"runs in {unit}, and a kill ends it as a stop would: "
                           f"{verdict.refused}")
        person += [f"it runs in {unit}, and a stop of it needs a person: {p}"
                   for p in verdict.person]
    return Verdict(None, tuple(person))


def judge_process(
    facts: ProcessFacts,
    *,
    protected: Iterable[str] = (),
    own_units: Iterable[str] = (),
    own_pids: Iterable[int] = (),
    units: Mapping[str, UnitFacts] | None = None,
) -> Verdict:
    """May automation signal this process? ``own_pids``: the assistant and its ancestors on
    this host; ``own_units``: the assistant's units; ``units``: ``systemctl show`` of the
    units on its cgroup path (:attr:`Proc.unit_paths`) and of what their stop reaches. With
    them, a kill is judged as a stop of each of those units."""
    proc, protected, own = facts.process, tuple(protected), set(own_units)
    what = f"process {proc.pid} ({proc.comm})"
    if proc.pid in set(own_pids):
        return Verdict(f"{what} is the assistant itself or one of its parents")
    if proc.pid == 2 or proc.ppid == 2 or (proc.ppid == 0 and proc.pid != 1):
        return Verdict(f"{what} is a kernel thread")
    for unit in proc.units:
        if unit in own:
            return Verdict(f"{what} runs in {unit}, the assistant's own service")
    # every unit it runs in, not only the innermost: a protected unit's delegated subtree
    # may name its own cgroups like any unit
    for unit, _ in proc.unit_paths:
        if why := protected_reason(unit, protected):
            return Verdict(f"{what} runs in {unit}, which is protected ({why})")
    if not proc.cgroup:
        return Verdict(f"{what}: its cgroup could not be read, so whom it belongs to is "
                       "unknown")
    person: list[str] = []
    if units is not None:
        stop = _judge_as_stop(proc, units, protected, tuple(own))
        if stop.refused:
            return Verdict(f"{what} {stop.refused}")
        person += stop.person
    if login := _login(proc):
        person.append(f"{what} belongs to a login session ({login})")
    for parent in facts.ancestors:
        if parent.pid == 1:
            break
        if login := _login(parent):
            person.append(f"it was started from a login session ({login}, process "
                          f"{parent.pid} {parent.comm})")
            break
        # a service manager (init.scope) starts everything: only other protected units count
        if parent.unit not in (None, "init.scope") and (
                why := protected_reason(parent.unit, protected)):
            person.append(f"it was started by process {parent.pid} ({parent.comm}) of "
                          f"{parent.unit} ({why})")
            break
    return Verdict(None, tuple(person))
