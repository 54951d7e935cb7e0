"""The action catalog: every remediation the assistant may take, as data + pure functions.

For a proposed action (kind + parameters, from the model or a person) the catalog gives a plan:
allowed or refused with a reason, the risk (assigned here, never by the model), the argv to run,
how to verify it worked, and a rollback where one exists. No I/O: what the host reports (a
unit's canonical name and properties, a process's cgroup and ancestry) is read by the executor
(:func:`facts_needed` says what) and judged here, from :class:`PlanContext`.
"""

from __future__ import annotations

import json
import posixpath
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..hosts.os_patterns import FAMILY_MANAGERS, family_of, package_manager
from ..monitor.findings import process_subject
from ..redact import redact_cut
from .actions import ACTION_KINDS
from .clean_script import CleanArgumentError, clean_argv
from .command_policy import MAX_ANY_ARG, check_command
from .process_facts import ProcessFacts, judge_process
from .protected import protected_reason
from .remediation_commands import LOW_RISK_DAYS, kill_pid, systemctl_operands
from .unit_facts import (
    STARTING_VERBS,
    STOPPING_VERBS,
    UnitFacts,
    Verdict,
    judge_unit,
    needed_running,
    runs_to_an_end,
)
from .units import normalise_unit

Risk = Literal["none", "low", "medium", "high"]


@dataclass(frozen=True)
class PlanContext:
    """What the policy knows about the target host and the operator's configuration."""

    os_id: str | None = None
    os_like: tuple[str, ...] = ()
    protected: tuple[str, ...] = ()
    clean_paths: tuple[str, ...] = ()
    #: whether the host was asked for the facts :func:`facts_needed` names; without them a
    #: start, restart or kill is a person's decision
    facts_read: bool = False
    #: why the host could not tell (a transport or systemctl error)
    facts_problem: str | None = None
    #: ``systemctl show`` of the units involved, by requested name and by Id
    units: Mapping[str, UnitFacts] = field(default_factory=dict)
    #: the process a kill_process names, with its ancestry
    process: ProcessFacts | None = None
    #: the unit the incident is about: the only one started or restarted without a person
    incident_unit: str | None = None
    #: the rule and subject of the incident the action is for (a mount point, a unit,
    #: ``pid:N``); None: no incident
    incident_rule: str | None = None
    incident_subject: str | None = None
    #: what the journal's files take on the host (``journalctl --disk-usage``)
    journal_bytes: int | None = None
    #: the mount point of the file system a clean_directory's path is on (``df``), as its
    #: disk findings name it, or why it could not be read; and the file system's other
    #: mount points (a btrfs's subvolumes, a ZFS pool's datasets), whose findings the same
    #: space is counted in
    path_mount: str | None = None
    path_also: tuple[str, ...] = ()
    mount_problem: str | None = None
    #: the assistant's own units and (on its own host) its process and parents
    own_units: tuple[str, ...] = ()
    own_pids: tuple[int, ...] = ()
    #: when the incident the action is for opened (this machine's clock)
    incident_opened_at: float | None = None
    #: the host's NixOS system generations (``nix-env --list-generations``), or why not
    generations: Generations | None = None
    generations_problem: str | None = None
    #: which of the known package managers the host has (None: the host was not asked), and
    #: whether it booted an ostree deployment
    package_programs: frozenset[str] | None = None
    ostree_booted: bool = False
    #: every unit a ``systemctl disable`` disables too (its [Install] Also=, followed), each
    #: with the unit whose Also= names it; None: not read (why: ``also_problem``)
    also: tuple[tuple[str, str], ...] | None = None
    also_problem: str | None = None


@dataclass(frozen=True)
class Generations:
    """The system profile's generations: the current one, when it was made (the host's
    clock), and the one a rollback switches to (None: there is none)."""

    current: int
    made_at: float
    previous: int | None


@dataclass(frozen=True)
class FactsNeeded:
    """What the executor must read on the host before planning."""

    units: tuple[str, ...] = ()
    pid: int | None = None
    #: the host's OS, read fresh: the plan differs by it (or exists only on one)
    os: bool = False
    #: the journal's size on the host
    journal: bool = False
    #: the mount point of the file system this path is on
    mount_of: str | None = None
    #: the NixOS system profile's generations
    generations: bool = False
    #: which package managers the host has
    package_programs: bool = False
    #: the unit a ``systemctl disable`` names: what its [Install] Also= disables with it
    also_of: str | None = None


