"""Decide, approve, execute at most once, verify, escalate.

Every decision lands in the audit log with its reason. An action runs only after it moved
``approved -> executing`` in one transaction; a crash after that never runs it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from ..aio import KeyedLocks
from ..config import Settings
from ..errors import (
    AiSysadminError,
    NotStarted,
    StoreError,
    StoreRefused,
    SudoRefused,
    TransportError,
)
from ..hosts.osinfo import OsInfo
from ..hosts.sudo import needs_password, sudo_refused
from ..hosts.transport import LocalTransport, Transport, unanswered
from ..monitor import parsers
from ..monitor.findings import automation_may_touch
from ..monitor.rules import RULES_BY_NAME
from ..orchestrator.checker import VERIFY_REASON, CheckReport, HostChecker
from ..redact import redact, redact_cut
from ..safety.autonomy import Outcome, decide
from ..safety.catalog import Plan, PlanContext, facts_needed, plan_action, riskier
from ..safety.unit_facts import UnitFacts, last_run
from ..safety.units import unit_problem
from ..store import Action, ActionStore, HostStore, Incident, IncidentStore
from ..store.actions import (
    ENDED,
    INTERRUPTED,
    UNVERIFIED,
    AlreadyDecided,
    DecidedMeanwhile,
    PlanChanged,
    holder_gone,
    this_process,
)
from ..store.incidents import LIVE_STATES
from ..store.refused import refused
from .host_facts import Self, own_identity, read_facts, read_run

log = logging.getLogger("ai_sysadmin.actions")

#: seconds a command that only shows actions waits for another process's write lock before
#: it shows them as stored, untidied: a daemon's write holds it for milliseconds, a backup
#: or a sqlite3 shell for as long as it likes
TIDY_WAIT = 1.0


class _NothingRan(AiSysadminError):
    """A claimed fix whose first command sudo itself refused: nothing of it ran, so it may
    wait for a person again rather than end failed."""


class _Failed(AiSysadminError):
    """A claimed fix that failed once it started (a command's exit status, sudo's refusal
    of a later command, a connection lost mid-command): ``outputs``, what each command that
    ran said, as a fix that succeeded keeps it, kept with the failure; one that was sent
    and never said how it ended (past its time, its connection lost) with no exit status
    (``returncode`` None) and the ``error`` it ended with."""

    def __init__(self, message: str, outputs: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.outputs = outputs


class NotPending(StoreError):
    """A person's answer to an action that no longer waits for one (decided, running or
    ended): it changes nothing, and its message says whose answer stands. Final for that
    answer, unlike a yes that leaves the action waiting for approval again."""


def _shown(argv: list[str]) -> str:
    """An argv as a person reads it in an error: a constant script is named, not quoted."""
    if len(argv) > 2 and argv[1] == "-c":
        return " ".join([argv[0], "-c", "SCRIPT", *argv[3:]])[:300]
    return " ".join(argv)[:300]


def _also_said(stderr: str) -> str:
    """What a command that failed last said besides its exit, for a message ('' where
    nothing): sudo's warning ("unable to resolve host X") beside a ``sudo -l`` that says no
    by its exit alone."""
    lines = stderr.strip().splitlines()
    return f"; it said: {redact_cut(lines[-1].strip(), 200)}" if lines else ""


def _changed(action: Action, judged: Judged) -> str | None:
    """How what ``judged`` runs, or the process it signals, differs from what the action was
    decided (and shown) with; None when it is the same."""
    commands = [list(c) for c in judged.plan.commands]
    if commands != [list(c) for c in action.plan.get("commands", [])]:
        return f"what it would run changed since it was decided, to {commands}"
    if "process" not in action.plan and "process" not in judged.record:
        return None  # it signals no process (a kill, or a run_command that is one)
    # a PID is reused: the same argv may now signal another process
    was, now = action.plan.get("process"), judged.record.get("process")
    if was is None or now is None or was != now:
        return (f"the process is not the one it was decided on: it was {_who_is(was)}, "
                f"it is now {_who_is(now)}")
    return None


def _unread(judged: Judged) -> str:
    return (f"what the policy needs could not be read on the host ({judged.unread}), and "
            f"without it: {judged.plan.reason}")


def _at(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "an unknown time"


def decided_by(action: Action) -> str | None:
    """Who decided ``action`` and when, and how far it got since, as the person who comes
    second is told: "approved by alice at 2026-12-05 16:02:11, running since 16:02:12", or
    "approved by the policy at ..." for one the autonomy level let run. None where nobody
    decided it so (an expiry, a withdrawal: its history says why)."""
    went_ahead = action.state in ("approved", "executing", "succeeded", "failed")
    if action.decided_by is not None:
        when = f"{action.decided_by} at {_at(action.decided_at)}"
    elif went_ahead:  # the policy approved it as it was proposed
        when = f"the policy at {_at(action.created_at)}"
    else:
        return None
    if action.state == "rejected":
        why = action.decision_reason
        return f"rejected by {when}" + (f" ({why})" if why and why != "rejected" else "")
    if action.state == "approved":
        return f"approved by {when}, not started yet"
    if action.state == "executing":
        return f"approved by {when}, running since {_at(action.started_at)}"
    if action.state == "failed" and str((action.result or {}).get("error", "")).startswith(
            INTERRUPTED):
        # its process ended while it ran: whether its command ran, nobody here knows
        return (f"approved by {when}; it started at {_at(action.started_at)} and was "
                "interrupted (its process ended before recording its end): whether its "
                "command ran is not known; a person must check")
    if action.state == "failed" and action.ran_at is not None and str(
            (action.result or {}).get("verification", "")).startswith("cut off"):
        # a stop's, or a process that ended (UNVERIFIED): what ran is on record
        return (f"approved by {when}; its commands ran at {_at(action.ran_at)}, each to exit "
                "0, and its verification was cut off: whether it held, " + (
                    "its incident's checks tell" if action.incident_id is not None else
                    "no incident's checks tell: a person must look"))
    if action.state in ("succeeded", "failed"):
        return f"approved by {when}; it ran and {action.state} at {_at(action.finished_at)}"
    return None


def _who_is(process: dict[str, Any] | None) -> str:
    if not process:
        return "unknown"
    return (f"{process.get('comm')} in {process.get('cgroup') or 'no cgroup'}, started at "
            f"tick {process.get('started') or '?'}")


def _stat_start(stat: str | None) -> str | None:
    """/proc/PID/stat's start time in clock ticks since boot: with the PID, a name no later
    process takes over within a boot."""
    if not stat:
        return None
    try:
        return str(parsers.proc_start_ticks(stat))
    except parsers.ParseError:
        return None


#: what tells one run of a unit from the next: systemd gives each start an InvocationID, and
#: counts its own restarts (Restart=) in NRestarts
_RUN_NOW = ("Id", "ActiveState", "SubState", "InvocationID", "NRestarts")


class _Run(NamedTuple):
    """One run of a unit: its InvocationID and systemd's restart count then."""

    invocation: str
    restarts: str


def _started_again(action: Action, was: _Run | None, now: _Run | None) -> str:
    unit = action.plan.get("verify_unit_active")
    said = f"{unit} did not stay up: it was started again meanwhile"
    if was is not None and now is not None and was.restarts != now.restarts:
        said += f" (systemd restarted it: NRestarts {was.restarts} -> {now.restarts})"
    return said


def _reads(incident: Incident | None) -> tuple[str, ...] | None:
    """What a check made for ``incident`` reads afresh: what its rule judges from (the rest
    may be a recent reading kept); None, all of it, where the rule is not known."""
    rule = RULES_BY_NAME.get(incident.rule) if incident is not None else None
    return rule.requires if rule is not None else None


def _gone(incident: Incident | None, report: CheckReport, began: float,
          ended: float) -> tuple[bool, str]:
    """Whether ``report`` shows the incident's problem gone after a fix that ran from
    ``began`` to ``ended``, and in what words. A rule that judges by what happened after the
    fix says so (a burst's earlier errors stay in its window for minutes after the fix that
    ended them); otherwise its finding must be gone, from a check that judged it."""
    if incident is None:
        return True, "finding gone"
    rule = RULES_BY_NAME.get(incident.rule)
    if rule is not None and report.context is not None:
        over = rule.over_since(report.context, incident.subject, began, ended)
        if over is not None:
            return over, rule.over_words[0 if over else 1].format(subject=incident.subject)
    gone = report.judged(incident.rule, incident.subject) and all(
        f.fingerprint != incident.fingerprint for f in report.findings)
    return gone, "finding gone" if gone else "finding still present"


@dataclasses.dataclass(frozen=True)
class Rehearsal:
    """What a person's approve would do now: ``lines``, the exact argvs it would run, or
    ``would_not``, why it would run nothing (and what it would do instead)."""

    action: Action
    lines: list[list[str]]
    would_not: str | None
    #: approve would leave it pending, approvable again (a host that does not answer, other
    #: commands than were shown), as opposed to ending it or refusing the yes
    waits_again: bool = False


