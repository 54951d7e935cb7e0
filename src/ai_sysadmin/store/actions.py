"""Actions and approvals. State first, side effect second: an action moves to ``executing`` in
one transaction before anything runs, so it runs at most once, even across a crash.

States: pending -> approved | rejected | expired; approved -> executing -> succeeded | failed
(or pending again, where sudo refused its first command: nothing of it ran);
and the terminal ``refused`` (policy), ``recorded`` (observe level), ``not_needed`` (the finding
was gone when approved), ``escalated`` (anti-flapping: a person must look). An approved or
executing action names the process that holds it (:func:`this_process`): a daemon that starts
while an ``approve`` runs one leaves it to that process.
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from ..errors import NotFoundError, StoreError
from .audit import write_audit
from .db import Database
from .outbox import note_action, note_withdrawn
from .states import LIVE_STATES

ACTION_STATES = ("pending", "approved", "rejected", "expired", "executing", "succeeded",
                 "failed", "refused", "recorded", "not_needed", "escalated")
MOVES: dict[str, frozenset[str]] = {
    "pending": frozenset({"approved", "rejected", "expired", "not_needed", "escalated",
                          "refused"}),
    # back to pending: the host's facts changed so that a person must decide after all
    # rejected: a person's no is still heard until the action is claimed to run
    # recorded: a dry-run daemon found it approved, and runs nothing
    "approved": frozenset({"executing", "not_needed", "escalated", "refused", "expired",
                           "pending", "rejected", "recorded"}),
    # pending: sudo itself refused the first command, so nothing ran (the executor alone
    # knows; an action whose command may have run never goes back); so, its incident ended
    # meanwhile, it is not_needed instead (:func:`move_in`), never otherwise: a claimed
    # fix runs, at most once, and says how it ended
    "executing": frozenset({"succeeded", "failed", "pending"}),
}


#: why an action left executing by a process that is gone ended as it did: a crash, or a
#: stop (or an ``approve`` that exited) after the store refused its end; the two look alike
#: here, and what the process knew is in its log
ENDED = ("the process that ran it ended without recording its end (it crashed, or stopped "
         "while the state database refused writes)")
#: how the error of an action :meth:`ActionStore.interrupted` ended begins
INTERRUPTED = "interrupted: "
#: how the reason of an action :meth:`ActionStore.interrupted` ended after its commands ran
#: (exit 0, on record) begins: whether it held is not known, whether it ran is
UNVERIFIED = "its commands ran, each to exit 0; its verification was cut off: "
#: ``told`` (:func:`move_in`) of a fix that failed only in that a stop cut its verification
#: short, its commands having run: it may well have held, and a person is not paged "fix
#: failed" at every restart. Its result says so (this key, true); the incident's next check
#: tells: resolved, or its finding still there, the fix's failure then (IncidentStore)
LEFT_TO_CHECKS = "left_to_checks"


class AlreadyDecided(StoreError):
    """A proposal that a policy decision (of this or another process) already consumed."""


class DecidedMeanwhile(StoreError):
    """A move refused because the action is no longer where its caller found it: another
    process (a person's ``approve`` or ``reject`` in another terminal, a daemon expiring or
    withdrawing it) moved it first. ``state``: where it is now."""

    def __init__(self, action_id: int, state: str, wanted: str) -> None:
        super().__init__(f"action {action_id} is {state}; it cannot become {wanted}")
        self.action_id = action_id
        self.state = state


class PlanChanged(DecidedMeanwhile):
    """A move refused because the action, still where its caller found it, no longer runs
    what its caller decided on: another process replanned it meanwhile (a second person's
    ``approve`` found the host's facts changed). ``plan``: what it runs now, which nobody
    who said yes to the old one has seen."""

    def __init__(self, action_id: int, state: str, wanted: str, plan: dict[str, Any]) -> None:
        StoreError.__init__(self, f"action {action_id} was replanned since it was decided "
                            f"on; it cannot become {wanted}")
        self.action_id = action_id
        self.state = state
        self.plan = plan


@dataclass(frozen=True)
class Action:
    id: int
    incident_id: int | None
    proposal_id: int | None
    host: str
    kind: str
    params: dict[str, Any]
    subject: str
    risk: str
    plan: dict[str, Any]
    outcome: str
    reason: str
    state: str
    created_at: float
    expires_at: float | None
    decided_by: str | None
    decided_at: float | None
    decision_reason: str | None
    started_at: float | None
    finished_at: float | None
    result: dict[str, Any] | None
    #: the process that holds it while approved or executing (:func:`this_process`)
    owner: str | None = None
    #: when its commands ended (its verification follows); None where none ran
    ran_at: float | None = None
    #: why the model proposed it, in its words (masked when recorded; untrusted: show it
    #: masked and escaped); None for an action no proposal made
    rationale: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@functools.cache
def boot_id() -> str:
    """This boot of this machine: what a time on the monotonic clock is a time of."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return "unknown-boot"


def _start_time(pid: int) -> str | None:
    """When the process started, in clock ticks since boot: with the pid and the boot, a name
    no later process can take over (pids are reused, start times within a boot are not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def this_process() -> str:
    """This process, as :func:`process_alive` can tell later whether it still runs."""
    return f"{boot_id()} {os.getpid()} {_start_time(os.getpid())}"


def process_alive(owner: str | None) -> bool:
    """Whether the process :func:`this_process` named still runs (on this machine, since that
    boot). None names no process: :func:`holder_gone` judges such an action by its times."""
    if not owner:
        return False
    boot, _, rest = owner.partition(" ")
    pid, _, started = rest.partition(" ")
    if boot != boot_id() or not pid.isdigit() or int(pid) <= 0:
        return False
    now = _start_time(int(pid))
    if now is not None:
        return now == started
    # its /proc entry cannot be read: gone, or hidden from this process (/proc mounted
    # hidepid=1 or 2 hides another user's process, and one of this user's that switched to
    # it, as `sudo hal-approve approve` does: counted gone, its running fix was failed and a
    # second one decided). Signal 0 asks the kernel whether the pid runs, whatever /proc
    # shows; without the start time a pid taken over meanwhile reads alive too, and its
    # action stays held until that process ends too: held too long, never run twice
    try:
        os.kill(int(pid), 0)
    except PermissionError:  # another user's: it runs
        return True
    except OSError:  # ProcessLookupError: no such process
        return False
    return True


@functools.cache
def _boot_time() -> float:
    """When this machine booted (``btime``, seconds since the epoch); 0 where unknown."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0.0


#: how long a process of a release that kept no owner (schema 5 and before) may still hold
#: an action it took: such a daemon keeps running after the new version is installed and its
#: first command migrates the file; longer than any fix and its verification run
LEGACY_HOLD_SECONDS = 3600.0


def holder_gone(action: Action) -> bool:
    """Whether the process holding ``action`` (approved or executing) is gone. One from a
    release that kept no owner is gone when it took the action before this boot or longer
    ago than :data:`LEGACY_HOLD_SECONDS`: settled at once, its run was failed under a
    daemon still running it, and a second fix followed."""
    if action.owner:
        return not process_alive(action.owner)
    taken = action.started_at if action.state == "executing" else action.decided_at
    taken = taken or action.created_at
    return taken < _boot_time() or time.time() - taken > LEGACY_HOLD_SECONDS


def _action(row: Any) -> Action:
    # the columns this release knows: a daemon that keeps running while a newer release's
    # first command adds one (a pip upgrade before the restart) read no action any more
    data = {key: row[key] for key in row.keys() if key in _ACTION_FIELDS}
    for key in ("params", "plan", "result"):
        data[key] = json.loads(data[key]) if data[key] else None
    data["params"] = data["params"] or {}
    data["plan"] = data["plan"] or {}
    return Action(**data)


_ACTION_FIELDS = frozenset(Action.__dataclass_fields__)

#: an action with the model's rationale of the proposal it was decided from
_SELECT = ("SELECT a.*, p.rationale AS rationale FROM actions a "
           "LEFT JOIN proposals p ON p.id = a.proposal_id")


def move_in(conn: Any, action_id: int, new: str, actor: str, reason: str, at: float, *,
            result: dict[str, Any] | None = None, ttl_seconds: float | None = None,
            replanned: tuple[dict[str, Any], str, str] | None = None,
            expect: str | None = None, plan: dict[str, Any] | None = None,
            told: str | None = None) -> bool:
    """:meth:`ActionStore.move` in the caller's transaction: False, nothing changed, where
    the action is gone or the move is not allowed from its state (or it is not in
    ``expect``, or its plan is not ``plan``). ``told``: the outbox event to write instead
    of the state's own (a withdrawal's), or :data:`LEFT_TO_CHECKS`: none now."""
    row = conn.execute("SELECT state, plan, incident_id FROM actions WHERE id=?",
                       (action_id,)).fetchone()
    if row is None:
        return False
    old = row["state"]
    allowed = MOVES.get(old, frozenset())
    if new in allowed and new == "pending" and \
            (over := _incident_over(conn, row["incident_id"])) is not None:
        # back to a person for an incident resolved or closed meanwhile (a killed
        # `approve`, a host that did not answer): nobody is asked to approve it
        new, reason, allowed = "not_needed", over, frozenset({"not_needed"})
    if new not in allowed or expect not in (None, old):
        return False
    if plan is not None and _plan(row) != plan:
        return False
    sets = ["state=?"]
    args: list[Any] = [new]
    if new in ("approved", "rejected"):
        sets += ["decided_by=?", "decided_at=?", "decision_reason=?"]
        args += [actor, at, reason]
    if new == "executing":
        sets.append("started_at=?")
        args.append(at)
    if new in ("approved", "executing"):
        sets.append("owner=?")
        args.append(this_process())
    if new == "pending":
        # a person decides on what `approve list/show` says now, not on the old verdict
        # started_at: a start that ran nothing is no attempt (the flapping count)
        sets += ["owner=?", "expires_at=?", "reason=?", "started_at=?"]
        args += [None, at + ttl_seconds if ttl_seconds else None, reason, None]
        if replanned is not None:
            sets += ["plan=?", "subject=?", "risk=?"]
            args += [json.dumps(replanned[0]), replanned[1], replanned[2]]
    if new not in ("pending", "approved", "executing"):
        # what `approve list/show` says of it: why it ended so (refused on approval,
        # no longer needed, ran too often), not the decision it started from
        sets.append("reason=?")
        args.append(reason)
    if new in ("succeeded", "failed"):
        if told == LEFT_TO_CHECKS:
            result = {**(result or {}), LEFT_TO_CHECKS: True}
        sets += ["finished_at=?", "result=?"]
        args += [at, json.dumps(result or {})]
    if conn.execute(f"UPDATE actions SET {', '.join(sets)} WHERE id=? AND state=?",
                    (*args, action_id, old)).rowcount != 1:
        return False
    write_audit(conn, actor, f"action.{new}", f"action:{action_id}", reason, at=at)
    if told == "withdrawn":
        note_withdrawn(conn, action_id, reason, at)
    elif told != LEFT_TO_CHECKS:
        note_action(conn, action_id, new, reason, at)
    return True


def told_by_checks(conn: Any, action_id: int, held: bool, actor: str, reason: str,
                   at: float) -> None:
    """A fix whose verification a stop cut short (:data:`LEFT_TO_CHECKS`), as the first
    check after it found it, in the caller's transaction: ``held``, it succeeded, as its
    verification would have ended it; or it failed after all. `approve list/show` and the
    audit log say which (they said "the next checks tell" for good), the person is told, and
    the knowledge base learns it (``lessons_due``) as it learns any fix that ended."""
    new = "succeeded" if held else "failed"
    if conn.execute("UPDATE actions SET state=?, reason=? WHERE id=? AND state='failed'",
                    (new, reason, action_id)).rowcount != 1:
        return
    write_audit(conn, actor, f"action.{new}", f"action:{action_id}", reason, at=at)
    note_action(conn, action_id, new, reason, at)
    conn.execute("INSERT OR IGNORE INTO lessons_due(action_id, since) VALUES (?, ?)",
                 (action_id, at))


def _incident_over(conn: Any, incident_id: int | None) -> str | None:
    """Why a fix of ``incident_id`` waits for no person (its incident is resolved or
    closed), in the caller's transaction; None while it is live, or for no incident."""
    if incident_id is None:
        return None
    row = conn.execute("SELECT state FROM incidents WHERE id=?", (incident_id,)).fetchone()
    if row is None or row["state"] in LIVE_STATES:
        return None
    return f"incident {incident_id} is {row['state']}: no longer needed, not run"


def _plan(row: Any) -> dict[str, Any]:
    """A row's plan as :class:`Action` reads it: compared as data, not as text (the same
    plan may be written with its keys in another order)."""
    return json.loads(row["plan"]) if row["plan"] else {}


def withdraw_pending(conn: Any, incident_id: int, actor: str, reason: str,
                     at: float) -> list[int]:
    """The fixes of ``incident_id`` still waiting for a person, withdrawn (``not_needed``,
    ``reason`` in their history and the audit log), in the caller's transaction: that of
    the incident's resolution, so that no yes comes between the two. One approved or
    executing is its run's (at most once) and not touched. The ids withdrawn."""
    rows = conn.execute("SELECT id FROM actions WHERE incident_id=? AND state='pending' "
                        "ORDER BY id", (incident_id,)).fetchall()
    return [int(row["id"]) for row in rows
            if move_in(conn, int(row["id"]), "not_needed", actor, reason, at,
                       expect="pending", told="withdrawn")]


class ActionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _audit(self, conn: Any, actor: str, what: str, action_id: int, detail: str) -> None:
        write_audit(conn, actor, what, f"action:{action_id}", detail)

    def create(
        self, *, incident_id: int | None, proposal_id: int | None, host: str, kind: str,
        params: dict[str, Any], subject: str, risk: str, plan: dict[str, Any], outcome: str,
        reason: str, state: str, ttl_seconds: float | None = None, actor: str = "policy",
    ) -> Action:
        now = time.time()
        with self.db.transaction() as conn:
            if state == "pending" and (over := _incident_over(conn, incident_id)) is not None:
                # resolved or closed while it was investigated (or by the fix before it):
                # decided, at most once, and nobody is asked to approve it
                state, reason, ttl_seconds = "not_needed", over, None
            # the proposal is claimed first: another process (a second daemon on this state
            # directory) that decided it already has its action, and no second one is made
            # (an advisory one, from a discussion, is never the policy's to decide); it is
            # marked decided, not with the action's state, which moves on in the actions
            # table alone (a copy here said "pending" of a fix long rejected)
            if proposal_id is not None and conn.execute(
                    "UPDATE proposals SET state='decided' WHERE id=? AND state='proposed' "
                    "AND source != 'discussion'", (proposal_id,)).rowcount != 1:
                raise AlreadyDecided(f"proposal {proposal_id} was already decided, or is "
                                     "advisory only")
            cur = conn.execute(
                "INSERT INTO actions(incident_id, proposal_id, host, kind, params, subject, risk, "
                "plan, outcome, reason, state, created_at, expires_at, owner) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (incident_id, proposal_id, host, kind, json.dumps(params), subject, risk,
                 json.dumps(plan), outcome, reason, state, now,
                 now + ttl_seconds if ttl_seconds else None,
                 this_process() if state == "approved" else None))
            action_id = int(cur.lastrowid)
            self._audit(conn, actor, f"action.{state}", action_id,
                        f"{kind} {json.dumps(params)} risk={risk}: {reason}")
            note_action(conn, action_id, state, reason, now)
        return self.get(action_id)

    def get(self, action_id: int) -> Action:
        row = self.db.conn.execute(f"{_SELECT} WHERE a.id=?", (action_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no action {action_id}")
        return _action(row)

    def find(self, states: tuple[str, ...] | None = None) -> list[Action]:
        sql, args = _SELECT, []
        if states:
            sql += f" WHERE a.state IN ({','.join('?' * len(states))})"
            args = list(states)
        return [_action(r) for r in self.db.conn.execute(sql + " ORDER BY a.id", args)]

    def move(self, action_id: int, new: str, actor: str, reason: str,
             result: dict[str, Any] | None = None, ttl_seconds: float | None = None,
             replanned: tuple[dict[str, Any], str, str] | None = None,
             expect: str | None = None, plan: dict[str, Any] | None = None,
             told: str | None = None) -> Action:
        """One allowed state change, in one transaction, audited; refused moves raise
        :class:`DecidedMeanwhile`. ``ttl_seconds``: how long a person has to answer an action moved
        to ``pending``; ``replanned``: its plan, subject and risk as the policy judges them
        now; ``expect``: the state the caller decided on, which the action must still be in
        (a person's decision on a pending action, not on one another terminal approved);
        ``plan``: the plan the caller decided on, which the action must still have, else
        :class:`PlanChanged` (a person's yes is to the commands they judged, not to those
        another terminal's ``approve`` replanned it to meanwhile); ``told``: see
        :func:`move_in`."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT state, plan FROM actions WHERE id=?",
                               (action_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no action {action_id}")
            if not move_in(conn, action_id, new, actor, reason, time.time(), result=result,
                           ttl_seconds=ttl_seconds, replanned=replanned, expect=expect,
                           plan=plan, told=told):
                # the plan alone refused it: the caller is told so, not "it is pending"
                if plan is not None and new in MOVES.get(row["state"], frozenset()) and \
                        expect in (None, row["state"]) and (now := _plan(row)) != plan:
                    raise PlanChanged(action_id, row["state"], new, now)
                raise DecidedMeanwhile(action_id, row["state"], new)
        return self.get(action_id)

    def left_to_checks(self, action_id: int, actor: str, reason: str,
                       result: dict[str, Any]) -> Action:
        """executing -> failed, for a fix whose commands ran and whose verification a stop
        cut short: nobody is told it failed now; its incident's next check tells
        (:data:`LEFT_TO_CHECKS`)."""
        return self.move(action_id, "failed", actor, reason, result, told=LEFT_TO_CHECKS)

    def claim(self, action_id: int, actor: str, detail: str = "execution started"
              ) -> Action | None:
        """approved -> executing, atomically: only one caller ever gets the action to run.
        ``detail``: what its history says of the start."""
        now = time.time()
        with self.db.transaction() as conn:
            cur = conn.execute("UPDATE actions SET state='executing', started_at=?, owner=? "
                               "WHERE id=? AND state='approved'", (now, this_process(), action_id))
            if cur.rowcount != 1:
                return None
            self._audit(conn, actor, "action.executing", action_id, detail)
        return self.get(action_id)

    def ran(self, action_id: int, outputs: list[dict[str, Any]], at: float) -> None:
        """An executing action's commands ran (their outputs kept), ending at ``at``; its
        verification follows. What it ran stays on record whatever cuts the verification
        short, and when: a checker of another process judges its incident by what came
        after (:meth:`fixes_since`)."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE actions SET result=?, ran_at=? WHERE id=? AND state='executing'",
                         (json.dumps({"commands": outputs, "verification": "running"}), at,
                          action_id))
            self._audit(conn, "executor", "action.ran", action_id,
                        f"{len(outputs)} command(s) ran; verifying")

    def verified(self, action_id: int, detail: str) -> None:
        """An executing action's verification found it fixed (``detail``); its end follows.
        From now on a check may resolve its incident again (see the incidents store's
        ``_FIXING``)."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE actions SET result=json_set(result, '$.verification', ?) "
                         "WHERE id=? AND state='executing' AND result IS NOT NULL",
                         (detail, action_id))

    def expire(self, now: float | None = None, ttl: float | None = None) -> list[Action]:
        """Pending actions whose time for an answer has passed, now expired. ``ttl``: the
        longest time for an answer; one that ends later was given on a clock since set back
        (NTP correcting one that ran a year ahead), and ends ``ttl`` from now instead, not
        when the clock catches up: its incident waited for nobody all that time."""
        now = now or time.time()
        with self.db.transaction() as conn:
            if ttl is not None:
                conn.execute("UPDATE actions SET expires_at=? WHERE state='pending' AND "
                             "expires_at>?", (now + ttl, now + ttl))
            rows = conn.execute("SELECT id FROM actions WHERE state='pending' AND expires_at<?",
                                (now,)).fetchall()
            for r in rows:
                conn.execute("UPDATE actions SET state='expired' WHERE id=?", (r["id"],))
                self._audit(conn, "policy", "action.expired", r["id"], "approval TTL passed")
        return [self.get(r["id"]) for r in rows]

    def replan(self, action_id: int, plan: dict[str, Any], subject: str, risk: str,
               reason: str, actor: str, ttl_seconds: float | None = None) -> Action:
        """A pending action's plan as the policy makes it now (what it runs changed since it
        was decided): a person then approves what will run, not what was shown before, and
        has ``ttl_seconds`` again to do so."""
        with self.db.transaction() as conn:
            cur = conn.execute("UPDATE actions SET plan=?, subject=?, risk=?, reason=?, "
                               "expires_at=COALESCE(?, expires_at) "
                               "WHERE id=? AND state='pending'",
                               (json.dumps(plan), subject, risk, reason,
                                time.time() + ttl_seconds if ttl_seconds else None, action_id))
            if cur.rowcount != 1:
                raise DecidedMeanwhile(action_id, self.get(action_id).state, "pending again")
            self._audit(conn, actor, "action.replanned", action_id, reason)
        return self.get(action_id)

    def orphaned(self, state: str) -> list[Action]:
        """Actions in ``state`` (approved, executing) whose holding process is gone."""
        return [a for a in self.find((state,)) if holder_gone(a)]

    def interrupted(self) -> list[int]:
        """After a crash, or a stop while the store refused an end: actions caught in
        ``executing`` by a process that is gone end as failed, and are never re-run (returned:
        the failed ones). Nobody knows here whether their command ran, nor how it ended;
        except where it is on record: those whose verification had found them fixed
        (:meth:`verified`) end as succeeded, and those whose commands had all run to exit 0
        (:meth:`ran`) fail as unverified (:data:`UNVERIFIED`), their verification cut off.
        One that a living process (an ``approve`` command) runs is left to it."""
        failed = []
        with self.db.transaction() as conn:
            for action in self.orphaned("executing"):
                action_id = action.id
                verified = (action.result or {}).get("verification")
                if verified and verified != "running":
                    # its verification found it fixed (``verified``) before the end: it
                    # succeeded, whatever became of the process that was to say so
                    self._interrupted_verified(conn, action_id, str(verified))
                    continue
                # what it ran, where it got that far, stays on record
                if verified == "running":
                    # its commands ran and said so: "whether it ran is not known" would be
                    # a falsehood beside their recorded exit 0; whether it held is what
                    # nobody knows
                    why = f"{UNVERIFIED}{ENDED}; not run again" + (
                        "" if action.incident_id is not None else
                        "; no incident's checks follow it: a person must look")
                    result = {**(action.result or {}), "verification": f"cut off ({ENDED})"}
                else:
                    why = f"{INTERRUPTED}{ENDED}; not run again, a person must check"
                    result = {**(action.result or {}), "error": why}
                # its reason too: `approve list` and `show` said why it had been approved
                cur = conn.execute("UPDATE actions SET state='failed', finished_at=?, result=?, "
                                   "reason=? WHERE id=? AND state='executing'",
                                   (time.time(), json.dumps(result), why, action_id))
                if cur.rowcount != 1:
                    continue
                failed.append(action_id)
                self._audit(conn, "executor", "action.failed", action_id,
                            f"{why.partition(ENDED)[0]}{ENDED}; not retried")
                if verified != "running" or action.incident_id is None:
                    # one that ran for an incident is told by what follows: its all-clear
                    # where it held, the next fix's outcome where not ("fix failed ... a
                    # person must look" paged a person of a fix that had worked); one of no
                    # incident (a discussion's) has nothing that follows
                    note_action(conn, action_id, "failed", why)
        return failed

    def verified_end(self, action_id: int, why: str) -> bool:
        """An executing action whose verification found it fixed (:meth:`verified`) ends as
        succeeded, where the process that ran it stops before recording its end (``why``);
        False where it was not so (another process ended it)."""
        action = self.get(action_id)
        verified = (action.result or {}).get("verification")
        if action.state != "executing" or not verified or verified == "running":
            return False
        with self.db.transaction() as conn:
            return self._interrupted_verified(conn, action_id, str(verified), why)

    def _interrupted_verified(self, conn: Any, action_id: int, verified: str,
                              ended: str = ENDED) -> bool:
        why = f"{verified} (verified; {ended})"
        cur = conn.execute("UPDATE actions SET state='succeeded', finished_at=?, reason=? "
                           "WHERE id=? AND state='executing'", (time.time(), why, action_id))
        if cur.rowcount != 1:
            return False
        self._audit(conn, "executor", "action.succeeded", action_id, why)
        note_action(conn, action_id, "succeeded", why)
        return True

    def fixes_since(self, host: str, since: float) -> dict[tuple[str, str], float]:
        """(rule, subject) of ``host``'s incidents -> when a fix of it last ran, of the fixes
        that ran at ``since`` or later, whichever process ran them (an ``approve``, a
        daemon before its restart)."""
        rows = self.db.conn.execute(
            "SELECT i.rule, i.subject, MAX(a.ran_at) AS at FROM actions a "
            "JOIN incidents i ON i.id = a.incident_id "
            "WHERE a.host=? AND a.ran_at>=? GROUP BY i.rule, i.subject", (host, since))
        return {(r["rule"], r["subject"]): r["at"] for r in rows}

    def recent_attempts(self, host: str, kind: str, subject: str, since: float,
                        until: float = float("inf")) -> int:
        """How often the fix started from ``since`` up to (not including) ``until``."""
        row = self.db.conn.execute(
            "SELECT COUNT(*) FROM actions WHERE host=? AND kind=? AND subject=? AND "
            "started_at>=? AND started_at<? AND state IN ('executing','succeeded','failed')",
            (host, kind, subject, since, until)).fetchone()
        return int(row[0])

    # -- lessons: what the knowledge base is still to learn of actions that ran ---------------
    def lesson_due(self, action_id: int) -> None:
        """Keep that ``action_id`` is to be learned from, before it is: a knowledge base that
        fails (or a process that ends) meanwhile leaves it here, to be tried again."""
        with self.db.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO lessons_due(action_id, since) VALUES (?, ?)",
                         (action_id, time.time()))

    def lesson_learned(self, action_id: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM lessons_due WHERE action_id=?", (action_id,))

    def lesson_failed(self, action_id: int, error: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE lessons_due SET tries = tries + 1, error=? WHERE action_id=?",
                         (error, action_id))

    def lessons_due(self) -> list[int]:
        """Actions whose lessons wait for the knowledge base, oldest first."""
        return [int(r[0]) for r in self.db.conn.execute(
            "SELECT action_id FROM lessons_due ORDER BY since, action_id")]

    def lessons_waiting(self) -> tuple[int, str | None]:
        """How many lessons wait for the knowledge base, and why the latest try failed."""
        row = self.db.conn.execute(
            "SELECT COUNT(*), (SELECT error FROM lessons_due WHERE error IS NOT NULL "
            "ORDER BY since DESC LIMIT 1) FROM lessons_due").fetchone()
        return int(row[0]), row[1]