@dataclass(frozen=True)
class Plan:
    kind: str
    allowed: bool
    reason: str
    risk: Risk = "high"
    subject: str = ""
    commands: tuple[tuple[str, ...], ...] = ()
    #: verification: the finding must be gone; and, when set, this unit must be active
    verify_unit_active: str | None = None
    #: or, for a oneshot job (inactive once it ran), this unit must have run after the fix
    #: and succeeded
    verify_unit_ran: str | None = None
    rollback: tuple[tuple[str, ...], ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    #: a refusal that holds whatever the host's facts say (the argv, a unit's name, the
    #: configuration refuse it): a host that did not answer leaves it refused, not waiting
    #: for a person until it answers
    firm: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "allowed": self.allowed, "reason": self.reason,
            "risk": self.risk, "subject": self.subject,
            "commands": [list(c) for c in self.commands],
            "verify_unit_active": self.verify_unit_active,
            "verify_unit_ran": self.verify_unit_ran,
            "rollback": [list(c) for c in self.rollback],
            "params": self.params,
        }


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UnitParams(_Params):
    unit: str = Field(min_length=1, max_length=256)


class VacuumParams(_Params):
    max_size: str = Field("500M", pattern=r"^[1-9][0-9]{0,5}[KMG]$")


class GcParams(_Params):
    older_than: str = Field("14d", pattern=r"^[1-9][0-9]{0,3}d$")


class NoParams(_Params):
    pass


class KillParams(_Params):
    pid: int = Field(gt=1, lt=1 << 22)
    signal: Literal["TERM", "KILL"] = "TERM"


class CleanParams(_Params):
    path: str = Field(min_length=1, max_length=1024)
    older_than_days: int = Field(7, ge=1, le=3650)


class CommandParams(_Params):
    # no longer than the command policy takes any argument: a model's 300,000 characters
    # were recorded, then stored, audited and shown whole before the policy refused them
    argv: list[Annotated[str, Field(max_length=MAX_ANY_ARG)]] = Field(min_length=1,
                                                                      max_length=32)


def _refuse(kind: str, reason: str, subject: str = "", params: dict[str, Any] | None = None,
            *, firm: bool = False) -> Plan:
    return Plan(kind, False, reason, "high", subject, params=params or {}, firm=firm)


def _is_nixos(ctx: PlanContext) -> bool:
    return ctx.os_id == "nixos"


def _this_os(ctx: PlanContext) -> str:
    """The host's OS as a refusal names it; unknown, with why where it could not be read."""
    if ctx.os_id:
        return ctx.os_id
    if ctx.facts_problem:
        return f"unknown (not read: {redact_cut(ctx.facts_problem, 160)})"
    return "unknown"


def judge_unit_on_host(verb: str, unit: str, ctx: PlanContext) -> tuple[str, Verdict]:
    """The unit's canonical name and the verdict on ``systemctl VERB`` from the host's facts;
    facts that could not be read leave a start, restart or stop to a person, apart from a
    stop of a unit protected by its name, refused whatever the host says."""
    facts = ctx.units.get(unit)
    if facts is None:
        if verb in STOPPING_VERBS and (why := protected_reason(unit, ctx.protected)):
            return unit, Verdict(f"{unit} is protected: {why}: never stopped, masked, "
                                 "disabled or killed by automation", firm=True)
        if verb in STOPPING_VERBS:
            return unit, Verdict(f"what {unit} is could not be read on the host (an alias of "
                                 "a protected unit?): not stopped without knowing")
        if verb not in STARTING_VERBS:
            return unit, Verdict()
        problem = f" ({redact_cut(ctx.facts_problem, 160)})" if ctx.facts_problem else ""
        where = ("on the host" + problem
                 if ctx.facts_read or ctx.facts_problem else "(no host was asked)")
        return unit, Verdict(None, (f"its properties could not be read {where}, so what "
                                    "starting it does is unknown",))
    triggered = [ctx.units[t] for t in facts.all("Triggers") if t in ctx.units]
    return facts.id, judge_unit(verb, facts, protected=ctx.protected, own=ctx.own_units,
                                incident_unit=ctx.incident_unit, triggered=triggered,
                                related=ctx.units)