@dataclasses.dataclass(frozen=True)
class Judged:
    """The policy's plan, and the record of it an action keeps: the plan plus the identity of
    the process it signals, as it was judged."""

    plan: Plan
    record: dict[str, Any]
    #: why a fact the policy needed could not be read on the host, where the plan is refused
    #: for want of it (or while it was missing): the refusal may not stand once it answers.
    #: None for a refusal no fact lifts (``Plan.firm``: a protected unit by its name)
    unread: str | None = None


@dataclasses.dataclass(frozen=True)
class Decision:
    """The policy's decision on a proposal (:meth:`Executor.decision`): what
    :meth:`Executor.propose` records, and ``policy check`` prints."""

    judged: Judged
    #: the autonomy table's outcome, and its words
    outcome: Outcome
    autonomy_reason: str
    #: the action's state and reason as recorded
    state: str
    reason: str


@dataclasses.dataclass(frozen=True)
class _Stop:
    """Why the policy, judging again on the host's facts now, runs nothing of an action
    decided before (:meth:`Executor._stop_now`): ``why``, in words that follow "not run"."""

    why: str
    #: the policy refuses it now: it ends refused; otherwise it waits for a person again
    refused: bool = False
    #: the verdict now, which the person is then shown and approves (its risk, reason and
    #: what it runs); None: the one they were shown stands (the facts could not be read)
    shown: Judged | None = None
    #: the autonomy level now only records actions (observe): it ends recorded, and nobody
    #: is asked to approve what could never run
    recorded: bool = False


@dataclasses.dataclass(frozen=True)
class _Kept:
    """The end of a claimed action that the store refused, kept (:meth:`Executor._end`)."""

    #: writes it as it would have been (verifying first, for a fix whose commands ran)
    record: Callable[[], Awaitable[Action]]
    #: what it did, in words a person reads should the end be lost (a stop)
    what: str


@dataclasses.dataclass(frozen=True)
class Progress:
    """One step of a fix as it happens, told to :attr:`Executor.progress_listeners` (a
    person's ``approve`` says it on stderr; the library says nothing itself): ``running`` a
    command, it ``ran`` (``returncode``), ``verifying`` the fix by checking the host again
    for at most ``seconds`` (the finding gone for ``settle_seconds``)."""

    action_id: int
    host: str
    step: str
    #: the command as a person reads it (a constant script named, not quoted)
    command: str = ""
    returncode: int | None = None
    seconds: float | None = None
    settle_seconds: float | None = None


_STATE_FOR = {"refuse": "refused", "record": "recorded", "approval": "pending",
              "execute": "approved"}