def _unit_action(verb: str, verify_active: bool) -> Callable[[UnitParams, PlanContext], Plan]:
    def plan(p: UnitParams, ctx: PlanContext) -> Plan:
        kind = f"{verb.replace('-', '_')}_unit"
        unit = normalise_unit(p.unit)
        if unit is None:
            return _refuse(kind, f"{p.unit!r} is not a valid systemd unit name", p.unit,
                           firm=True)
        # the canonical name is what runs: the name judged is the name started
        canonical, verdict = judge_unit_on_host(verb, unit, ctx)
        if verdict.refused:
            return _refuse(kind, verdict.refused, canonical, {"unit": unit},
                           firm=verdict.firm)
        if not verify_active and (needed := needed_running(ctx.units.get(unit))):
            return _reset_and_start(p, ctx, needed)
        person = list(verdict.person)
        # never automatic, by its name too (facts unknown, or reset-failed, which the facts
        # leave alone); said once when the facts already said it
        protected = protected_reason(unit, ctx.protected)
        if protected and not any(" is protected" in p for p in person):
            person.insert(0, f"{unit} is protected ({protected})")
        risk: Risk = "high" if person else "low"
        shown = unit if canonical == unit else f"{unit} ({canonical})"
        reason = f"{verb} of {shown}" + (f"; needs a person: {'; '.join(person)}"
                                         if person else "")
        # a oneshot job is inactive again once it ran: its success is that run's result
        oneshot = runs_to_an_end(ctx.units.get(unit))
        return Plan(kind, True, reason, risk, canonical,
                    ((("systemctl", verb, "--", canonical)),),
                    verify_unit_active=canonical if verify_active and not oneshot else None,
                    verify_unit_ran=canonical if verify_active and oneshot else None,
                    params={"unit": unit})

    return plan


def _reset_and_start(p: UnitParams, ctx: PlanContext, needed: str) -> Plan:
    """A reset-failed of a unit the host needs running is ``systemctl reset-failed U &&
    systemctl start U``, as an admin types it: the reset starts nothing, and the fix is the
    unit running again (a oneshot job: run again to success). It is judged as that start
    is (the same plan, never a weaker one): a protected unit, or another than the
    incident's, is a person's decision."""
    start = _unit_action("start", True)(p, ctx)
    if not start.allowed:
        return _refuse("reset_failed_unit", f"a reset-failed of {start.subject or p.unit} "
                       f"must start it too ({needed}), and that start is refused: "
                       f"{start.reason}",
                       start.subject, start.params, firm=start.firm)
    unit = start.subject
    # the start's own words name the unit as asked and as it runs, and who must decide
    started, person = start.reason.partition("; needs a person: ")[::2]
    why = (f"reset-failed of {started.removeprefix('start of ')}, then its start: a "
           f"reset-failed starts nothing, and the host needs it ({needed})")
    return replace(start, kind="reset_failed_unit",
                   reason=why + (f"; needs a person: {person}" if person else ""),
                   commands=(("systemctl", "reset-failed", "--", unit), *start.commands))


#: a vacuum that keeps less of the journal than this leaves little of what incidents are read
#: from, and a prompt-injected model could erase the very lines that carried the injection
JOURNAL_FLOOR_BYTES = 100 * 1024 * 1024
_UNITS = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}


def _bytes(size: int) -> str:
    for unit, factor in (("G", 1024 ** 3), ("M", 1024 ** 2), ("K", 1024)):
        if size >= factor:
            return f"{size / factor:.1f}{unit}"
    return f"{size}B"


def vacuum_person(max_size: str, journal_bytes: int | None) -> str | None:
    """Why a person decides a journal vacuum to ``max_size`` (None: nothing against it): it
    keeps less than :data:`JOURNAL_FLOOR_BYTES`. The journal's size is said, never a reason to
    run one on its own: a reader outside the journal's groups sees only its own files, and a
    size read too small would let the vacuum of a big journal through."""
    keep = int(max_size[:-1]) * _UNITS[max_size[-1]]
    if keep >= JOURNAL_FLOOR_BYTES:
        return None
    now = (f"it holds {_bytes(journal_bytes)} now" if journal_bytes is not None
           else "its size could not be read")
    return (f"it keeps {max_size} of the journal ({now}), less than "
            f"{_bytes(JOURNAL_FLOOR_BYTES)}: the logs incidents are read from would go")


def _vacuum(p: VacuumParams, ctx: PlanContext) -> Plan:
    risk: Risk = "low"
    reason = f"shrink the journal to {p.max_size}"
    if person := vacuum_person(p.max_size, ctx.journal_bytes):
        risk, reason = "high", f"{reason}; needs a person: {person}"
    return Plan("vacuum_journal", True, reason, risk, "journal",
                (("journalctl", f"--vacuum-size={p.max_size}"),), params=p.model_dump())


def _nix_gc(p: GcParams, ctx: PlanContext) -> Plan:
    if not _is_nixos(ctx) and "nixos" not in ctx.os_like:
        return _refuse("nix_gc", f"nix_gc needs NixOS; this host is {_this_os(ctx)}")
    risk: Risk = "low"
    reason = f"delete Nix generations older than {p.older_than}"
    if int(p.older_than[:-1]) < LOW_RISK_DAYS:
        # what a fix would roll back to goes with them: a deploy of last week is not undone
        risk, reason = "high", (f"{reason}; needs a person: only the generations of the last "
                                f"{p.older_than} are left to roll back to")
    return Plan("nix_gc", True, reason, risk, "nix-store",
                (("nix-collect-garbage", "--delete-older-than", p.older_than),),
                params=p.model_dump())


def _rollback(p: NoParams, ctx: PlanContext) -> Plan:
    if not _is_nixos(ctx):
        return _refuse("nix_rollback_generation",
                       f"a generation rollback needs NixOS; this host is {_this_os(ctx)}")
    gens = ctx.generations
    if gens is not None and gens.previous is None:
        return _refuse("nix_rollback_generation", f"generation {gens.current} is the system's "
                       f"oldest: there is none to roll back to")
    reason = ("switch to the previous NixOS generation" if gens is None else
              f"switch from generation {gens.current} back to {gens.previous}")
    risk: Risk = "medium"
    if person := rollback_person(gens, ctx):
        risk, reason = "high", f"{reason}; needs a person: {person}"
    return Plan("nix_rollback_generation", True, reason, risk, "system",
                (("nixos-rebuild", "switch", "--rollback"),))


def rollback_person(gens: Generations | None, ctx: PlanContext) -> str | None:
    """Why a rollback is a person's decision (None: it is not). It undoes everything the
    current generation brought: without a person, only where that generation came shortly
    before the incident's trouble began, so that it may be its cause."""
    if gens is None:
        why = ctx.generations_problem or ctx.facts_problem
        why = redact_cut(why or "no host was asked", 160)
        return f"which generation is current could not be read ({why})"
    if ctx.incident_opened_at is None:
        return "no incident is about it"
    made = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(gens.made_at))
    before = ctx.incident_opened_at - gens.made_at
    if before < 0:
        return (f"generation {gens.current} was made at {made}, after this trouble began: "
                f"rolling it back does not undo the trouble's cause")
    if before > LOW_RISK_DAYS * 86400:
        return (f"generation {gens.current} has been the system since {made}, "
                f"{before / 86400:.0f} days before this trouble began: rolling it back "
                f"undoes more than this incident")
    return None


def _rebuild(p: NoParams, ctx: PlanContext) -> Plan:
    if not _is_nixos(ctx):
        return _refuse("nixos_rebuild_switch", f"needs NixOS; this host is {_this_os(ctx)}")
    return Plan("nixos_rebuild_switch", True, "rebuild and switch the configuration", "high",
                "system", (("nixos-rebuild", "switch"),),
                rollback=(("nixos-rebuild", "switch", "--rollback"),))


def _update(p: NoParams, ctx: PlanContext) -> Plan:
    found = ctx.package_programs
    if found is None and ctx.facts_problem:
        return _refuse("update_packages", f"which package manager the host "
                       f"({ctx.os_id or 'its OS unknown'}) has could not be read: "
                       f"{redact_cut(ctx.facts_problem, 160)}")
    if found is None:
        # no host was asked (a lesson recalled): its family's own, as on a host that has it;
        # the executor always asks before it proposes or runs one
        found = frozenset(FAMILY_MANAGERS.get(family_of(ctx.os_id, ctx.os_like) or "", ())[:1])
    chosen = package_manager(ctx.os_id, ctx.os_like, found, ctx.ostree_booted)
    if isinstance(chosen, str):
        return _refuse("update_packages",
                       f"no package update command is known for {_this_os(ctx)}: {chosen}")
    reason = f"install pending updates ({chosen.program})"
    reason += f"; {chosen.note}" if chosen.note else ""
    return Plan("update_packages", True, reason, "high", "packages", (chosen.update,),
                rollback=(chosen.rollback,) if chosen.rollback else ())