class Executor:
    def __init__(
        self,
        settings: Settings,
        store: IncidentStore,
        transports: dict[str, Transport],
        checker_for: Callable[[str], HostChecker] | None = None,
        *,
        reach: Callable[[str], Awaitable[Transport | None]] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.actions = ActionStore(store.db)
        self.transports = transports
        #: the host's transport, built for its registration now (:meth:`Runtime.reach`:
        #: renewed, with its checker, where it was added again since); None: not managed
        #: here. Without one, the transports given, as they are
        self._reach = reach or self._given
        self._checkers: dict[str, HostChecker] = {}
        self.checker_for = checker_for or self._own_checker
        self._locks = KeyedLocks()
        #: actions whose commands ran in this process: said so when their end is not recorded
        self._ran_here: set[int] = set()
        #: whether this process lives on to record an end the store refused (a daemon, not
        #: an `approve` that exits): it keeps the end in memory and :meth:`record_ends` writes
        #: it once the store takes writes again
        self.keeps_ends = False
        #: the ends of actions this process ran that the store refused (a full disk): the
        #: action shows executing until one is recorded; none of them runs anything again
        self._unended: dict[int, _Kept] = {}
        #: approved actions whose start the store refused (a full disk) before anything of
        #: them ran, and when first: they stay approved, this living process's, which no
        #: housekeeping would take; :meth:`start_again` tries them once it takes writes
        #: (the time is monotonic: only the log says it)
        self._unstarted: dict[int, float] = {}
        #: what a process that ended decided (an approved action it left, a proposal it
        #: recorded and this one decides): looked at again before it runs
        self._left: set[int] = set()
        #: who the assistant is, here (its cgroup's unit, its PIDs) and on other hosts: it does
        #: not change while this process lives
        self._own: dict[bool, Self] = {}
        #: told how each action that ran ended (succeeded or failed), or that it was not run
        #: again because it kept being needed (escalated), once its state is recorded: the
        #: knowledge base learns from it
        self.outcome_listeners: list[Callable[[Action], Awaitable[None]]] = []
        #: told each step of a fix as it happens (:class:`Progress`): a command run, its exit
        #: status, the verification that follows
        self.progress_listeners: list[Callable[[Progress], None]] = []

    def _progress(self, step: Progress) -> None:
        """``step`` to the listeners; one that fails is logged: the fix goes on."""
        for listener in self.progress_listeners:
            try:
                listener(step)
            except Exception:
                log.exception("action %d: a listener of its progress failed", step.action_id,
                              extra={"action": step.action_id})

    @property
    def _ttl(self) -> float:
        """Seconds a person has to answer an action that waits for one."""
        return self.settings.safety.approval_ttl_hours * 3600

    async def _given(self, host: str) -> Transport | None:
        return self.transports.get(host)

    def _own_checker(self, host: str) -> HostChecker:
        if host not in self._checkers:
            self._checkers[host] = HostChecker(self.transports[host], self.settings, self.store,
                                               consumer="executor")
        return self._checkers[host]

    # -- policy -------------------------------------------------------------------------------
    def _last_seen_os(self, host: str) -> OsInfo | None:
        """The OS of the host's last check here (None: no check yet, as in a fresh
        ``approve``): where the host cannot be asked now."""
        checker = self._checkers.get(host) or (
            self.checker_for(host) if host in self.transports else None)
        snap = checker.previous if checker else None
        return snap.os if snap else None

    def _incident(self, incident_id: int | None) -> Incident | None:
        if incident_id is None:
            return None
        try:
            return self.store.get(incident_id, history=0)
        except (StoreError, AiSysadminError):
            return None

    def _incident_unit(self, incident: Incident | None) -> str | None:
        if incident is None:
            return None
        # failed_unit, crash_loop, unit_load_error name the unit, with its type suffix; a
        # journal burst's source may be an identifier any user chose (`logger -t x.service`)
        rule = RULES_BY_NAME.get(incident.rule)
        if rule is None or not rule.subject_is_unit:
            return None
        subject = incident.subject
        return subject if unit_problem(subject) is None and automation_may_touch(subject) \
            else None

    async def plan_context(self, host: str, kind: str, params: dict[str, Any],
                           incident_id: int | None = None) -> PlanContext:
        """What the policy needs, read fresh from the host: the units or process the action
        touches, the unit the incident is about, and who the assistant itself is."""
        transport = await self._reach(host)
        facts = await read_facts(transport, self.settings, facts_needed(kind, params))
        here = isinstance(transport, LocalTransport)
        own = self._own.get(here) or self._own.setdefault(
            here, own_identity(self.settings, transport))
        os_info = facts.os or self._last_seen_os(host)
        incident = self._incident(incident_id)
        return PlanContext(
            os_id=os_info.id if os_info else None, os_like=os_info.id_like if os_info else (),
            protected=tuple(self.settings.safety.protected_units),
            clean_paths=tuple(self.settings.safety.clean_paths),
            facts_read=facts.read, facts_problem=facts.problem, units=facts.units,
            process=facts.process,
            incident_unit=self._incident_unit(incident),
            incident_rule=incident.rule if incident else None,
            incident_subject=incident.subject if incident else None,
            journal_bytes=facts.journal_bytes, path_mount=facts.path_mount,
            path_also=facts.path_also,
            mount_problem=facts.mount_problem,
            own_units=own.units, own_pids=own.pids,
            incident_opened_at=incident.opened_at if incident else None,
            generations=facts.generations, generations_problem=facts.generations_problem,
            package_programs=facts.package_programs, ostree_booted=facts.ostree_booted,
            also=facts.also, also_problem=facts.also_problem,
        )

    async def plan(self, host: str, kind: str, params: dict[str, Any],
                   incident_id: int | None = None) -> Plan:
        return (await self.judge(host, kind, params, incident_id)).plan

    async def judge(self, host: str, kind: str, params: dict[str, Any],
                    incident_id: int | None = None) -> Judged:
        """The plan, and what the action records of it (with the judged process)."""
        ctx = await self.plan_context(host, kind, params, incident_id)
        plan = plan_action(kind, params, ctx)
        record = plan.to_dict()
        if plan.allowed and ctx.process is not None:
            # a kill_process, or a run_command that is a kill: what it signals is this one
            proc = ctx.process.process
            record["process"] = {"pid": proc.pid, "comm": proc.comm, "cgroup": proc.cgroup,
                                 "started": await self._started(host, proc.pid)}
        # a refusal the facts would not lift (a protected unit by its name) stays one
        unread = ctx.facts_problem if not plan.allowed and not plan.firm else None
        return Judged(plan, record, unread)

    async def _started(self, host: str, pid: int) -> str | None:
        transport = await self._reach(host)
        if transport is None:
            return None
        try:
            return _stat_start(await transport.read_file(f"/proc/{pid}/stat",
                                                          self.settings.command_timeout))
        except TransportError:
            return None  # judged by its cgroup alone: still a different unit is seen

    async def propose(self, host: str, kind: str, params: dict[str, Any], *,
                      incident_id: int | None = None, proposal_id: int | None = None,
                      actor: str = "agent") -> Action:
        """The policy's decision on one proposal, recorded as an action. ``actor``: who
        proposed it; the decision is the policy's, and the audit says so."""
        if await asyncio.to_thread(HostStore(self.store.db).removed, host):
            return await self._withdrawn(host, kind, params, incident_id, proposal_id, actor)
        decided = await self.decision(host, kind, params, incident_id)
        judged, plan, state = decided.judged, decided.judged.plan, decided.state
        ttl = self._ttl if state == "pending" else None

        def record() -> Action:
            # a pending action and its incident's wait are one write: nobody (a person's
            # listing, a restarted daemon) sees the one without the other
            with self.store.db.transaction():
                if proposal_id is None:  # a stored proposal has its own audit row, by its actor
                    self.store.audit(actor, "proposal.recorded", f"incident:{incident_id}",
                                     f"{kind} {params}")
                action = self.actions.create(
                    incident_id=incident_id, proposal_id=proposal_id, host=host, kind=kind,
                    params=plan.params or params, subject=plan.subject, risk=plan.risk,
                    plan=judged.record, outcome=decided.outcome, reason=decided.reason,
                    state=state, ttl_seconds=ttl, actor="policy")
                if action.state == "pending" and incident_id is not None:
                    self._incident_to(incident_id, "awaiting_approval",
                                      f"action {action.id} waits for approval: {kind}")
            return action

        action = await asyncio.to_thread(record)
        log.info("action %d %s: %s %s (risk %s): %s", action.id, action.state, kind, params,
                 plan.risk, action.reason,
                 extra={"action": action.id, "incident": incident_id, "state": action.state})
        return action

    async def decision(self, host: str, kind: str, params: dict[str, Any],
                       incident_id: int | None = None) -> Decision:
        """The policy's decision on a proposal, on the host's facts now: what
        :meth:`propose` records, and ``policy check`` prints."""
        judged = await self.judge(host, kind, params, incident_id)
        plan = judged.plan
        # refused for want of a fact the host did not give: a person decides, once it answers
        verdict = decide(self.settings.autonomy_level, plan.risk,
                         None if plan.allowed or judged.unread else plan.reason)
        state = _STATE_FOR[verdict.outcome]
        # a refusal's reason already holds the plan's: say it once
        reason = verdict.reason if not plan.allowed and not judged.unread \
            else f"{verdict.reason}; {plan.reason}"
        if judged.unread and state == "pending":
            # the plan's reason says why it is not run without the fact; the person asked
            # must read that it is theirs once the host answers, not that it was refused
            reason = (f"it waits for a person until the host answers: {_unread(judged)}; "
                      "a yes judges it again on the host's facts then")
        if state == "approved" and self.settings.executor.dry_run:
            state = "recorded"
            reason = (f"dry run (executor.dry_run): would run "
                      f"{self._would_run(host, judged.record)}; {reason}")
        return Decision(judged, verdict.outcome, verdict.reason, state, reason)

    async def _withdrawn(self, host: str, kind: str, params: dict[str, Any],
                         incident_id: int | None, proposal_id: int | None,
                         actor: str) -> Action:
        """A proposal for a host removed while it was investigated: decided (at most once,
        like any) as not needed, the host never asked and no person asked to approve."""
        plan = plan_action(kind, params, PlanContext())
        reason = f"{host} is no longer managed: not decided, nothing runs"

        def record() -> Action:
            with self.store.db.transaction():
                if proposal_id is None:
                    self.store.audit(actor, "proposal.recorded", f"incident:{incident_id}",
                                     f"{kind} {params}")
                return self.actions.create(
                    incident_id=incident_id, proposal_id=proposal_id, host=host, kind=kind,
                    params=plan.params or params, subject=plan.subject, risk=plan.risk,
                    plan=plan.to_dict(), outcome="record", reason=reason, state="not_needed",
                    actor="policy")

        action = await asyncio.to_thread(record)
        log.info("action %d not_needed: %s %s: %s", action.id, kind, params, reason,
                 extra={"action": action.id, "incident": incident_id, "state": "not_needed"})
        return action

    async def decide_and_act(self, incident_id: int, host: str,
                             proposals: list[dict[str, Any]], *, left: bool = False
                             ) -> list[Action]:
        """An investigation's proposals: each decided by the policy, the allowed ones run;
        the actions this decided, as they ended (or wait). ``left``: recorded by a process
        that ended (its finding is looked for again)."""
        decided = []
        for proposal in proposals:
            params = proposal.get("parameters") or {}
            try:
                action = await self.propose(
                    host, str(proposal["kind"]), dict(params) if isinstance(params, dict) else {},
                    incident_id=incident_id, proposal_id=proposal.get("id"))
            except AlreadyDecided as exc:
                # its action is someone else's to run: a proposal yields at most one action
                log.info("%s: not decided again", exc, extra={"incident": incident_id})
                continue
            if action.state == "approved":
                if left:
                    self._left.add(action.id)
                action = await self.run(action.id)
            decided.append(action)
        return decided

    async def decide_undecided(self) -> dict[int, list[Action]]:
        """After a restart: proposals recorded but never decided (at most once each: the
        action and the proposal's new state are written in one transaction); the actions
        this decided, by incident, as :meth:`decide_and_act` returns them."""
        decided: dict[int, list[Action]] = {}
        for proposal in await asyncio.to_thread(self.store.undecided_proposals):
            decided.setdefault(proposal["incident_id"], []).extend(await self.decide_and_act(
                proposal["incident_id"], proposal["host"], [proposal], left=True))
        return decided

    def _incident_to(self, incident_id: int, state: str, reason: str) -> None:
        try:
            self.store.transition(incident_id, state, "executor", reason)
        except (StoreError, AiSysadminError) as exc:
            if (why := refused(exc)) is not None:  # a full disk: the incident's record is lost
                log.warning("incident %d is not moved to %s (%s): %s", incident_id, state,
                            reason, why, extra={"incident": incident_id,
                                                "event": "store_refused"})
                return
            # the incident may have resolved meanwhile: the action's own record is what matters
            log.info("incident %d stays as it is: %s", incident_id, exc)

    # -- people ---------------------------------------------------------------------------------
    async def approve(self, action_id: int, who: str, reason: str = "") -> Action:
        """A person's yes: check the policy and the host again, then run it (at most once).

        Cut off before the action was claimed (Ctrl-C, a host that does not answer), it is
        pending again and can be approved again; cut off while it ran, it failed. Answered
        by someone else while this one looked at the host (another terminal's ``approve``
        or ``reject``, the daemon expiring or withdrawing it), it is theirs, and the error
        says whose and when."""
        # a yes that comes after the TTL finds the action expired; one to an action whose
        # approval died with its process finds it pending again
        self.tidy()
        action = self.actions.get(action_id)
        if action.state != "pending":
            raise NotPending(self._not_pending(action))
        try:
            ended = await self._decide(action, who, reason)
        except DecidedMeanwhile as exc:
            # every decision here is taken on the action as pending (`expect`): one found
            # decided since is not overruled, and this yes ran nothing
            raise NotPending(self._not_pending(self.actions.get(action_id))) from exc
        return ended if ended is not None else await self.run(action_id, who, by_person=True)

    async def _decide(self, action: Action, who: str, reason: str) -> Action | None:
        """A person's yes to the pending ``action``, judged on the host's facts now: the
        action as it ends without running (refused, shown again, not needed), or None where
        it is approved, this process's to run. Each move requires it still pending."""
        action_id = action.id
        if self.settings.autonomy_level == "observe":
            return self._ended(self.actions.move(
                action_id, "refused", who, "the autonomy level is observe: nothing runs",
                expect="pending"))
        judged = await self.judge(action.host, action.kind, action.params, action.incident_id)
        plan = judged.plan
        if judged.unread is not None:
            return self.actions.replan(
                action_id, action.plan, action.subject, action.risk,
                f"not run, nothing ran: {_unread(judged)}; it can be approved again", who,
                self._ttl)
        if not plan.allowed:
            why = f"refused on approval by the policy: {plan.reason}"
            return self._ended(self.actions.move(action_id, "refused", who, why,
                                                 expect="pending"), again=why)
        if (change := _changed(action, judged)) is not None:
            # the person saw other commands, or another process: they approve what runs
            # now, or nothing runs
            return self.actions.replan(
                action_id, judged.record, plan.subject, plan.risk,
                f"not run: {change} (risk {plan.risk}: {plan.reason}); approve again to run "
                "that", who, self._ttl)
        if action.incident_id is not None and not await self._finding_present(action):
            now = self.actions.get(action_id)
            if now.state == "not_needed":  # the check that found it gone resolved its
                return now  # incident, which withdrew it, saying so
            # its incident waited for this fix alone: it is open again, not awaiting an
            # approval nobody can give
            return self._ended(self.actions.move(
                action_id, "not_needed", who, "the finding is gone: no longer needed, not "
                "run", expect="pending"))
        try:
            # the yes is to the plan judged above: another terminal's `approve` may have
            # replanned it meanwhile (the host changed while this one looked), and what it
            # runs now nobody who said yes has seen
            self.actions.move(action_id, "approved", who, reason or "approved",
                              expect="pending", plan=action.plan)
        except PlanChanged as exc:
            return self._plan_changed(action, who, exc)
        return None

    def _plan_changed(self, action: Action, who: str, exc: PlanChanged) -> Action:
        """``who``'s yes to ``action`` refused (:class:`PlanChanged`): it waits, as it is
        now, for a person who sees what it runs now; its history says so, in the words
        ``approve`` prints."""
        commands = [list(c) for c in exc.plan.get("commands", [])]
        why = (f"not run: what it would run changed while {who} was approving it, to "
               f"{commands} (another approval replanned it meanwhile); nobody approved "
               "that: approve again to run it")
        self.store.audit(who, "action.approval_stale", f"action:{action.id}", why)
        log.info("action %d not approved by %s: %s", action.id, who, why,
                 extra={"action": action.id, "incident": action.incident_id})
        return self.actions.get(action.id)

    def _cut_off(self, action_id: int, exc: BaseException) -> str | None:
        """A run of this process ended by an exception (a Ctrl-C or a stop is a
        cancellation): an action a person approved but that was not claimed waits for a
        person again, as does one the policy approved that failed so (one a stop cut off
        stays approved: the policy's decision, run at the next start); one it was running
        failed, since nobody knows whether its command ran. What the store refused to
        record of it (a full disk) is logged, and returned: what a person must know."""
        stopped = isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt))
        why = "cancelled" if stopped else redact(f"{type(exc).__name__}: {exc}")[:200]
        action = self.actions.get(action_id)
        if action.owner != this_process():
            return None
        try:
            self._settle_cut_off(action, stopped, why)
        except StoreError as again:  # decided meanwhile: the exception stays the news
            if (refusal := refused(again)) is None:
                return None
            # the machine refused it: the action shows approved or executing until a daemon
            # settles what this process left (its next housekeeping once this one ended), and
            # that it ran is in this line alone
            ran = "nothing of it ran" if action.state == "approved" else \
                "its commands ran" if action_id in self._ran_here else \
                "it was running: its commands may have run"
            lost = (f"action {action_id} on {action.host} ({action.kind} {action.subject}): "
                    f"{ran}, but its end is not recorded: {refusal}; it shows {action.state} "
                    f"until a daemon settles it after this process ends; a person must check "
                    f"{action.host}")
            log.error("%s", lost, extra={"action": action_id, "incident": action.incident_id,
                                         "event": "outcome_not_recorded"})
            return lost
        return None

    def _end_kept(self, action: Action, exc: BaseException) -> str:
        """What a person must know of an action whose end the store refused and this process
        keeps (:meth:`_end`), logged: it ran, and its end is recorded later."""
        ran = "its commands ran" if action.id in self._ran_here else "it ran and failed"
        kept = (f"action {action.id} on {action.host} ({action.kind} {action.subject}): {ran}, "
                f"but its end is not recorded yet: {refused(exc)}; it shows executing until "
                "the state database takes writes again, then its end is recorded (it does not "
                "run again)")
        log.error("%s", kept, extra={"action": action.id, "incident": action.incident_id,
                                     "event": "outcome_not_recorded"})
        return kept

    def _start_kept(self, action: Action, exc: BaseException) -> str | None:
        """The line a person reads of an approved action whose start (or a decision before
        it) the store refused, where this process lives on to try it again
        (:meth:`start_again`): nothing of it ran. None where it is not kept (an ``approve``
        that exits: a daemon settles what it left) or ``exc`` is no refusal."""
        if not self.keeps_ends or (why := refused(exc)) is None:
            return None
        kept = (f"action {action.id} on {action.host} ({action.kind} {action.subject}): "
                f"nothing of it ran; its start is not recorded: {why}; it shows approved "
                "and is tried again, judged afresh, once the state database takes writes "
                "again (it runs at most once)")
        if action.id not in self._unstarted:  # not again at each try while it refuses
            self._unstarted[action.id] = time.monotonic()
            log.error("%s", kept, extra={"action": action.id, "incident": action.incident_id,
                                         "event": "start_not_recorded"})
        return kept

    def _settle_cut_off(self, action: Action, stopped: bool, why: str) -> None:
        action_id = action.id
        if action.state == "approved" and (action.decided_by is not None or not stopped):
            by = f"the approval by {action.decided_by}" if action.decided_by else "its run"
            self._back_to_person(action, f"{by} was cut off ({why}) before anything ran; it "
                                 "can be approved again")
        elif action.state == "executing" and self.actions.verified_end(
                action_id, f"stopped before its end was recorded ({why})"):
            # its verification had found it fixed (a stop just after it, while its incident
            # was checked): "verification cut off" lost a fix that worked, and its "fixed"
            pass
        elif action.state == "executing" and stopped and (action.result or {}).get("commands"):
            # it ran; only its verification was stopped (a stop, an upgrade): the incident's
            # own checks tell whether it held, as for any other change on the host, and a
            # person hears of it from them (resolved, or the fix failed), not "fix failed"
            # at every restart
            result = {**(action.result or {}), "verification": f"cut off ({why})"}
            self.actions.left_to_checks(action_id, "executor", "its commands ran; the "
                                        f"verification was cut off ({why}): the next checks "
                                        "tell whether it held", result)
            if action.incident_id is not None:
                self._incident_to(action.incident_id, "open",
                                  f"action {action_id} ran; its verification was cut off")
        elif action.state == "executing":
            failed = self.actions.move(action_id, "failed", "executor", f"cut off while "
                                       f"running ({why}): a person must check",
                                       {**(action.result or {}),
                                        "error": f"cut off while running: {why}"})
            self._escalate(failed, f"action {action_id} was cut off while it ran")

    def _not_pending(self, action: Action) -> str:
        """Why a yes to ``action`` comes too late: its state, who decided it and when, or
        what its history last said of it (withdrawn with its incident, expired)."""
        said = decided_by(action) or self.store.last_said(f"action:{action.id}")
        return f"action {action.id} is {action.state}, not pending" + (
            f": {said}" if said and said != action.state else "")

    def reject(self, action_id: int, who: str, reason: str = "") -> Action:
        """A person's no; one that comes once the action runs, or after another answer (an
        ``approve`` in another terminal that started it, a reject already), is refused
        saying whose answer stands."""
        try:
            rejected = self.actions.move(action_id, "rejected", who, reason or "rejected")
        except DecidedMeanwhile as exc:
            now = self.actions.get(action_id)
            said = decided_by(now) or self.store.last_said(f"action:{action_id}")
            raise NotPending(f"action {action_id} is {now.state}, too late to reject"
                             + (f": {said}" if said and said != now.state else "")) from exc
        log.info("action %d rejected by %s: %s", action_id, who, rejected.decision_reason,
                 extra={"action": action_id, "incident": rejected.incident_id})
        return self._ended(rejected)

    def withdraw(self, reason: str, *, host: str | None = None, incident_id: int | None = None,
                 who: str = "operator") -> list[Action]:
        """Fixes of a host no longer managed, or of an incident a person ended, that wait for
        a person or for their turn: none of them runs now, and their history says ``reason``.
        One claimed to run meanwhile runs (at most once) and is not withdrawn."""
        if host is None and incident_id is None:
            raise ValueError("withdraw the fixes of a host or of an incident, not all of them")
        withdrawn = []
        for action in self.actions.find(("pending", "approved")):
            if (host is not None and action.host != host) or (
                    incident_id is not None and action.incident_id != incident_id):
                continue
            try:
                # a person asked to approve it is told it was taken back
                withdrawn.append(self.actions.move(
                    action.id, "not_needed", who, reason,
                    told="withdrawn" if action.state == "pending" else None))
            except StoreError as exc:  # claimed meanwhile: its run stands
                if refused(exc) is not None:  # a full disk: the caller says it, none is lost
                    raise
                continue
            # the caller may withdraw inside a transaction of its own (`systems remove`)
            self.actions.db.after_commit(functools.partial(
                log.info, "action %d withdrawn: %s", action.id, reason,
                extra={"action": action.id, "incident": action.incident_id}))
        return withdrawn

    def expire(self) -> list[Action]:
        """Approvals nobody answered within their TTL end, and their incidents are open."""
        return [self._ended(a) for a in self.actions.expire(ttl=self._ttl)]

    def tidy(self) -> None:
        """What a person's command settles before it shows or takes an action, as the
        daemon's housekeeping would: approvals nobody answered in time expire, and what a
        process that is gone left behind is settled (:meth:`recover`; the policy's approvals
        it left stay approved, for a daemon to run)."""
        self.expire()
        self.recover()

    def tidy_before_showing(self) -> bool:
        """:meth:`tidy`, for a command that only shows what is stored (``approve list``,
        ``show``): left to the daemon's housekeeping, or the next command, where the store
        refuses it (another process has held the write lock more than a moment: a backup, a
        sqlite3 shell; a file this user may only read, or a damaged one), so that what is
        stored is shown at once as it is, not refused after the busy timeout as a write.
        Whether it was done."""
        try:
            with self.store.db.waiting_at_most(TIDY_WAIT):
                self.tidy()
        except Exception as exc:
            if refused(exc) is None:
                raise
            log.debug("tidy before showing skipped: %s", exc)
            return False
        return True

    def _ended(self, action: Action, again: str = "") -> Action:
        """An action that will not run: its incident no longer waits for it (when nothing
        else of it is pending) and is open; ``again``: why it is also due for a new
        investigation (the policy refused this fix on the host's facts now; another may do)."""
        incident_id = action.incident_id
        if incident_id is None:
            return action
        waiting = [a.id for a in self.actions.find(("pending",)) if a.incident_id == incident_id]
        try:
            incident = self.store.get(incident_id, history=0)
        except (StoreError, AiSysadminError):
            return action
        if incident.state == "awaiting_approval" and not waiting:
            self._incident_to(incident_id, "open", f"action {action.id} {action.state}")
            if again:
                self.store.investigate_again(incident_id, f"action {action.id}: {again}")
        return action

    async def _finding_present(self, action: Action, reason: str = "approval") -> bool:
        incident = self.store.get(action.incident_id, history=0) if action.incident_id else None
        if incident is None or await self._reach(action.host) is None:
            return True
        if self.store.is_kept(incident.id):
            # a fix made its finding go and left the unit dead (keep_open): the finding is
            # gone by then, the problem is not, and a fix still needs running
            return True
        report = await self.checker_for(action.host).check(reason, _reads(incident))
        if not report.judged(incident.rule, incident.subject):
            return True  # could not judge: assume still needed, never assume healthy
        return any(f.fingerprint == incident.fingerprint for f in report.findings)

    # -- execution ------------------------------------------------------------------------------
    async def run(self, action_id: int, actor: str = "executor", *,
                  by_person: bool = False) -> Action:
        """Run an approved action. ``by_person``: a person approved it just now; otherwise
        the policy did, and the host's facts must still allow that without a person."""
        async with self._locks.hold(action_id):
            try:
                return await self._run(action_id, actor, by_person)
            except StoreError as exc:
                # someone else decided meanwhile (a person's reject): theirs stands
                now = self.actions.get(action_id)
                if action_id in self._unended:
                    raise StoreRefused(self._end_kept(now, exc)) from exc
                if now.state == "approved" and (kept := self._start_kept(now, exc)):
                    raise StoreRefused(kept) from exc
                if now.state in ("approved", "executing"):
                    if (lost := self._cut_off(action_id, exc)) is not None:
                        # "nothing of this change was stored" alone would tell a person
                        # that nothing happened, where a fix may have run on the host
                        raise StoreRefused(lost) from exc
                    raise
                return now
            except BaseException as exc:
                if action_id in self._unended:  # a refusal SQLite raised itself (a read)
                    raise StoreRefused(self._end_kept(self.actions.get(action_id), exc)) \
                        from exc
                self._cut_off(action_id, exc)
                raise
            finally:
                self._ran_here.discard(action_id)

    async def _still_allowed(self, action: Action, by_person: bool) -> Action | None:
        """Judge again on the host's facts as they are now, just before running: a unit
        whose properties or alias changed since the decision, or a PID that now belongs to
        someone else, does not run on the strength of the old decision."""
        judged = await self.judge(action.host, action.kind, action.params, action.incident_id)
        # a person's yes survives a restart: the action records who approved it
        stop = self._stop_now(action, judged, by_person or action.decided_by is not None)
        if stop is None:
            return None
        if stop.recorded:
            return self._ended(self.actions.move(action.id, "recorded", "executor",
                                                 f"not run: {stop.why}"))
        if stop.refused:
            why = f"refused by the policy just before running: {stop.why}"
            return self._ended(self.actions.move(action.id, "refused", "executor", why),
                               again=why)
        if stop.shown is None:  # nothing new to show: the facts could not be read
            return self._back_to_person(action, f"not run, nothing ran: {stop.why}; it can "
                                        "be approved again")
        return self._back_to_person(action, stop.why, stop.shown)

    def _stop_now(self, action: Action, judged: Judged, person: bool) -> _Stop | None:
        """Why ``action``, decided before (by a person where ``person``), must not run on
        ``judged``, the policy's verdict on the host's facts now; None where it runs. One
        verdict for the run (:meth:`_still_allowed`) and its rehearsal (:meth:`rehearse`),
        so that a dry run never says "would run" where the yes would not."""
        fresh = judged.plan
        if self.settings.autonomy_level == "observe":
            # decided at another level (the config changed across a restart), a person's
            # yes included: at observe nothing runs, as a yes given now is refused
            return _Stop("the autonomy level is observe: nothing runs", recorded=True)
        if judged.unread is not None:
            return _Stop(_unread(judged))
        if not fresh.allowed:
            return _Stop(fresh.reason, refused=True)
        if (change := _changed(action, judged)) is not None:
            return _Stop(f"{change} (risk {fresh.risk}: {fresh.reason})", shown=judged)
        verdict = decide(self.settings.autonomy_level, fresh.risk)
        if not person and verdict.outcome != "execute":
            # the host's facts raised its risk, or the level changed since it was decided
            # (the config, across a restart): said as it is
            why = (f"the host's facts now make it {fresh.risk} risk: {fresh.reason}"
                   if riskier(fresh.risk, action.risk) else
                   f"{verdict.reason}, the autonomy level now: {fresh.reason}")
            return _Stop(why, shown=judged)
        if person and riskier(fresh.risk, action.risk):
            # the yes was to what the person was shown: the same argv can do more now (a
            # unit that gained Conflicts= stops another as it starts)
            return _Stop(f"the host's facts now make it {fresh.risk} risk, {action.risk} "
                         f"when it was shown: {fresh.reason}", shown=judged)
        return None

    def _back_to_person(self, action: Action, why: str, judged: Judged | None = None
                        ) -> Action:
        """Pending again; ``judged``: the policy's verdict now, which the person then sees
        (its risk, reason and what it runs) and approves, rather than the old one."""
        replanned = None if judged is None else (
            judged.record, judged.plan.subject, judged.plan.risk)
        with self.store.db.transaction():  # as in propose: the action and its incident at once
            moved = self.actions.move(action.id, "pending", "executor", f"needs a person: {why}",
                                      ttl_seconds=self._ttl, replanned=replanned)
            if moved.state != "pending":  # its incident ended meanwhile (the store's say)
                log.info("action %d: %s", action.id, moved.reason,
                         extra={"action": action.id, "incident": action.incident_id})
                return moved
            log.info("action %d waits for a person again: %s", action.id, why,
                     extra={"action": action.id, "incident": action.incident_id})
            if action.incident_id is not None:
                self._incident_to(action.incident_id, "awaiting_approval",
                                  f"action {action.id} waits for approval: {why}")
        return moved

    def _incident_over(self, action: Action) -> str | None:
        """Why the action's incident no longer needs it (resolved or closed); None while it
        is live, or for an action of no incident."""
        if action.incident_id is None:
            return None
        try:
            incident = self.store.get(action.incident_id, history=0)
        except (StoreError, AiSysadminError):
            return None
        if incident.state in LIVE_STATES:
            return None
        return f"incident {incident.id} is {incident.state}: no longer needed, not run"

    async def _reachable(self, action: Action) -> str | None:
        """Why the host cannot take a command now; None when it answers. Asked before the
        action is claimed: an unreachable host must not cost an at-most-once action."""
        transport = await self._reach(action.host)
        if transport is None:
            return f"{action.host} is not a managed host here"
        why = await unanswered(transport, self.settings.command_timeout)
        if why is not None:
            return redact(str(why))
        return await self._sudo_refuses(action, transport)

    async def _sudo_refuses(self, action: Action, transport: Transport) -> str | None:
        """Where this host's fixes run as ``sudo -n -- ARGV`` (a daemon here that is not
        root, a remote login with ``sudo = true``): why sudo would not run one of them, asked
        of sudo itself (``sudo -n -l -- ARGV`` runs nothing); None when it would, or where no
        sudo is used.

        An early hint, not the run's verdict: sudo judges a password for ``-l`` by sudoers'
        ``listpw`` (by default, one NOPASSWD rule of the user's anywhere), for a run by the
        rule that matches. Its "a password is required" says nothing of the command (with
        ``listpw=always`` every line would wait for a person forever, though each would run),
        so the run itself is tried: a sudo that wants a password refuses ``sudo -n`` before
        it runs anything, and the fix waits for a person again (:meth:`_execute`)."""
        sudo = self._sudo(transport)
        if not sudo:
            return None
        for line in self.command_lines(action):
            command = line[len(sudo):]
            asked = [sudo[0], "-n", "-l", "--", *command]
            try:
                done = await transport.run(asked, self.settings.command_timeout)
                if (refusal := sudo_refused(transport.host, asked, done.returncode,
                                            done.stdout, done.stderr)) is not None:
                    raise refusal
            except SudoRefused as exc:
                if needs_password(exc.said):
                    log.info("action %d: %s: sudo -n -l wants a password to answer; the run "
                             "asks sudo itself", action.id, transport.host,
                             extra={"action": action.id})
                    continue
                return redact(f"sudo -n -l says it would not run {_shown(command)}: {exc}")
            except TransportError as exc:
                return redact(str(exc))
            if not done.ok:
                return redact(f"sudo -n -l says it would not run {_shown(command)} (exit "
                              f"{done.returncode}: no sudo rule of this user allows it"
                              f"{_also_said(done.stderr)})")
        return None

    async def _run(self, action_id: int, actor: str, by_person: bool) -> Action:
        action = self.actions.get(action_id)
        if action.state != "approved":
            return action
        if self.settings.executor.dry_run:
            # approved by another daemon (or a person) before this one started dry: a dry
            # run records what it would run and runs nothing, whoever decided it
            return self.actions.move(
                action_id, "recorded", "executor",
                f"dry run (executor.dry_run): would run "
                f"{self._would_run(action.host, action.plan)}; not run")
        if HostStore(self.store.db).removed(action.host):
            # `systems remove` withdrew its fixes; this one was decided after (the daemon's
            # transports, built at its start, still reach the host): nobody manages it now
            return self.actions.move(action_id, "not_needed", "executor",
                                     f"{action.host} is no longer managed: not run")
        if not by_person and (over := self._incident_over(action)) is not None:
            # cleared while it was investigated (systemd restarted the unit, the host was
            # removed): a fix for a healthy host would run for nothing and be learned as
            # one that works
            return self.actions.move(action_id, "not_needed", "executor", over)
        if (why := await self._reachable(action)) is not None:
            return self._back_to_person(action, f"not run, nothing ran: {why}; it can be "
                                        "approved again")
        # the host looked at again first (a whole check, seconds): the facts the plan is
        # judged on last, just before the claim, or a PID could pass to another process
        # in between and be killed on the old judgement
        if (gone := await self._gone_meanwhile(action)) is not None:
            return gone
        if (stopped := await self._still_allowed(action, by_person)) is not None:
            return stopped
        if (flapping := self._flapping(action)) is not None:
            escalated = self.actions.move(action_id, "escalated", "executor", flapping)
            self._escalate(action, flapping)
            # a fix that keeps being needed does not hold: that is worth learning too
            return await self._told(escalated)
        claimed = self._claim(action, actor)
        if claimed is None:
            return self.actions.get(action_id)  # someone else holds it: never run twice
        log.info("action %d running on %s: %s %s (approved by %s)", action_id, action.host,
                 action.kind, action.params, action.decided_by or "the policy",
                 extra={"action": action_id, "incident": action.incident_id})
        if action.incident_id is not None:
            self._incident_to(action.incident_id, "remediating", f"running action {action_id}")
        before = await self._run_before(claimed)
        try:
            outputs = await self._execute(claimed)
            self._ran_here.add(action_id)
        except _NothingRan as exc:
            return self._back_to_person(claimed, f"not run, nothing ran: {exc}; it can be "
                                        "approved again")
        except AiSysadminError as exc:
            # a command ran, or may have (a connection lost mid-command): else _NothingRan
            self._commands_ran(claimed.host)
            return await self._end(claimed, _Kept(functools.partial(
                self._run_failed, claimed, exc), f"it failed ({exc})"))
        return await self._end(claimed, _Kept(functools.partial(
            self._verified, claimed, outputs, time.time(), before),
            "its commands ran, each to exit 0; whether it fixed it was not verified"))

    def _commands_ran(self, host: str) -> None:
        """What the host's checks keep is read again by the next (a host removed while its
        fix ran has no checker left to tell)."""
        with contextlib.suppress(AiSysadminError):
            self.checker_for(host).commands_ran()

    def _claim(self, action: Action, actor: str) -> Action | None:
        """``approved -> executing`` (None: someone else holds it). One whose start the store
        refused before says so, in the log and its history: it starts late, and why."""
        refused_at = self._unstarted.get(action.id)
        late = None if refused_at is None else (
            f"{time.monotonic() - refused_at:.0f} s after the state database refused its start")
        claimed = self.actions.claim(action.id, actor, "execution started" + (
            f", {late}" if late else ""))
        if claimed is not None and late:
            self._unstarted.pop(action.id, None)
            log.warning("action %d on %s: started now that the state database takes writes "
                        "again, %s", action.id, action.host, late,
                        extra={"action": action.id, "incident": action.incident_id,
                               "event": "start_recorded_late"})
        return claimed

    async def _end(self, claimed: Action, end: _Kept) -> Action:
        """``end.record()``: the record of how a claimed action ended. One the store refuses
        is kept, where this process lives on to write it (:meth:`record_ends`): the outcome
        is known here alone, and the action would show executing until a restart."""
        try:
            return await end.record()
        except Exception as exc:
            if self.keeps_ends and refused(exc) is not None:
                self._unended[claimed.id] = end
            raise

    async def _gone_meanwhile(self, action: Action) -> Action | None:
        """An action whose start the store refused, tried again (:meth:`start_again`): no
        check was stored while it refused; or one a process that ended decided (an approved
        fix it left, a proposal it recorded): a daemon started again runs it on facts from
        before that end, maybe hours old. Its incident may still show a problem gone since;
        a check now says whether it is there. The action, not needed, where it is gone;
        None where it runs."""
        refused_start = action.id in self._unstarted
        left = action.id in self._left
        self._left.discard(action.id)  # looked at once, whatever comes of it
        if action.incident_id is None or not (refused_start or left):
            return None
        if await self._finding_present(action, "start again"):
            return None
        when = ("by the time the state database took writes again" if refused_start else
                "by the time this process started again after the one that decided it")
        return self.actions.move(action.id, "not_needed", "executor",
                                 f"the finding is gone {when}: no longer needed, not run")

    async def start_again(self) -> list[Action]:
        """The approved actions whose start the store refused (:meth:`_start_kept`), tried
        again now: each as any approved action is run, judged afresh on the host's facts
        and its finding looked for again, at most once. A store that still refuses raises,
        and keeps them; one decided meanwhile (a person's reject, its host removed) is left
        as it is."""
        tried = []
        for action_id in list(self._unstarted):
            if self.actions.get(action_id).state != "approved":
                self._unstarted.pop(action_id, None)
                continue
            try:
                tried.append(await self.run(action_id))
            except BaseException as exc:
                if refused(exc) is None:  # cut off: run settled it, as any run's
                    self._unstarted.pop(action_id, None)
                raise
            self._unstarted.pop(action_id, None)
        return tried

    async def _run_failed(self, claimed: Action, exc: AiSysadminError) -> Action:
        # what ran before the failure, and what the failed command said, as a fix that
        # succeeded keeps it (`approve show`): a reset-failed that ran before a failed start
        # changed the host too
        ran = exc.outputs if isinstance(exc, _Failed) else []
        failed = self.actions.move(claimed.id, "failed", "executor", str(exc),
                                   {"error": str(exc), **({"commands": ran} if ran else {})})
        self._escalate(claimed, f"action {claimed.id} failed: {exc}")
        return await self._told(failed)

    async def record_ends(self) -> list[Action]:
        """The ends the store refused (:meth:`_end`), written now if it takes them: a fix's
        verification and outcome, or its failure, as they would have been; its commands are
        never run again. A store that still refuses raises (and keeps them all)."""
        ended = []
        for action_id, kept in list(self._unended.items()):
            async with self._locks.hold(action_id):
                if self.actions.get(action_id).state != "executing":
                    # recorded after all (the refusal came after the end's own move)
                    self._unended.pop(action_id, None)
                    continue
                try:
                    action = await kept.record()
                except BaseException as exc:
                    if refused(exc) is not None:
                        raise
                    self._unended.pop(action_id, None)
                    self._cut_off(action_id, exc)  # a stop during its verification
                    raise
                self._unended.pop(action_id, None)
            log.warning("action %d on %s: its end is recorded now that the state database "
                        "takes writes again: %s (%s)", action_id, action.host, action.state,
                        action.reason,
                        extra={"action": action_id, "incident": action.incident_id,
                               "event": "outcome_recorded_late"})
            ended.append(action)
        return ended

    def lost_at_stop(self) -> list[str]:
        """What this process kept for the store and ends without writing (a daemon's stop
        while the store refused writes), each logged in words a person acts on: an end
        that the next start records as its process having ended while it ran (nobody knows
        more then; it never runs again), or a start that the next start makes afresh (it
        stays approved). The stop writes nothing: the store refused it moments ago, and a
        verification is no step for a stop to wait on."""
        lost = []
        for action_id, kept in self._unended.items():
            action = self.actions.get(action_id)
            # that its commands ran is on record where the store took that write (recover)
            verified = (action.result or {}).get("verification")
            held = bool(verified) and verified != "running"
            what = ("its commands ran, each to exit 0, and its verification found it fixed"
                    if held else kept.what)
            how = ("succeeded" if held else
                   "failed, its commands having run and its verification cut off (it does not "
                   "run again); its incident is investigated again" if action.ran_at is not None
                   else "failed, its process having ended without recording its end (it does "
                   f"not run again); a person must check {action.host}")
            lost.append(f"action {action_id} on {action.host} ({action.kind} "
                        f"{action.subject}): {what}; its end is not recorded (the state "
                        f"database refused it) and this stop loses it: the next start ends it "
                        f"as {how}")
            log.error("%s", lost[-1], extra={"action": action_id, "event": "outcome_lost",
                                             "incident": action.incident_id})
        for action_id in self._unstarted:
            action = self.actions.get(action_id)
            if action.state != "approved":
                continue
            lost.append(f"action {action_id} on {action.host} ({action.kind} "
                        f"{action.subject}): nothing of it ran; its start is not recorded "
                        "(the state database refused it); it stays approved: the next start "
                        "judges it afresh and runs it, at most once")
            log.warning("%s", lost[-1], extra={"action": action_id, "event": "start_lost",
                                               "incident": action.incident_id})
        return lost

    async def _verified(self, claimed: Action, outputs: list[dict[str, Any]],
                        ran_at: float, before: UnitFacts | None = None) -> Action:
        """The end of a fix whose commands ended at ``ran_at``: verified, or failed and
        escalated."""
        action_id = claimed.id
        if self.actions.get(action_id).ran_at is None:  # a late end may find it recorded
            self.actions.ran(action_id, outputs, ran_at)
        verified, detail, gone = await self._verify(claimed, ran_at, before)
        result = {"commands": outputs, "verification": detail}
        if verified:
            log.info("action %d succeeded and verified: %s", action_id, detail,
                     extra={"action": action_id})
            self.actions.verified(action_id, detail)
            await self._checked_after(claimed)
            if claimed.incident_id is not None:
                # one kept open after an earlier fix only hid it: no check resolves it now
                self.store.release_kept(claimed.incident_id, "executor",
                                        f"action {action_id} fixed it: {detail}")
            succeeded = self.actions.move(action_id, "succeeded", "executor", detail, result)
            incident = self._incident(claimed.incident_id)
            if incident is not None and incident.state == "remediating":
                # its finding was back at that check: the next one, with the fix ended, says
                # it did not hold (reopened), where none might come before the next interval
                await self._checked_after(claimed)
            return await self._told(succeeded)
        failed = self.actions.move(action_id, "failed", "executor", detail, result)
        # gone: its finding went and the unit it must bring up did not come up; the checks
        # that no longer show the finding must not resolve it behind the person's back
        self._escalate(claimed, f"action {action_id} did not fix it: {detail}", keep_open=gone)
        return await self._told(failed)

    async def _checked_after(self, action: Action) -> None:
        """A check once the fix verified: no check resolves or reopens an incident while
        its fix is being run or verified (a finding gone for a moment is no fix), so the
        first one after it resolves it, where the finding is gone."""
        if action.incident_id is None or action.host not in self.transports:
            return
        try:
            await self.checker_for(action.host).check(
                "verified", _reads(self._incident(action.incident_id)))
        except AiSysadminError as exc:  # the daemon's next check resolves it instead
            log.warning("%s: the check after action %d verified failed: %s", action.host,
                        action.id, redact(str(exc))[:300], extra={"action": action.id})

    def _flapping(self, action: Action) -> str | None:
        """Why the action must not run again so soon (it already ran as often as
        ``flapping_max`` allows within the window); None when it may."""
        safety = self.settings.safety
        window, now = safety.flapping_window_minutes * 60, time.time()
        # an attempt stamped a window or more ahead of now ran on a clock since set back (NTP
        # correcting one that ran a year ahead): counted, it refused the fix for that year
        tries = self.actions.recent_attempts(action.host, action.kind, action.subject,
                                             now - window, now + window)
        if tries < safety.flapping_max:
            return None
        return (f"{action.kind} on {action.subject} already ran {tries} times in "
                f"{safety.flapping_window_minutes:g} min: a person must look")

    async def _told(self, action: Action) -> Action:
        """The outcome to the listeners. A listener that fails (a knowledge base that is
        down) is logged: the action's own record is what counts, and it is written."""
        for listener in self.outcome_listeners:
            try:
                await listener(action)
            except Exception:
                log.exception("action %d: a listener of its outcome failed", action.id,
                              extra={"action": action.id})
        return action

    def _escalate(self, action: Action, reason: str, keep_open: bool = False) -> None:
        log.warning("escalated to a person: %s", reason,
                    extra={"action": action.id, "incident": action.incident_id})
        self.store.audit("executor", "escalated", f"action:{action.id}", reason)
        if action.incident_id is None:
            return
        if not keep_open:
            self._incident_to(action.incident_id, "open", f"escalated: {reason}")
            return
        try:
            self.store.keep_open(action.incident_id, "executor", f"escalated: {reason}")
        except (StoreError, AiSysadminError) as exc:
            log.warning("incident %d could not be kept open: %s", action.incident_id, exc)

    def _sudo(self, transport: Transport) -> list[str]:
        if not isinstance(transport, LocalTransport):
            # a remote host's own sudo, where its login was granted the fixes
            return list(transport.fix_prefix)
        if os.geteuid() == 0:
            return []
        return [self.settings.safety.sudo, "-n", "--"]

    def command_lines(self, action: Action) -> list[list[str]]:
        """The exact argvs the action runs on its host: the policy's bare program names
        resolved through ``programs``, behind sudo where the daemon is not root."""
        return self._lines(action.host, action.plan)

    def _lines(self, host: str, plan: dict[str, Any]) -> list[list[str]]:
        """:meth:`command_lines` of a ``plan`` (an action's record of it) on ``host``."""
        transport = self.transports.get(host)
        if transport is None:
            raise AiSysadminError(f"no transport to host {host}")
        programs = self.settings.on_host(transport.local_programs).programs
        return [[*self._sudo(transport), programs.resolve(argv[0]), *argv[1:]]
                for argv in plan.get("commands", [])]

    def _would_run(self, host: str, plan: dict[str, Any]) -> str:
        """What a dry run (``executor.dry_run``) records of a ``plan`` it runs not: the exact
        argvs, as a person's ``approve --dry-run`` prints them; the policy's, where no
        transport to ``host`` is known here (nothing could run there either)."""
        try:
            return str(self._lines(host, plan))
        except AiSysadminError as exc:
            return f"{[list(c) for c in plan.get('commands', [])]} ({exc})"

    async def rehearse(self, action_id: int) -> Rehearsal:
        """A dry run of a person's approve: the same checks on the host's facts now, and
        exactly what would run, or why nothing would and what approve would do instead;
        running nothing and changing no state. (Whether the finding is still there is not
        asked: collecting records what it finds.)"""
        action = self.actions.get(action_id)
        if (why := self._would_not_take(action)) is not None:
            return Rehearsal(action, [], why)
        judged = await self.judge(action.host, action.kind, action.params, action.incident_id)
        if (stop := self._stop_now(action, judged, person=True)) is not None:
            if stop.refused:
                return Rehearsal(action, [], "approve would refuse it: the policy refuses it "
                                 f"now: {stop.why}")
            return Rehearsal(action, [], f"approve would run nothing: {stop.why}; it would "
                             "wait for approval again" + (
                                 ", shown as it is now" if stop.shown else ""),
                             waits_again=True)
        if (down := await self._reachable(action)) is not None:  # as _run asks before a claim
            return Rehearsal(action, [], f"approve would run nothing: {down}; it would wait "
                             "for approval again", waits_again=True)
        if (flapping := self._flapping(action)) is not None:
            return Rehearsal(action, [], f"approve would run nothing: {flapping}; it would "
                             "be escalated")
        now = dataclasses.replace(action, plan={**action.plan, "commands": [
            list(c) for c in judged.plan.commands]})
        return Rehearsal(action, self.command_lines(now), None)

    def _would_not_take(self, action: Action) -> str | None:
        """Why approve would run nothing whatever the host says; None when it would look
        (also at an approval whose process is gone: approve gives it back first)."""
        if action.state != "pending" and not self._given_back(action):
            return f"approve would run nothing: {self._not_pending(action)}"
        if action.expires_at is not None and action.expires_at < time.time():
            return "approve would run nothing: its time for an answer passed; it would " \
                "be expired"
        if self.settings.autonomy_level == "observe":
            return "approve would refuse it: the autonomy level is observe: nothing runs"
        return None

    async def _execute(self, action: Action) -> list[dict[str, Any]]:
        transport = await self._reach(action.host)
        if transport is None:
            raise AiSysadminError(f"no transport to host {action.host}")
        outputs = []
        for argv, line in zip(action.plan.get("commands", []), self.command_lines(action),
                              strict=True):
            shown = _shown(argv)
            self._progress(Progress(action.id, action.host, "running", shown))
            try:
                done = await transport.run(line, self.settings.safety.command_timeout)
                # here as over SSH: sudo's own refusal, not the command's failure
                if (refusal := sudo_refused(transport.host, line, done.returncode,
                                            done.stdout, done.stderr)) is not None:
                    raise refusal
            except SudoRefused as exc:
                # refused before the first command ran, the fix ran nothing; a later one
                # follows commands that ran, and the fix failed
                if not outputs:
                    raise _NothingRan(f"{shown}: {redact(str(exc))}") from exc
                raise _Failed(f"{shown}: {redact(str(exc))}", outputs) from exc
            except TransportError as exc:
                if not isinstance(exc, NotStarted):
                    # it was sent: past its time, or its connection lost once it went out,
                    # it ran or may have, and how it ended is not known (no exit status).
                    # On record as such, it is a fix that ran and failed, and is learned so;
                    # one never sent is not (a host gone, a connection refused before it)
                    outputs.append({"argv": argv, "returncode": None, "stdout": "",
                                    "stderr": "", "error": redact_cut(str(exc), 300)})
                raise _Failed(f"{shown}: {redact(str(exc))}", outputs) from exc
            self._progress(Progress(action.id, action.host, "ran", shown, done.returncode))
            # what a command prints is host text: masked before the store or a log holds it
            outputs.append({"argv": argv, "returncode": done.returncode,
                            "stdout": redact_cut(done.stdout, 2000, tail=True),
                            "stderr": redact_cut(done.stderr, 2000, tail=True)})
            if not done.ok:
                raise _Failed(f"{shown} exited {done.returncode}: "
                              f"{redact_cut(done.stderr.strip(), 300, tail=True)}", outputs)
        return outputs

    async def _verify(self, action: Action, ran_at: float, before: UnitFacts | None = None
                      ) -> tuple[bool, str, bool]:
        """Collect again until the finding is gone (and the unit up) and stays so: (it did,
        in what words, whether the finding was gone at the end while the unit that had to
        come up did not)."""
        safety = self.settings.safety
        deadline = time.monotonic() + safety.verify_timeout
        incident = self.store.get(action.incident_id, history=0) if action.incident_id else None
        good_since: float | None = None
        detail, gone, up = "not verified", False, True
        checker = self.checker_for(action.host)
        if incident is not None:
            checker.fix_ran(incident.rule, incident.subject, ran_at)
        self._progress(Progress(action.id, action.host, "verifying",
                                seconds=safety.verify_timeout,
                                settle_seconds=safety.verify_settle_seconds))
        afresh = _reads(incident)
        #: the unit's run the settle began in; whether systemd started it again since once
        run_since: _Run | None = None
        restarted = False
        while time.monotonic() < deadline:
            report = await checker.check(VERIFY_REASON, afresh)
            gone, what = _gone(incident, report, action.started_at or ran_at, ran_at)
            up, how, run = await self._unit_up(action, report, before)
            if gone and up and good_since is not None and run != run_since:
                # active at each look is not up all along: systemd restarted it between two
                # (Restart=, a crash a moment after each start), and it may well fail again
                # or hit its start limit; the settle starts again from this run
                restarted = True
                detail = f"{what}, but {_started_again(action, run_since, run)}"
                good_since, run_since = time.monotonic(), run
            elif gone and up:
                if good_since is None:
                    good_since, run_since = time.monotonic(), run
                if time.monotonic() - good_since >= safety.verify_settle_seconds:
                    return True, (f"{what}{' and ' + how if how else ''} "
                                  f"for {safety.verify_settle_seconds:g} s"), False
            else:
                good_since = None
                # said with the state it is in: a finding that went while the unit stays
                # dead (a reset-failed) must read as no fix
                detail = what if not gone else f"{what}, but {how}"
            await asyncio.sleep(min(1.0, max(safety.verify_settle_seconds / 3, 0.2)))
        return False, f"{detail} after {safety.verify_timeout:g} s", gone and (
            not up or restarted)

    async def _run_before(self, action: Action) -> UnitFacts | None:
        """The last run of the oneshot job a fix must run, before the fix: its run after
        the fix is told from it; None where there is none to tell (or it cannot be read)."""
        unit = action.plan.get("verify_unit_ran")
        transport = self.transports.get(action.host)
        if not unit or transport is None:
            return None
        try:
            return await read_run(transport, self.settings, unit)
        except TransportError as exc:
            log.warning("%s: the last run of %s could not be read before action %d: %s",
                        action.host, unit, action.id, exc, extra={"action": action.id})
            return None

    async def _unit_up(self, action: Action, report: CheckReport, before: UnitFacts | None
                       ) -> tuple[bool, str, _Run | None]:
        """Whether the unit the fix must bring up is up, in what words, and in which run
        (None where no unit must stay up): active, or for a oneshot job, run after the fix to
        success ('' where the fix brings up no unit)."""
        if ran := action.plan.get("verify_unit_ran"):
            transport = self.transports.get(action.host)
            try:
                if transport is None:
                    raise TransportError(f"no transport to host {action.host}")
                now = await read_run(transport, self.settings, ran)
            except TransportError as exc:
                return (False, f"whether {ran} ran could not be read "
                        f"({redact(str(exc))[:200]})", None)
            # only a start job answered done may have run it (a reset-failed alone runs
            # nothing; one of a unit the host needs starts it after)
            started = action.kind != "reset_failed_unit" or any(
                argv[1:2] == ["start"] for argv in action.plan.get("commands", []))
            return (*last_run(before, now, started=started), None)
        unit = action.plan.get("verify_unit_active")
        if unit is None:
            return True, "", None
        listed = next((u for u in report.snapshot.units or [] if u.name == unit), None)
        if listed is None or listed.active != "active":
            state = f"{listed.active}/{listed.sub}" if listed else "not loaded"
            return False, f"{unit} is not active ({state})", None
        # which run it is: one systemd restarted between two looks did not stay up
        try:
            if (transport := self.transports.get(action.host)) is None:
                raise TransportError(f"no transport to host {action.host}")
            shown = await read_run(transport, self.settings, unit, _RUN_NOW)
        except TransportError as exc:
            return (False, f"whether {unit} stayed up could not be read "
                    f"({redact(str(exc))[:200]})", None)
        if (state := shown.get("ActiveState")) != "active":
            return False, f"{unit} is not active ({state}/{shown.get('SubState')})", None
        return True, f"{unit} active", _Run(shown.get("InvocationID") or "",
                                            shown.get("NRestarts") or "")

    @staticmethod
    def _given_back(action: Action) -> bool:
        """A person's approval that :meth:`recover` makes pending again: its process is gone
        before anything ran."""
        return action.state == "approved" and action.decided_by is not None \
            and holder_gone(action)

    def recover(self) -> list[Action]:
        """At start, and from time to time: what a process that is gone left behind.

        Actions cut off mid-execution end as failed (never re-run); their incidents are open
        again and investigated anew, so a fresh decision (a new action) follows instead of an
        incident left ``remediating``. A person must check one whose commands may or may not
        have run; one whose commands all ran, its verification cut off, is looked at anew as
        one that did not hold (the flapping limit bounds how often). An action a person
        approved whose ``approve`` ended before it ran waits for a person again. The approved
        actions the policy decided are returned, for the caller to run. What a living process
        holds is left to it."""
        for action_id in self.actions.interrupted():
            action = self.actions.get(action_id)
            if action.reason.startswith(UNVERIFIED):
                # it ran: nobody need check whether, and a fix that did not hold is looked
                # at anew as one found back after its verification is (the flapping limit
                # bounds how often); one that held resolves at the next check
                log.warning("action %d on %s: %s", action_id, action.host, action.reason,
                            extra={"action": action_id, "incident": action.incident_id})
                if action.incident_id is not None:
                    self._incident_to(action.incident_id, "open", f"action {action_id} ran; "
                                      "its verification was cut off")
            else:
                self._escalate(action, f"action {action_id} was interrupted while it ran: "
                               f"{ENDED}; not run again")
            if action.incident_id is not None:
                self.store.investigate_again(action.incident_id,
                                             f"action {action_id} was interrupted")
        to_run = []
        for action in self.actions.orphaned("approved"):
            if action.decided_by is None:
                to_run.append(action)
                self._left.add(action.id)
                continue
            try:
                self._back_to_person(action, f"the approval by {action.decided_by} ended "
                                     "before anything ran; it can be approved again")
            except StoreError as exc:  # taken meanwhile: it is someone's again
                if refused(exc) is not None:  # a full disk: housekeeping says it, tries again
                    raise
        return to_run