def _reboot(p: NoParams, ctx: PlanContext) -> Plan:
    return Plan("reboot", True, "reboot the host", "high", "host", (("systemctl", "reboot"),))


def _judge_kill(pid: int, ctx: PlanContext) -> tuple[str | None, str, tuple[str, ...]]:
    """(why never, where the process runs, why a person) for a signal to ``pid``, from the
    process facts and the facts of the units it runs in (a kill is judged as their stop)."""
    if ctx.process is None:
        if ctx.facts_read:
            return f"there is no process {pid} on the host", "", ()
        asked = (f"the host could not tell: {redact_cut(ctx.facts_problem, 160)}"
                 if ctx.facts_problem else "no host was asked")
        return None, "", (f"whom it belongs to is unknown ({asked})",)
    verdict = judge_process(ctx.process, protected=ctx.protected, own_units=ctx.own_units,
                            own_pids=ctx.own_pids, units=ctx.units)
    proc = ctx.process.process
    return verdict.refused, f"{proc.comm} in {ctx.process.unit or proc.cgroup}", verdict.person


def _kill(p: KillParams, ctx: PlanContext) -> Plan:
    risk: Risk = "medium"
    reason = f"send SIG{p.signal} to process {p.pid}"
    refused, where, person = _judge_kill(p.pid, ctx)
    # a hog its service starts again is the same hog: the kills of one service count
    # together toward the flapping limit, as the runaway finding names it (the host's unit,
    # never a name a container gave a cgroup inside its own)
    subject = process_subject(ctx.process.unit if ctx.process else None, p.pid)
    if refused:
        return _refuse("kill_process", refused, subject, p.model_dump())
    reason += f" ({where})" if where else ""
    if ctx.process is not None and (other := _not_the_incidents(subject, _PROCESS_RULES, ctx)):
        person = (*person, f"{other}, not {subject}")
    if p.signal == "KILL":
        # no handler runs, no file is closed cleanly: TERM is the fix that runs unasked
        person = (*person, "SIGKILL gives the process no chance to end cleanly (TERM does)")
    if person:
        risk, reason = "high", f"{reason}; needs a person: {'; '.join(person)}"
    return Plan("kill_process", True, reason, risk, subject,
                (("kill", f"-{p.signal}", str(p.pid)),), params=p.model_dump())


#: the findings about one process (their subject its service, or pid:N): the only ones a
#: kill may end without a person
_PROCESS_RULES = frozenset({"runaway_process", "zombie_processes"})
#: the findings about the space on one file system (their subject its mount point)
_SPACE_RULES = frozenset({"disk_space", "inode_exhaustion"})


def _not_the_incidents(subject: str, rules: frozenset[str], ctx: PlanContext,
                       also: tuple[str, ...] = ()) -> str | None:
    """Why ``subject`` (or what ``also`` names as the same) is not what the incident is
    about (None: it is): an action past the incident is a person's decision."""
    if ctx.incident_rule is None:
        return "no incident is about it"
    if ctx.incident_rule in rules and ctx.incident_subject in (subject, *also):
        return None
    return f"the incident is about {ctx.incident_rule} of {ctx.incident_subject}"


def _clean(p: CleanParams, ctx: PlanContext) -> Plan:
    path = posixpath.normpath(p.path)
    if not p.path.startswith("/") or ".." in p.path.split("/") or "\x00" in p.path:
        return _refuse("clean_directory", f"{p.path!r} is not a plain absolute path", p.path,
                       firm=True)
    inside = [c for c in ctx.clean_paths if path == c or path.startswith(c.rstrip("/") + "/")]
    if not inside:
        return _refuse("clean_directory", f"{path} is outside the configured cache/tmp paths "
                       f"({', '.join(ctx.clean_paths) or 'none'})", path, firm=True)
    try:
        # no host check before it: the script judges the directory it deletes in, on the host
        argv = clean_argv(path, p.older_than_days, ctx.clean_paths)
    except CleanArgumentError as exc:
        return _refuse("clean_directory", str(exc), path, firm=True)
    risk: Risk = "medium"
    reason = (f"delete files neither modified nor read for {p.older_than_days} days in {path} "
              "(not in mounts or services' private /tmp there)")
    if ctx.path_mount is None:
        why = ctx.mount_problem or ctx.facts_problem
        where = f"({redact_cut(why, 160)})" if why else "(no host was asked)"
        person: str | None = f"the file system {path} is on could not be read {where}"
    elif other := _not_the_incidents(ctx.path_mount, _SPACE_RULES, ctx, ctx.path_also):
        person = f"{other}, not the space on {ctx.path_mount} ({path} is there)"
    else:
        person = None
    if person:
        risk, reason = "high", f"{reason}; needs a person: {person}"
    return Plan("clean_directory", True, reason, risk, path, (argv,),
                params={"path": path, "older_than_days": p.older_than_days})


def _command(p: CommandParams, ctx: PlanContext) -> Plan:
    decision = check_command(p.argv, "remediate", ctx.protected)
    if not decision.allowed:
        # refused on the argv alone (a protected unit by its name among them)
        return _refuse("run_command", decision.reason, redact_cut(" ".join(p.argv), 200),
                       {"argv": p.argv}, firm=True)
    if decision.risk == "none":
        # a fix runs as root: a read run so opens what the reading identity may not (df and
        # mdadm open their operands, a watchdog's device arms on open) and shows what it
        # may not see, for nothing a read needs
        return _refuse("run_command", f"{decision.reason}: it changes nothing, so it is no "
                       "fix; reads are the investigation's (run_readonly), as the reading "
                       "identity, not root", redact_cut(" ".join(p.argv), 200),
                       {"argv": p.argv}, firm=True)
    target = systemctl_target(p.argv)
    if target is None and p.argv[0] == "systemctl" and decision.risk != "none" \
            and systemctl_operands(list(p.argv[1:])) != ["reboot"]:
        # a change to a unit whose facts cannot be read is never judged on a name alone
        return _refuse("run_command", "cannot tell which unit this systemctl command "
                       "changes, so its facts cannot be checked", redact_cut(" ".join(p.argv), 200),
                       {"argv": p.argv}, firm=True)
    person: tuple[str, ...] = ()
    refused: str | None = None
    firm = False
    what = decision.reason
    if target is not None:
        verb, unit = target
        _, verdict = judge_unit_on_host(verb, unit, ctx)
        refused, person, firm = verdict.refused, verdict.person, verdict.firm
        if verb == "disable" and not refused:
            refused, also, firm = _disabled_too(unit, ctx)
            person = (*also, *person)
    elif (pid := kill_pid(p.argv)) is not None:
        # the same process the same way as kill_process: a PID is no less protected here,
        # and the person is shown whose it is
        refused, where, person = _judge_kill(pid, ctx)
        what += f": {where}" if where else ""
    if refused:
        return _refuse("run_command", refused, redact_cut(" ".join(p.argv), 200),
                       {"argv": p.argv}, firm=firm)
    reason = f"run {redact_cut(' '.join(p.argv), 200)} ({what})"
    if person:
        reason += f"; a person weighs: {'; '.join(person)}"
    # a free-form command is always a person's decision, whatever the argv
    return Plan("run_command", True, reason, "high", redact_cut(" ".join(p.argv), 200),
                (tuple(p.argv),), params={"argv": p.argv})


def _disabled_too(unit: str, ctx: PlanContext
                  ) -> tuple[str | None, tuple[str, ...], bool]:
    """(why never, what the person is shown, whether the refusal holds whatever the host
    says) for the units ``systemctl disable UNIT`` disables with it: those its [Install]
    Also= names, and theirs. Each is judged as if it were disabled itself (a protected one
    refuses the whole disable), and each is named."""
    if ctx.also is None:
        why = ctx.also_problem or ctx.facts_problem
        return (f"which units a disable of {unit} disables too (its [Install] Also=) could "
                f"not be read {f'({redact_cut(why, 160)})' if why else '(no host was asked)'}"
                ": a protected one among them is never disabled, so none is without knowing",
                (), False)
    person: list[str] = []
    for other, named_by in ctx.also:
        how = f"disabling {unit} also disables {other} (Also={other} in {named_by})"
        _, verdict = judge_unit_on_host("disable", other, ctx)
        if verdict.refused:
            return f"{how}: {verdict.refused}", (), verdict.firm
        person += [how, *(f"{how}: {p}" for p in verdict.person)]
    return None, tuple(person), False


def systemctl_target(argv: list[str] | tuple[str, ...]) -> tuple[str, str] | None:
    """``systemctl [options] VERB UNIT`` -> (verb, full unit name); None for anything else
    (the command policy has already refused more than one unit or a pattern)."""
    if not argv or argv[0] != "systemctl":
        return None
    words = systemctl_operands(list(argv[1:]))
    if words is None or len(words) != 2:
        return None
    unit = normalise_unit(words[1])
    return (words[0], unit) if unit else None


def facts_needed(kind: str, params: dict[str, Any]) -> FactsNeeded:
    """The host facts a plan of this proposal depends on (pure: names only, nothing read)."""
    if kind in ("restart_unit", "start_unit", "reset_failed_unit"):
        unit = normalise_unit(params.get("unit")) if isinstance(params.get("unit"), str) \
            else None
        return FactsNeeded(units=(unit,) if unit else ())
    if kind == "run_command" and isinstance(params.get("argv"), list):
        argv = [str(a) for a in params["argv"]]
        target = systemctl_target(argv)
        return FactsNeeded(units=(target[1],) if target else (), pid=kill_pid(argv),
                           also_of=target[1] if target and target[0] == "disable" else None)
    if kind == "kill_process":
        pid = params.get("pid")
        if isinstance(pid, str) and _PID_TEXT.match(pid):
            pid = int(pid)
        return FactsNeeded(pid=pid if isinstance(pid, int) and pid > 0 else None)
    if kind == "vacuum_journal":
        # only a vacuum below the floor depends on how big the journal is
        checked, _ = checked_parameters(kind, params)
        return FactsNeeded(journal=checked is not None
                           and vacuum_person(checked.max_size, None) is not None)
    if kind == "nix_rollback_generation":
        return FactsNeeded(os=True, generations=True)
    if kind == "update_packages":
        return FactsNeeded(os=True, package_programs=True)
    if kind == "clean_directory" and isinstance(params.get("path"), str) \
            and params["path"].startswith("/") and "\x00" not in params["path"]:
        return FactsNeeded(mount_of=posixpath.normpath(params["path"]))
    spec = CATALOG.get(kind)
    return FactsNeeded(os=spec is not None and spec.needs_os)


@dataclass(frozen=True)
class ActionSpec:
    params: type[_Params]
    plan: Callable[[Any, PlanContext], Plan]
    #: its plan depends on the host's OS (PlanContext.os_id)
    needs_os: bool = False


CATALOG: dict[str, ActionSpec] = {
    "restart_unit": ActionSpec(UnitParams, _unit_action("restart", True)),
    "start_unit": ActionSpec(UnitParams, _unit_action("start", True)),
    "reset_failed_unit": ActionSpec(UnitParams, _unit_action("reset-failed", False)),
    "vacuum_journal": ActionSpec(VacuumParams, _vacuum),
    "nix_gc": ActionSpec(GcParams, _nix_gc, needs_os=True),
    "nix_rollback_generation": ActionSpec(NoParams, _rollback, needs_os=True),
    "kill_process": ActionSpec(KillParams, _kill),
    "clean_directory": ActionSpec(CleanParams, _clean),
    "update_packages": ActionSpec(NoParams, _update, needs_os=True),
    "nixos_rebuild_switch": ActionSpec(NoParams, _rebuild, needs_os=True),
    "reboot": ActionSpec(NoParams, _reboot),
    "run_command": ActionSpec(CommandParams, _command),
}
assert set(CATALOG) == set(ACTION_KINDS), "the catalog and the proposable kinds must agree"

_PID_TEXT = re.compile(r"^[0-9]+$")


#: how many places one problem names before "and N more"
_PLACES_SHOWN = 5


def validation_problems(exc: ValidationError, whole: str = "parameters") -> str:
    """What pydantic found wrong, each problem said once: one message for many places (every
    item of a list of the wrong type) names them together instead of repeating itself."""
    places: dict[str, list[str]] = {}
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or whole
        places.setdefault(error["msg"], []).append(where)
    said = []
    for message, where in places.items():
        more = len(where) - _PLACES_SHOWN
        named = ", ".join(where[:_PLACES_SHOWN]) + (f" and {more} more" if more > 0 else "")
        said.append(f"{named}: {message}")
    return "; ".join(said)


def checked_parameters(kind: str, params: dict[str, Any]) -> tuple[Any, str | None]:
    """(the catalog's parameters of ``kind``, None) or (None, the problems found in them):
    the one check of a proposal's parameters, when it is made and when it is planned."""
    if kind == "kill_process" and isinstance(params.get("pid"), str) and _PID_TEXT.match(
            params["pid"]):
        params = {**params, "pid": int(params["pid"])}
    try:
        return CATALOG[kind].params.model_validate(params), None
    except ValidationError as exc:
        return None, validation_problems(exc)


def same_fix(kind: str, params: Any) -> str:
    """What tells one fix from another, whatever its spelling: the parameters the catalog
    reads of it (a pid as text or as a number, a default written or left out), a unit by
    its canonical name (``nginx`` is ``nginx.service``); parameters the catalog refuses, as
    they are."""
    checked, _ = (checked_parameters(kind, params) if kind in CATALOG and isinstance(
        params, dict) else (None, None))
    if checked is None:
        return json.dumps([kind, params], sort_keys=True, default=repr)
    values = checked.model_dump()
    if isinstance(checked, UnitParams):
        values["unit"] = normalise_unit(checked.unit) or checked.unit
    return json.dumps([kind, values], sort_keys=True)


def firm_refusal(kind: str, params: dict[str, Any], protected: Sequence[str] = (),
                 clean_paths: Sequence[str] = ()) -> str | None:
    """Why the policy refuses this proposal whatever the host says (:attr:`Plan.firm`:
    its parameters' shape, an argv the command policy refuses, an invalid or protected
    unit name, a path outside ``clean_paths``), or None: said when the proposal is made,
    so that the model can still correct it. It is the plan itself, made with no host facts:
    a refusal no fact lifts is the same refusal without any, and there is no second copy
    of the policy to drift from the one the plan applies."""
    plan = plan_action(kind, params, PlanContext(protected=tuple(protected),
                                                 clean_paths=tuple(clean_paths)))
    return plan.reason if not plan.allowed and plan.firm else None


def plan_action(kind: str, params: dict[str, Any], ctx: PlanContext) -> Plan:
    """The policy's plan for one proposed action; refused plans say why."""
    spec = CATALOG.get(kind)
    if spec is None:
        return _refuse(kind, f"unknown action {kind!r}; actions: {', '.join(sorted(CATALOG))}",
                       firm=True)
    checked, problems = checked_parameters(kind, params)
    if problems is not None:
        return _refuse(kind, f"invalid parameters: {problems}", params=params, firm=True)
    plan = spec.plan(checked, ctx)
    if not plan.allowed or kind in _GUARDS_ITS_OWN_COMMAND:
        return plan
    # every planned argv also passes the command policy: the stricter of the two wins, and
    # where the policy is the stricter, its reason is the person's to read too
    risk, raised = plan.risk, []
    for argv in plan.commands:
        decision = check_command(list(argv), "remediate", ctx.protected)
        if not decision.allowed:
            return _refuse(kind, decision.reason, plan.subject, plan.params, firm=True)
        if riskier(decision.risk, risk):
            risk, raised = decision.risk, [*raised, decision.reason]  # type: ignore[assignment]
    if not raised:
        return plan
    return replace(plan, risk=risk, reason=f"{plan.reason} ({'; '.join(raised)})")


#: clean_directory's `sh -c` is never a free command: it is our constant script
#: (safety/clean_script.py), the path only its argument, and the script itself refuses a
#: directory that is not really inside the configured ones
_GUARDS_ITS_OWN_COMMAND = frozenset({"clean_directory"})
RISK_ORDER: tuple[str, ...] = ("none", "low", "medium", "high")


def riskier(now: str, was: str) -> bool:
    """Whether risk ``now`` is higher than ``was`` (an unknown one counts as highest)."""
    def rank(risk: str) -> int:
        return RISK_ORDER.index(risk) if risk in RISK_ORDER else len(RISK_ORDER)
    return rank(now) > rank(was)
