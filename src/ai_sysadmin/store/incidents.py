"""Incidents grouped by fingerprint, their lifecycle and history, the audit log, journal cursors.

An incident resolves itself only when a successful fresh collection no longer shows its finding:
:meth:`IncidentStore.record_check` takes the set of rules that could judge the snapshot, and
leaves every other incident alone.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..errors import NotFoundError, StoreError
from ..monitor.findings import Finding, Severity, masked
from ..monitor.snapshot import JournalEntry
from ..redact import redact, redact_cut
from .actions import LEFT_TO_CHECKS, told_by_checks, withdraw_pending
from .audit import write_audit
from .db import Database
from .hosts import host_removed, registration
from .outbox import (
    LLM,
    Outage,
    checks_of,
    end_outage_untold,
    last_event_kind,
    last_outage_event,
    note_incident,
    note_outage,
)
from .states import LIVE_STATES, STATES


class LiveFinding(NamedTuple):
    """What a live incident says a check found: how bad, and when a look last found it
    (this machine's clock, ``last_seen``)."""

    severity: Severity
    last_seen: float


#: SQL: a fix of the incident (of the row of ``incidents``) is being run or verified: its
#: commands run (no result yet) or its verification is under way (ActionStore.ran); one whose
#: verification found it fixed (ActionStore.verified) lets the checks judge it again
_FIXING = ("EXISTS(SELECT 1 FROM actions a WHERE a.incident_id=incidents.id "
           "AND a.state='executing' AND COALESCE(json_extract(a.result, '$.verification'), "
           "'running')='running')")
#: SQL: the incident's latest fix ended verified: a check that shows its finding again finds
#: that it did not hold
_HELD = ("COALESCE((SELECT a.state='succeeded' FROM actions a WHERE a.incident_id=incidents.id "
         "AND a.started_at IS NOT NULL ORDER BY a.started_at DESC, a.id DESC LIMIT 1), 0)")
#: SQL: the incident (of the row of ``incidents``) was kept open (IncidentStore.keep_open: a
#: fix made its finding go and left what it is about broken) since it last resolved or closed
_KEPT = ("EXISTS(SELECT 1 FROM incident_events e WHERE e.incident_id=incidents.id AND "
         "e.kind='kept_open' AND e.id > COALESCE((SELECT MAX(s.id) FROM incident_events s "
         "WHERE s.incident_id=incidents.id AND s.to_state IN ('resolved','closed')), 0))")
#: SQL: the fix (of the row of ``actions a``) failed only in that a stop cut its verification
#: short (:data:`LEFT_TO_CHECKS`), and nobody was told yet whether it held: the incident's
#: checks tell
_UNTOLD = (f"(a.state='failed' AND COALESCE(json_extract(a.result, '$.{LEFT_TO_CHECKS}'), 0) "
           "AND NOT EXISTS(SELECT 1 FROM notify_events n WHERE n.action_id=a.id AND "
           "n.kind IN ('failed','fixed')))")
#: SQL: when the incident (its id in ``{incident}``) began its episode: when it last reopened,
#: resolved or closed (its ``{col}``: ``at`` or ``id``); 0, never
_EPISODE = ("COALESCE((SELECT MAX(s.{col}) FROM incident_events s WHERE "
            "s.incident_id={incident} AND s.to_state IN ('reopened','resolved','closed')), 0)")
#: the source of a proposal made outside an investigation (a discussion): never decided
ADVISORY = "discussion"

#: allowed lifecycle moves; anything else is refused
TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"investigating", "awaiting_approval", "remediating", "resolved", "closed"}),
    "reopened": frozenset(
        {"investigating", "awaiting_approval", "remediating", "resolved", "closed"}
    ),
    "investigating": frozenset({"open", "awaiting_approval", "remediating", "resolved", "closed"}),
    "awaiting_approval": frozenset({"open", "remediating", "resolved", "closed"}),
    # awaiting_approval: its fix went back to a person before anything of it ran (sudo
    # refused its first command)
    "remediating": frozenset({"open", "awaiting_approval", "resolved", "reopened", "closed"}),
    "resolved": frozenset({"reopened", "closed"}),
    "closed": frozenset(),
}

#: why an investigation that proposed nothing left the incident open; the history is told
#: apart from one with a proposal by it (:meth:`IncidentStore.without_proposal_in_a_row`)
NO_PROPOSAL = "the investigation ended without a proposal"
#: the event of an investigation whose every proposal the policy refused as it decided it:
#: an answer with nothing a person or the policy can run, counted as one without a proposal
ALL_REFUSED = "proposals_refused"

#: the longest an investigation is ever put off: a day, an incident held for a person by
#: agent.max_investigations_per_day (a failed one's backoff is an hour at most). One due later
#: was put off on a clock since set back (NTP correcting a clock that ran a year ahead), and is
#: due now, not when the clock catches up with it
LONGEST_INVESTIGATION_WAIT = 24 * 3600.0

#: journal entries kept for evidence and the burst window
JOURNAL_RETENTION_SECONDS = 7 * 24 * 3600
#: a host's expired journal entries are deleted with every check that stores some, else at
#: most this often: a fleet's checks mostly store none, and the delete was a third of a check's
#: statements
JOURNAL_PRUNE_SECONDS = 3600.0
#: and at most this many a host: a flood of warnings (a chunk of 2,000 a check, every minute)
#: kept for the whole retention was millions of rows, gigabytes, for one noisy unit
JOURNAL_MAX_ENTRIES = 100_000
#: and each message at most this long: a flood of 8 KiB lines (journald keeps them whole on
#: the host) was 800 MB a host at the cap; evidence quotes 300 characters of one
JOURNAL_MESSAGE_KEPT = 2048
#: how much of a proposal's parameters its history event and audit record hold (the
#: proposal keeps them whole): a run_command's argv may be 32 paths of 4 KiB, and
#: `issues show` and `logs audit` printed them whole again
PROPOSAL_SHOWN = 1000
#: the events :meth:`IncidentStore.get` reads unless told otherwise: the latest ones. An incident
#: open for months on a flapping host gathers tens of thousands, and reading them all took a
#: `get` 0.4 s at 50,000
RECENT_EVENTS = 50
#: how much earlier than an incident's latest look (last seen, or found gone) a check stored
#: after it may have begun and be taken for one that ran beside it (a person's `check` beside
#: the daemon's), older news that moves nothing: a check ends within its timeouts. A larger
#: gap is this machine's clock stepped back (NTP), and the checks go on judging
OVERLAP_SECONDS = 600.0


def _open(conn: Any, incident_id: int) -> bool:
    """Whether the incident is open (or reopened): waiting for nothing, neither fixed nor
    investigated now, in the caller's transaction."""
    row = conn.execute("SELECT state FROM incidents WHERE id=?", (incident_id,)).fetchone()
    return row is not None and row["state"] in ("open", "reopened")


def _journal_rows(host: str, consumer: str,
                  journal: Sequence[JournalEntry]) -> list[tuple[Any, ...]]:
    """The rows of ``journal_entries`` for the entries a check read. Host text, any sender's:
    kept masked as evidence is (:func:`masked`, its control characters stripped first: one
    inside a secret's name, ``DB_PASS\bWORD=x``, hid it from the masking)."""
    return [(host, consumer, e.cursor, e.timestamp, e.priority, masked(e.source),
             masked(e.message)[:JOURNAL_MESSAGE_KEPT]) for e in journal]


def _left_to_checks(conn: Any, incident_id: int, seen_at: float, now: float) -> int | None:
    """The incident's latest fix of this episode, where a stop cut its verification short
    and nobody was told how it ended (:data:`_UNTOLD`), and a look taken at ``seen_at``
    came after it ended: that look says whether it held. None otherwise."""
    row = conn.execute(
        f"SELECT a.id, a.finished_at, {_UNTOLD} AS untold FROM actions a WHERE "
        f"a.incident_id=:id AND a.created_at>={_EPISODE.format(col='at', incident=':id')} "
        "ORDER BY a.id DESC LIMIT 1", {"id": incident_id}).fetchone()
    if row is None or not row["untold"] or seen_at < (row["finished_at"] or now):
        return None
    return int(row["id"])


def _stranded(conn: Any, incident_id: int) -> tuple[str, str] | None:
    """Where a remediating incident none of whose fixes is approved or running belongs (its
    fix's end was written, the move back that follows it refused: a full disk), and why;
    None while a fix of it is under way. Left remediating, it was never investigated or
    shown as waiting for a person again while its finding stayed."""
    rows = conn.execute("SELECT id, state FROM actions WHERE incident_id=? ORDER BY id DESC",
                        (incident_id,)).fetchall()
    if any(r["state"] in ("approved", "executing") for r in rows):
        return None
    if pending := [r for r in rows if r["state"] == "pending"]:
        return "awaiting_approval", f"action {pending[0]['id']} waits for a person"
    said = f" (action {rows[0]['id']} {rows[0]['state']})" if rows else ""
    return "open", f"its fix ended{said}; the move back was not recorded then"


def _older_look(seen_at: float, latest: float | None) -> bool:
    """Whether a check that began at ``seen_at`` looked before ``latest`` (see
    :data:`OVERLAP_SECONDS`)."""
    return latest is not None and 0.0 < latest - seen_at <= OVERLAP_SECONDS


#: the journal consumer of the daemon's own checks: whether the daemon can watch a host
#: (``hosts.check_failed_since``) is theirs to say
WATCHING = "daemon"
#: a check of the daemon's that worked: its checks of the host work again
_WATCHED = "last_error=excluded.last_error, check_failed_since=NULL"
#: one run beside the daemon (`check`, `systems refresh`, an approval's or a fix's check,
#: a cron job) that worked says nothing of the daemon's checks, which may still fail: its
#: outcome is told on its own output. Cleared by it, the host would look watched in
#: `systems` until the daemon's next check, and the "failing since" a person is told would be
#: that run's, however long the daemon has failed; while its checks fail, their error stays
#: the host's too (what `systems` shows beside it).
_CHECKED_ASIDE = ("last_error=CASE WHEN hosts.check_failed_since IS NULL "
                  "THEN excluded.last_error ELSE hosts.last_error END")


@dataclass(frozen=True)
class IncidentEvent:
    at: float
    kind: str
    from_state: str | None
    to_state: str | None
    actor: str
    detail: str


@dataclass(frozen=True)
class Incident:
    id: int
    fingerprint: str
    host: str
    rule: str
    subject: str
    severity: str
    summary: str
    evidence: list[str]
    state: str
    opened_at: float
    updated_at: float
    last_seen: float
    resolved_at: float | None
    occurrences: int
    diagnosis: str | None
    investigation_error: str | None = None
    investigation_attempts: int = 0
    #: closed by a person while its finding was present, since when: no new incident opens
    #: for that finding until a check finds it gone (None: not held)
    held_since: float | None = None
    #: the latest events, oldest first (see :meth:`IncidentStore.get`)
    events: list[IncidentEvent] = field(default_factory=list)
    #: how many events the incident has in all; None where they were not read (a listing)
    event_count: int | None = None

    @property
    def earlier_events(self) -> int:
        """How many events came before those in :attr:`events` and were not read."""
        return 0 if self.event_count is None else max(0, self.event_count - len(self.events))

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "events"}
        data["events"] = [e.__dict__ for e in self.events]
        data["earlier_events"] = self.earlier_events
        return data


@dataclass(frozen=True)
class Rises:
    """What one check saw of one counter a rule judges by its rises (a service's restarts,
    its OOM kills): each service whose count rose, with the look after which it did (a later
    one wins), and the start of the counter's window: the host's rises of it before that are
    forgotten with them."""

    rose: Mapping[str, float]
    since: float


@dataclass
class CheckOutcome:
    """What one recorded check changed; new and changed incidents are what the LLM looks at."""

    opened: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    #: the fixes of the resolved incidents that waited for a person, withdrawn with them
    withdrawn: list[int] = field(default_factory=list)
    journal_entries: int = 0
    #: why nothing of the check was stored (its host removed, or added again, while it ran)
    dropped: str | None = None
    #: the host's registration the check was stored for (:func:`registration`)
    registered: float | None = None
    #: each opened, reopened or changed incident's fingerprint: which finding it is
    fingerprints: dict[int, str] = field(default_factory=dict)
    #: live incidents the check did not find, of rules that judged in part from a reading
    #: kept from an earlier look (``kept_rules``): left as they are, for a fresh reading
    left_to_fresh: list[int] = field(default_factory=list)
    #: closed incidents whose finding the check found again, held (``Incident.held_since``):
    #: no new incident opened for it
    held: list[int] = field(default_factory=list)


def _not_the_host(conn: Any, host: str, registered: float | None) -> str | None:
    """Why a check of ``host`` that began for its registration ``registered`` (None: any)
    stores nothing, asked in the transaction that would store it; None when it does."""
    if host_removed(conn, host):
        # `systems remove` committed while the check ran (a dead host's waits out the SSH
        # connect timeout) and closed its incidents: one opened now would be notified,
        # investigated over SSH and, with nothing to resolve it, open forever
        return f"{host} was removed while it ran"
    if registered is not None and registration(conn, host) != registered:
        # removed and added again while it ran: its cursor, entries, incidents and OS are
        # the removed machine's (another machine may have the name now)
        return f"{host} was added again while it ran (`systems remove`, then `systems add`)"
    return None


def _keep_rises(conn: Any, host: str, counter: str, seen: Rises) -> None:
    if not seen.rose:
        return  # the old go with the next rise: a check that saw none writes nothing
    conn.executemany(
        "INSERT INTO rises(host, counter, unit, rose_after) VALUES (?,?,?,?) "
        "ON CONFLICT(host, counter, unit) DO UPDATE SET "
        "rose_after=MAX(rose_after, excluded.rose_after)",
        [(host, counter, unit, at) for unit, at in seen.rose.items()])
    conn.execute("DELETE FROM rises WHERE host=? AND counter=? AND rose_after<?",
                 (host, counter, seen.since))


def _incident(row: Any, events: list[IncidentEvent] | None = None,
              event_count: int | None = None) -> Incident:
    return Incident(
        id=row["id"],
        fingerprint=row["fingerprint"],
        host=row["host"],
        rule=row["rule"],
        subject=row["subject"],
        severity=row["severity"],
        summary=row["summary"],
        evidence=json.loads(row["evidence"]),
        state=row["state"],
        opened_at=row["opened_at"],
        updated_at=row["updated_at"],
        last_seen=row["last_seen"],
        resolved_at=row["resolved_at"],
        occurrences=row["occurrences"],
        diagnosis=row["diagnosis"],
        investigation_error=row["investigation_error"],
        investigation_attempts=row["investigation_attempts"],
        held_since=row["held_since"],
        events=events or [],
        event_count=event_count,
    )


def _shown(parameters: str) -> str:
    """A proposal's parameters as its event and audit record say them: masked, and cut
    at :data:`PROPOSAL_SHOWN` characters with how long they were."""
    if len(parameters) <= PROPOSAL_SHOWN:
        return redact(parameters)
    return (f"{redact_cut(parameters, PROPOSAL_SHOWN)}... (cut: {len(parameters)} "
            "characters in all)")


class IncidentStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        #: when each host's expired journal entries were last deleted (by this process)
        self._pruned: dict[str, float] = {}

    # -- audit -------------------------------------------------------------------------------
    def audit(self, actor: str, action: str, subject: str = "", detail: str = "") -> None:
        with self.db.transaction() as conn:
            write_audit(conn, actor, action, subject, detail)

    def audit_log(self, limit: int = 100, host: str | None = None,
                  since: float | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` audit records, oldest first; with ``host``, those of the
        host itself, its incidents and its actions; with ``since``, those since then."""
        where, args = [], []
        if host is not None:
            # a subject names what it is of ("incident:7"): the host is that row's
            where.append("(subject = 'host:' || ? "
                         "OR (subject LIKE 'incident:%' AND CAST(substr(subject, 10) AS INTEGER)"
                         " IN (SELECT id FROM incidents WHERE host = ?)) "
                         "OR (subject LIKE 'action:%' AND CAST(substr(subject, 8) AS INTEGER)"
                         " IN (SELECT id FROM actions WHERE host = ?)))")
            args += [host, host, host]
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        rows = self.db.conn.execute(
            f"SELECT * FROM audit {'WHERE ' + ' AND '.join(where) if where else ''} "
            "ORDER BY id DESC LIMIT ?", (*args, limit),
        ).fetchall()
        return [dict(r) for r in reversed(rows)]

    def ids_of_host(self, host: str) -> tuple[frozenset[int], frozenset[int]]:
        """The ids of the host's incidents and of its actions (what the logs of an
        investigation or a fix name it by)."""
        conn = self.db.conn
        incidents = conn.execute("SELECT id FROM incidents WHERE host=?", (host,)).fetchall()
        actions = conn.execute("SELECT id FROM actions WHERE host=?", (host,)).fetchall()
        return frozenset(r[0] for r in incidents), frozenset(r[0] for r in actions)

    def last_said(self, subject: str) -> str | None:
        """The latest audit entry's detail about ``subject`` (``action:7``)."""
        row = self.db.conn.execute(
            "SELECT detail FROM audit WHERE subject=? ORDER BY id DESC LIMIT 1", (subject,)
        ).fetchone()
        return row["detail"] if row else None

    # -- journal cursors ---------------------------------------------------------------------
    def journal_cursor(self, host: str, consumer: str) -> str | None:
        row = self.db.conn.execute(
            "SELECT cursor FROM journal_cursors WHERE host=? AND consumer=?", (host, consumer)
        ).fetchone()
        return row["cursor"] if row else None

    # -- what a checker that starts takes up (a restarted daemon, a fresh `check`) ----------
    def live_findings(self, host: str) -> dict[tuple[str, str], LiveFinding]:
        """(rule, subject) -> ``host``'s live incidents: what the checks before found, of
        whichever process, and how bad (a level that was critical keeps its margin too), less
        what a person resolved or closed since. One query on the (host, state) index; none
        of a healthy host's rows."""
        rows = self.db.conn.execute(
            f"SELECT rule, subject, severity, last_seen FROM incidents WHERE host=? AND state "
            f"IN ({','.join('?' * len(LIVE_STATES))})", (host, *LIVE_STATES))
        return {(r["rule"], r["subject"]): LiveFinding(Severity.parse(r["severity"]),
                                                       r["last_seen"]) for r in rows}

    def rises(self, host: str, counter: str, since: float) -> dict[str, float]:
        """Service -> the latest look after which its ``counter`` rose (this machine's
        clock), of those at ``since`` or later (see :meth:`record_check`)."""
        rows = self.db.conn.execute(
            "SELECT unit, rose_after FROM rises WHERE host=? AND counter=? AND rose_after>=?",
            (host, counter, since))
        return {r["unit"]: r["rose_after"] for r in rows}

    def journal_entries(
        self, host: str, since: float = 0.0, consumer: str | None = None
    ) -> list[dict[str, Any]]:
        sql = "SELECT * FROM journal_entries WHERE host=? AND at>=?"
        args: list[Any] = [host, since]
        if consumer is not None:
            sql += " AND consumer=?"
            args.append(consumer)
        return [dict(r) for r in self.db.conn.execute(sql + " ORDER BY id", args)]

    # -- one check ---------------------------------------------------------------------------
    def record_check(
        self,
        host: str,
        findings: Sequence[Finding],
        judged_rules: Iterable[str],
        *,
        unjudged: Iterable[str] = (),
        consumer: str = "daemon",
        journal: Sequence[JournalEntry] = (),
        journal_cursor: str | None = None,
        os_name: str | None = None,
        collected_ok: bool = True,
        reachable: bool | None = True,
        last_error: str | None = None,
        actor: str = "monitor",
        rises: Mapping[str, Rises] | None = None,
        registered: float | None = None,
        collected_at: float | None = None,
        sighting: bool = True,
        kept_rules: Collection[str] = (),
    ) -> CheckOutcome:
        """Store one check of one host in a single transaction.

        The journal entries and the new cursor are written together, so a crash before the
        commit re-reads the same entries and a crash after it never sees them again. A
        check of a host removed while it ran (:func:`host_removed`) stores nothing.
        ``rises``: counter (a service's "restarts", its "oom_kills") -> the rises of it this
        check saw (:class:`Rises`), kept for the checkers that start later (a restarted
        daemon, another process). Only the daemon's own checks (``consumer``
        :data:`WATCHING`) end its checks' failing (:meth:`record_check_failed`).
        ``registered``: the host's registration the check began for (:func:`registration`);
        a host added again since is another, maybe another machine, and nothing is stored.
        ``collected_at``: when its collection began (now where not given). Checks of one
        host by two processes (a person's ``check`` beside the daemon's) may be stored in
        another order than they looked: one that looked before an incident was last seen
        does not resolve it, nor one that looked before it was resolved reopen it (the
        fresher look stands; the next check judges anew). ``sighting``: whether a finding
        seen again counts as seen once more (a fix's verification looks every few seconds
        for a minute: a look of its is no new sighting, unless it reopens an incident).
        ``unjudged``: the fingerprints
        of what the judged rules could not judge (a mount df could not read), whose
        incidents stay as they are. ``kept_rules``: the judged rules that judged in part from
        a reading the checker kept from an earlier look (the daemon reads the unit files
        hourly). Such a reading resolves nothing: an incident of one of them may have been
        seen since by another look (a person's `check`, a fix's), and a kept reading is
        older news; it is left for the fresh reading the checker takes next
        (``CheckOutcome.left_to_fresh``).
        """
        now = time.time()
        seen_at = now if collected_at is None else min(collected_at, now)
        outcome = CheckOutcome(journal_entries=len(journal))
        # masked before the write lock is taken: a chunk of 2,000 long lines held it for over
        # a minute, and every other process's statement was refused at the busy timeout
        kept = _journal_rows(host, consumer, journal)
        with self.db.transaction() as conn:
            if (dropped := _not_the_host(conn, host, registered)) is not None:
                return CheckOutcome(dropped=dropped)
            conn.execute(
                "INSERT INTO hosts(name, first_seen, last_check, last_ok, os, reachable, "
                "last_error) VALUES (?,?,?,?,?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET last_check=excluded.last_check, "
                "last_ok=COALESCE(excluded.last_ok, hosts.last_ok), "
                "os=COALESCE(excluded.os, hosts.os), "
                "reachable=COALESCE(excluded.reachable, hosts.reachable), "
                + (_WATCHED if consumer == WATCHING else _CHECKED_ASIDE),
                (host, now, now, now if collected_ok else None, os_name,
                 None if reachable is None else int(reachable), last_error),
            )
            self._keep_journal(conn, host, consumer, kept, journal_cursor, now)
            for counter, seen in (rises or {}).items():
                _keep_rises(conn, host, counter, seen)
            for finding in findings:
                self._upsert(conn, finding, now, outcome, actor, seen_at, sighting)
            # what was not judged was not found gone
            self._resolve_gone(conn, host, {f.fingerprint for f in findings} | set(unjudged),
                               set(judged_rules), now, outcome, actor, seen_at,
                               frozenset(kept_rules))
            outcome.registered = registration(conn, host)
        return outcome

    def registration(self, host: str) -> float | None:
        """See :func:`registration`."""
        return registration(self.db.conn, host)

    def _keep_journal(self, conn: Any, host: str, consumer: str, journal: list[tuple[Any, ...]],
                      cursor: str | None, now: float) -> None:
        """``journal``: the rows of :func:`_journal_rows`."""
        if journal:
            conn.executemany(
                "INSERT INTO journal_entries(host, consumer, cursor, at, priority, source, "
                "message) VALUES (?,?,?,?,?,?,?)", journal)
        if cursor:
            conn.execute(
                "INSERT INTO journal_cursors(host, consumer, cursor, updated_at) "
                "VALUES (?,?,?,?) ON CONFLICT(host, consumer) DO UPDATE SET "
                "cursor=excluded.cursor, updated_at=excluded.updated_at",
                (host, consumer, cursor, now),
            )
        if journal or now - self._pruned.get(host, float("-inf")) >= JOURNAL_PRUNE_SECONDS:
            conn.execute("DELETE FROM journal_entries WHERE host=? AND at<?",
                         (host, now - JOURNAL_RETENTION_SECONDS))
            # the oldest beyond the cap: walks the (host, at) index, no sort
            conn.execute("DELETE FROM journal_entries WHERE host=:host AND at<(SELECT at FROM "
                         "journal_entries WHERE host=:host ORDER BY at DESC LIMIT 1 OFFSET "
                         ":keep)", {"host": host, "keep": JOURNAL_MAX_ENTRIES - 1})
            self._pruned[host] = now

    def _resolve_gone(self, conn: Any, host: str, seen: set[str], judged: set[str],
                      now: float, outcome: CheckOutcome, actor: str, seen_at: float,
                      kept_rules: frozenset[str]) -> None:
        """Live incidents of rules that judged this check and no longer found them. One
        whose fix is being run or verified is its verification's to judge: a finding gone
        for a moment (a restarted service that dies again) is no resolution, and the first
        check after a fix that verified resolves it. ``kept_rules``: see :meth:`record_check`."""
        # kept: a fix made the finding go without fixing what it is about (kept_open)
        live = conn.execute(
            f"SELECT id, rule, fingerprint, state, last_seen, {_KEPT} AS kept "
            f"FROM incidents WHERE host=? "
            f"AND state IN ({','.join('?' * len(LIVE_STATES))}) AND NOT {_FIXING}",
            (host, *LIVE_STATES),
        ).fetchall()
        for row in live:
            if row["rule"] not in judged or row["fingerprint"] in seen or row["kept"]:
                continue
            if row["rule"] in kept_rules:
                outcome.left_to_fresh.append(row["id"])
            elif not _older_look(seen_at, row["last_seen"]):
                self._held(conn, row["id"], actor, seen_at, now)
                outcome.withdrawn += self._move(
                    conn, row["id"], row["state"], "resolved", actor,
                    "a fresh collection no longer shows the finding", now)
                # when it was found gone: what a later-stored older look is measured by
                conn.execute("UPDATE incidents SET resolved_at=? WHERE id=?",
                             (seen_at, row["id"]))
                outcome.resolved.append(row["id"])
        held = conn.execute("SELECT id, rule, fingerprint, last_seen FROM incidents WHERE "
                            "host=? AND held_since IS NOT NULL", (host,)).fetchall()
        for row in held:
            # found gone as a live one would be resolved: not by a check that could not
            # judge it, nor by a reading kept from before, nor by an older look
            if row["rule"] not in judged or row["fingerprint"] in seen or \
                    row["rule"] in kept_rules or _older_look(seen_at, row["last_seen"]):
                continue
            conn.execute("UPDATE incidents SET held_since=NULL WHERE id=?", (row["id"],))
            self._event(conn, row["id"], "cleared", None, None, actor, "a fresh collection no "
                        "longer shows the finding: if it comes back, it opens a new incident",
                        now)

    def _upsert(
        self, conn: Any, finding: Finding, now: float, outcome: CheckOutcome, actor: str,
        seen_at: float, sighting: bool = True,
    ) -> None:
        evidence = json.dumps(list(finding.evidence))
        row = conn.execute(
            "SELECT * FROM incidents WHERE fingerprint=? AND state!='closed'",
            (finding.fingerprint,),
        ).fetchone()
        if row is None and (held := conn.execute(
                "SELECT id, severity FROM incidents WHERE host=? AND fingerprint=? AND "
                "held_since IS NOT NULL ORDER BY id DESC LIMIT 1",
                (finding.host, finding.fingerprint)).fetchone()) is not None:
            if finding.severity <= Severity.parse(held["severity"]):
                # closed for good by a person while present: still there, it stays closed
                conn.execute("UPDATE incidents SET last_seen=MAX(last_seen, ?) WHERE id=?",
                             (seen_at, held["id"]))
                outcome.held.append(held["id"])
                return
            # worse than what the person closed (a disk 88 % full, now 99 %): that was not
            # what they let be; a new incident opens, and is told
            conn.execute("UPDATE incidents SET held_since=NULL WHERE id=?", (held["id"],))
            self._event(conn, held["id"], "cleared", None, None, actor,
                        f"the finding is {finding.severity.label} now, worse than when it was "
                        "closed: a new incident opens for it", now)
        if row is None:
            cur = conn.execute(
                "INSERT INTO incidents(fingerprint, host, rule, subject, severity, summary, "
                "evidence, state, opened_at, updated_at, last_seen) "
                "VALUES (?,?,?,?,?,?,?,'open',?,?,?)",
                (finding.fingerprint, finding.host, finding.rule, finding.subject,
                 finding.severity.label, finding.summary, evidence, now, now, seen_at),
            )
            self._state_event(conn, cur.lastrowid, "opened", None, "open", actor,
                              finding.summary, now)
            note_incident(conn, cur.lastrowid, "opened", now)
            outcome.opened.append(cur.lastrowid)
            outcome.fingerprints[cur.lastrowid] = finding.fingerprint
            return
        incident_id = row["id"]
        if row["state"] == "resolved" and _older_look(seen_at, row["resolved_at"]):
            # this look came before the one that found it gone (or a person's resolve):
            # stored late, it is older news than the resolution
            outcome.unchanged.append(incident_id)
            return
        if _older_look(seen_at, row["last_seen"]):
            # a look from before the last one stored (a person's `check` that began before
            # the daemon's): older news than the severity and evidence the incident holds,
            # which would turn back, and turn again at the next look, telling it got worse
            outcome.unchanged.append(incident_id)
            return
        reopens = False
        if row["state"] in ("resolved", "remediating"):
            fixing, held = conn.execute(f"SELECT {_FIXING}, {_HELD} FROM incidents WHERE id=?",
                                        (incident_id,)).fetchone()
            # a fix being run or verified says how it ends (resolved before a person's fix
            # of it ran); one that verified and ended, no check seeing it gone since, did
            # not hold
            reopens = (row["state"] == "resolved" and not fixing) or (
                row["state"] == "remediating" and bool(held))
        state = row["state"]
        if state == "remediating" and not reopens and \
                (back := _stranded(conn, incident_id)) is not None:
            state = back[0]
            self._move(conn, incident_id, "remediating", state, actor, back[1], now)
        if reopens:
            self._move(conn, incident_id, row["state"], "reopened", actor, finding.summary,
                       now)
            # a new episode: the last one's failed attempts only paced its retries (after a
            # long outage, an hour apart), and the retry they planned is not this one's; a
            # hold for a person (max_investigations_per_day) is set again by the next run
            conn.execute("UPDATE incidents SET investigation_attempts=0, "
                         "next_investigation_at=NULL WHERE id=?", (incident_id,))
            outcome.reopened.append(incident_id)
            outcome.fingerprints[incident_id] = finding.fingerprint
        elif row["severity"] != finding.severity.label:
            self._event(
                conn, incident_id, "changed", row["state"], row["state"], actor,
                f"severity {row['severity']} -> {finding.severity.label}: {finding.summary}", now,
            )
            outcome.changed.append(incident_id)
            outcome.fingerprints[incident_id] = finding.fingerprint
        else:
            outcome.unchanged.append(incident_id)
        conn.execute(
            "UPDATE incidents SET severity=?, summary=?, evidence=?, "
            "last_seen=MAX(last_seen, ?), updated_at=?, occurrences=occurrences+? WHERE id=?",
            (finding.severity.label, finding.summary, evidence, seen_at, now,
             int(sighting or reopens), incident_id),
        )
        # after the update: the notification quotes this episode's summary and evidence
        if reopens:
            note_incident(conn, incident_id, "reopened", now)
        elif finding.severity > Severity.parse(row["severity"]):
            note_incident(conn, incident_id, "worse", now)
        if state in ("open", "reopened"):
            self._not_held(conn, incident_id, actor, seen_at, now)

    def _not_held(self, conn: Any, incident_id: int, actor: str, seen_at: float,
                  now: float) -> None:
        """The incident's finding, found by a look taken after its latest fix of this
        episode ended with its verification cut short by a stop (:data:`LEFT_TO_CHECKS`):
        the fix did not hold, and its failure is told now (a person must look), once, as
        its verification would have told it."""
        action_id = _left_to_checks(conn, incident_id, seen_at, now)
        if action_id is None:
            return
        reason = (f"action {action_id} ran, a stop cut its verification short, and a check "
                  "since still finds what it was to fix: it did not hold")
        told_by_checks(conn, action_id, False, actor, reason, now)
        # in the history too: the incident waits for a person now (needing_person)
        self._escalated(conn, incident_id, actor, reason, now, tell=False)

    @staticmethod
    def _held(conn: Any, incident_id: int, actor: str, seen_at: float, now: float) -> None:
        """The other side of :meth:`_not_held`: the finding gone at that look, the fix held,
        and it succeeded, told as fixed, as its verification would have told it (the person
        who approved it heard nothing since). Before the incident resolves: its all-clear is
        then this message's to say."""
        action_id = _left_to_checks(conn, incident_id, seen_at, now)
        if action_id is not None:
            told_by_checks(conn, action_id, True, actor, "a stop cut its verification short; "
                           "the next check no longer finds what it was to fix: it held", now)

    @staticmethod
    def _event(
        conn: Any, incident_id: int, kind: str, old: str | None, new: str | None,
        actor: str, detail: str, now: float,
    ) -> None:
        conn.execute(
            "INSERT INTO incident_events(incident_id, at, kind, from_state, to_state, actor, "
            "detail) VALUES (?,?,?,?,?,?,?)",
            (incident_id, now, kind, old, new, actor, detail),
        )

    @classmethod
    def _state_event(
        cls, conn: Any, incident_id: int, kind: str, old: str | None, new: str, actor: str,
        detail: str, now: float,
    ) -> None:
        """A change of an incident's state, its opening included: in its history and in the
        audit log (``incident.<state>``), in the caller's transaction."""
        cls._event(conn, incident_id, kind, old, new, actor, detail, now)
        write_audit(conn, actor, f"incident.{new}", f"incident:{incident_id}", detail, at=now)

    def _move(
        self, conn: Any, incident_id: int, old: str, new: str, actor: str, reason: str,
        now: float,
    ) -> list[int]:
        """The incident from ``old`` to ``new``, in the caller's transaction. A resolution,
        whoever found it (a check, a fix that verified, a person), withdraws the fixes that
        still wait for a person's yes: they are not needed, and would otherwise wait out
        their time in `approve list`. Their ids."""
        if new not in TRANSITIONS.get(old, frozenset()):
            raise StoreError(f"incident {incident_id} cannot go from {old} to {new}")
        conn.execute(
            "UPDATE incidents SET state=?, updated_at=?, resolved_at=CASE WHEN ?='resolved' "
            "THEN ? ELSE resolved_at END WHERE id=?",
            (new, now, new, now, incident_id),
        )
        self._state_event(conn, incident_id, "state", old, new, actor, reason, now)
        if new == "reopened":
            # back after it resolved: what was proposed for the time before and never
            # decided (the daemon died in between) is not decided after a restart beside
            # what this time's investigation proposes
            conn.execute("UPDATE proposals SET state='abandoned' WHERE incident_id=? AND "
                         "state='proposed' AND source != ?", (incident_id, ADVISORY))
        if new != "resolved":
            return []
        note_incident(conn, incident_id, "resolved", now, reason)
        return withdraw_pending(conn, incident_id, actor, f"incident {incident_id} resolved: "
                                f"no longer needed, withdrawn ({reason})", now)

    # -- people and later layers ---------------------------------------------------------------
    def transition(self, incident_id: int, new: str, actor: str, reason: str = "") -> Incident:
        """A person's (or the executor's) move of the incident to ``new``. Closed while live
        (its finding present at the last look), it is closed for good: held
        (``Incident.held_since``), no check that still finds its finding opens a new incident
        for it; one that finds it gone ends the hold, and its return opens a new incident."""
        if new not in STATES:
            raise StoreError(f"unknown incident state {new!r}; states: {', '.join(STATES)}")
        with self.db.transaction() as conn:
            row = conn.execute("SELECT state FROM incidents WHERE id=?", (incident_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no incident {incident_id}")
            if row["state"] == new:
                return self.get(incident_id)
            now = time.time()
            self._move(conn, incident_id, row["state"], new, actor, reason or new, now)
            if new == "closed" and row["state"] in LIVE_STATES:
                conn.execute("UPDATE incidents SET held_since=? WHERE id=?", (now, incident_id))
                self._event(conn, incident_id, "held", None, None, actor, "closed while its "
                            "finding is present: no new incident opens for it until a check "
                            "finds it gone", now)
        return self.get(incident_id)

    def lift_hold(self, incident_id: int, actor: str, reason: str = "") -> Incident:
        """A person's undoing of a close's hold (``Incident.held_since``): closed while its
        finding was present, by mistake or before they changed their mind, the incident
        held its finding unwatched for as long as it stayed. The incident stays closed, its
        history kept; the next check that finds its finding opens a new incident for it,
        told and investigated as any. Refused (:class:`StoreError`) for one not held."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT state, held_since FROM incidents WHERE id=?",
                               (incident_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no incident {incident_id}")
            if row["held_since"] is None:
                raise StoreError(
                    f"incident {incident_id} is {row['state']}, and holds no finding: nothing "
                    "to reopen" + ("; it reopens by itself if its finding comes back"
                                   if row["state"] == "resolved" else ""))
            now = time.time()
            detail = ("hold lifted: the next check that finds its finding opens a new "
                      "incident for it") + (f" ({reason})" if reason else "")
            conn.execute("UPDATE incidents SET held_since=NULL WHERE id=?", (incident_id,))
            self._event(conn, incident_id, "cleared", None, None, actor, detail, now)
            write_audit(conn, actor, "incident.hold_lifted", f"incident:{incident_id}", detail,
                        at=now)
        return self.get(incident_id)

    def get(self, incident_id: int, history: int | None = RECENT_EVENTS) -> Incident:
        """The incident with its latest ``history`` events and the count of all of them.

        ``history=0``: the incident alone, no event read (for its state, rule, fingerprint);
        None: every event, however many.
        """
        conn = self.db.conn
        row = conn.execute("SELECT * FROM incidents WHERE id=?", (incident_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no incident {incident_id}")
        if history == 0:
            return _incident(row)
        # one statement: the count and the tail are of the same moment
        rows = conn.execute(
            "SELECT *, (SELECT COUNT(*) FROM incident_events WHERE incident_id=:id) AS total "
            "FROM incident_events WHERE incident_id=:id ORDER BY id DESC LIMIT :limit",
            {"id": incident_id, "limit": -1 if history is None else history},
        ).fetchall()
        events = [IncidentEvent(e["at"], e["kind"], e["from_state"], e["to_state"], e["actor"],
                                e["detail"]) for e in reversed(rows)]
        return _incident(row, events, rows[0]["total"] if rows else 0)

    def incidents(
        self, states: Sequence[str] | None = LIVE_STATES, host: str | None = None
    ) -> list[Incident]:
        sql = "SELECT * FROM incidents WHERE 1=1"
        args: list[Any] = []
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args += list(states)
        if host:
            sql += " AND host=?"
            args.append(host)
        rows = self.db.conn.execute(sql + " ORDER BY id", args).fetchall()
        return [_incident(r) for r in rows]

    def needing_person(self, incident_ids: Collection[int]) -> set[int]:
        """Those of ``incident_ids`` that are open (or reopened) and wait for a person, not
        for the assistant: since their last episode began they were escalated (their
        investigations spent, a fix that ran too often or was kept open), or their latest fix
        failed, was rejected or expired, or was only recorded (the observe level, a dry run:
        the assistant is done with it, nothing more runs). Open alone, one is still the
        assistant's."""
        if not incident_ids:
            return set()
        ids = list(incident_ids)
        # a fix whose verification a stop cut short is the checks' to judge until they tell
        rows = self.db.conn.execute(
            f"SELECT i.id FROM incidents i WHERE i.id IN ({','.join('?' * len(ids))}) "
            "AND i.state IN ('open','reopened') AND (EXISTS(SELECT 1 FROM incident_events e "
            "WHERE e.incident_id=i.id AND e.kind='escalated' AND "
            f"e.id>{_EPISODE.format(col='id', incident='i.id')}) OR COALESCE((SELECT a.state "
            f"IN ('failed','escalated','rejected','expired','recorded') AND NOT {_UNTOLD} "
            "FROM actions a WHERE a.incident_id=i.id AND a.created_at>="
            f"{_EPISODE.format(col='at', incident='i.id')} ORDER BY a.id DESC LIMIT 1), 0))",
            ids)
        return {int(r[0]) for r in rows}

    # -- investigations ----------------------------------------------------------------------
    def add_proposal(
        self, incident_id: int | None, host: str, kind: str, parameters: str, rationale: str,
        advisory: bool = False,
    ) -> int:
        """A proposal of the model. Only one made while its incident is investigated is the
        investigation's, for the policy to decide; one made elsewhere (``approve discuss``,
        ``chat``; ``advisory``: a conversation with a person, whatever the incident's state)
        is advisory: recorded for people to read, never decided, never run."""
        now = time.time()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT state FROM incidents WHERE id=?",
                               (incident_id,)).fetchone() if incident_id is not None else None
            investigated = row is not None and row["state"] == "investigating"
            source = "agent" if investigated and not advisory else ADVISORY
            cur = conn.execute(
                "INSERT INTO proposals(incident_id, host, kind, parameters, rationale, "
                "created_at, source) VALUES (?,?,?,?,?,?,?)",
                (incident_id, host, kind, parameters, rationale, now, source),
            )
            # an investigation's proposal that came after its incident left it (a check
            # resolved it meanwhile) is advisory too, and was said to be a discussion's
            where = (" in a discussion" if advisory or row is None
                     else f" once the incident was {row['state']}")
            said = f"proposed {kind} {_shown(parameters)}" + (
                "" if source == "agent" else f"{where} (advisory: never decided)")
            if incident_id is not None:
                self._event(conn, incident_id, "proposal", None, None, "agent", said, now)
            write_audit(conn, "agent", "proposal.recorded", f"incident:{incident_id}",
                        said, at=now)
        return int(cur.lastrowid)

    def proposal_advisory(self, proposal_id: int) -> bool:
        """Whether the proposal is advisory only (see :meth:`add_proposal`)."""
        row = self.db.conn.execute("SELECT source FROM proposals WHERE id=?",
                                   (proposal_id,)).fetchone()
        return row is None or row["source"] == ADVISORY

    def proposals(self, incident_id: int) -> list[dict[str, Any]]:
        """The incident's proposals, each with the action the policy made of it
        (``action_id``, None where none was made) and ``state``: that action's state now
        (pending, rejected, succeeded ...), read from the actions table, where it changes;
        else the proposal's own (proposed: not decided yet; abandoned: its investigation
        failed before it was decided)."""
        rows = self.db.conn.execute(
            "SELECT p.id, p.incident_id, p.host, p.kind, p.parameters, p.rationale, "
            "p.created_at, p.source, a.id AS action_id, COALESCE(a.state, p.state) AS state "
            "FROM proposals p LEFT JOIN actions a ON a.proposal_id = p.id "
            "WHERE p.incident_id=? ORDER BY p.id", (incident_id,))
        return [dict(r) | {"parameters": json.loads(r["parameters"])} for r in rows]

    def undecided_proposals(self) -> list[dict[str, Any]]:
        """Proposals of live incidents that no policy decision has consumed yet (the daemon
        died between recording and deciding): deciding one creates its action and marks it
        in one transaction, so each is decided at most once."""
        # an incident still investigating had its run cut off (a finished run moves it to
        # open): what that run proposed is abandoned by its recovery (:meth:`restart_cut_off`),
        # and its next run proposes afresh; decided too, a fix ran twice for one failure
        rows = self.db.conn.execute(
            "SELECT p.* FROM proposals p JOIN incidents i ON i.id = p.incident_id "
            "WHERE p.state='proposed' AND p.source != ? "
            "AND i.state NOT IN ('resolved','closed','investigating') ORDER BY p.id",
            (ADVISORY,))
        return [dict(r) | {"parameters": json.loads(r["parameters"])} for r in rows]

    def restart_cut_off(self, incident_id: int, actor: str, reason: str) -> bool:
        """An investigation a stop cut off (the process killed: nothing recorded its end):
        the incident open again, and what the cut-off run proposed abandoned, in one
        transaction, as a clean stop records them. False where it is no longer
        investigating."""
        now = time.time()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT state FROM incidents WHERE id=?", (incident_id,)).fetchone()
            if row is None or row["state"] != "investigating":
                return False
            conn.execute("UPDATE proposals SET state='abandoned' WHERE incident_id=? AND "
                         "state='proposed' AND source != ?", (incident_id, ADVISORY))
            self._move(conn, incident_id, "investigating", "open", actor, reason, now)
        return True

    def record_investigation(
        self, incident_id: int, diagnosis: str | None, error: str | None,
        retry_at: float | None = None, actor: str = "agent", abandoned: Sequence[int] = (),
        escalate: str | None = None,
    ) -> None:
        """Store a finished investigation (diagnosis) or a failed one (error + next retry).
        A failed investigation leaves the incident live: it never marks anything healthy.
        ``abandoned``: the proposals the failed run had recorded, which no policy will decide
        (the retry proposes afresh; decided after a restart, one could run beside it).
        ``escalate``: why a failed one's retries are spent (``retry_at`` None): a person is
        told, unless the incident left its investigation meanwhile (resolved, closed)."""
        now = time.time()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT state FROM incidents WHERE id=?", (incident_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no incident {incident_id}")
            if error is None:
                conn.execute(
                    "UPDATE incidents SET diagnosis=?, investigation_error=NULL, "
                    "next_investigation_at=NULL, investigation_attempts=0, updated_at=? "
                    "WHERE id=?", (diagnosis, now, incident_id))
                self._event(conn, incident_id, "diagnosis", None, None, actor,
                            diagnosis or "", now)
            else:
                conn.execute(
                    "UPDATE incidents SET investigation_error=?, next_investigation_at=?, "
                    "investigation_attempts=investigation_attempts+1, updated_at=? WHERE id=?",
                    (error, retry_at, now, incident_id))
                self._event(conn, incident_id, "investigation_failed", None, None, actor,
                            error, now)
                if escalate is not None and row["state"] == "investigating":
                    self._escalated(conn, incident_id, actor, escalate, now)
                for proposal_id in abandoned:
                    conn.execute("UPDATE proposals SET state='abandoned' WHERE id=? AND "
                                 "state='proposed'", (proposal_id,))
            if row["state"] == "investigating":
                self._move(conn, incident_id, "investigating", "open", actor,
                           "investigation finished" if error is None else
                           "investigation failed; the incident stays open", now)

    def record_no_fix(self, incident_id: int, diagnosis: str, retry_at: float | None,
                      actor: str = "agent", refused: str | None = None) -> None:
        """An investigation that ended without proposing anything: the incident is open again
        with that reason, and is retried at ``retry_at``; None: the retries are spent and a
        person must look (escalated, no more retries). ``refused``: why the model's last
        proposal was turned down, where it made one (its diagnosis may name a fix that
        never became one)."""
        now = time.time()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT state FROM incidents WHERE id=?", (incident_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no incident {incident_id}")
            reason = (NO_PROPOSAL + (
                f" (the model's proposal was refused: {refused})" if refused else "") + (
                "; retries spent: escalated to a person"
                if retry_at is None and row["state"] in LIVE_STATES else ""))
            conn.execute(
                "UPDATE incidents SET diagnosis=?, investigation_error=?, next_investigation_at=?, "
                "investigation_attempts=investigation_attempts+1, updated_at=? WHERE id=?",
                (diagnosis, reason, retry_at, now, incident_id))
            self._event(conn, incident_id, "diagnosis", None, None, actor, diagnosis, now)
            # resolved or closed while it was investigated: nobody is asked to look
            if retry_at is None and row["state"] in LIVE_STATES:
                self._escalated(conn, incident_id, actor, reason, now)
            if row["state"] == "investigating":
                self._move(conn, incident_id, "investigating", "open", actor, reason, now)

    def investigations_since(self, incident_id: int, since: float,
                             until: float = float("inf")) -> list[float]:
        """When the investigations of the incident that came to a diagnosis since ``since``
        (up to ``until``, now: a later one was stamped on a clock since set back, when it
        ended is not known, and counted it held the incident until the clock caught up)
        ended, oldest first. One that failed is not among them: an LLM that is down fails
        every retry (a backoff paces those), and such a day is no sign that the incident
        keeps coming back."""
        rows = self.db.conn.execute(
            "SELECT at FROM incident_events WHERE incident_id=? AND at>=? AND at<=? "
            "AND kind='diagnosis' ORDER BY at", (incident_id, since, until)).fetchall()
        return [float(row[0]) for row in rows]

    def hold_for_person(self, incident_id: int, reason: str, since: float, until: float,
                        actor: str = "agent") -> bool:
        """The incident waits for a person instead of another investigation until ``until``
        (then it is due again): escalated once (an escalation since ``since`` is not
        repeated); True when that was said now."""
        now = time.time()
        with self.db.transaction() as conn:
            # held until then whether said now or before: a reopening forgets the time
            conn.execute("UPDATE incidents SET next_investigation_at=?, investigation_error=?, "
                         "updated_at=? WHERE id=?", (until, reason, now, incident_id))
            said = conn.execute(
                "SELECT 1 FROM incident_events WHERE incident_id=? AND kind='escalated' AND "
                "at>=? AND at<=? AND detail=?", (incident_id, since, now, reason)).fetchone()
            if said:
                return False
            self._escalated(conn, incident_id, actor, reason, now)
        return True

    def keep_open(self, incident_id: int, actor: str, reason: str) -> bool:
        """A fix made the incident's finding go without fixing what it is about (a
        reset-failed of a unit the host needs, which stays dead): the incident is escalated
        and stays open for a person, whom a check that no longer shows the finding does not
        overrule; False where it is closed already. Paged by the fix's failure ("a person
        must look"), the person is paged again only where something was said of the
        incident since (a check resolved it meanwhile)."""
        now = time.time()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT state FROM incidents WHERE id=?", (incident_id,)).fetchone()
            if row is None or row["state"] == "closed":
                return False
            if row["state"] == "resolved":  # by a check while the fix was verified
                self._move(conn, incident_id, "resolved", "reopened", actor, reason, now)
            elif row["state"] not in ("open", "reopened"):
                self._move(conn, incident_id, row["state"], "open", actor, reason, now)
            self._event(conn, incident_id, "kept_open", None, None, actor, reason, now)
            # the fix's failure, the last said of it, pages "a person must look" already: a
            # second page for the one failure said nothing more
            self._escalated(conn, incident_id, actor, reason, now,
                            tell=last_event_kind(conn, incident_id) != "failed")
        return True

    def is_kept(self, incident_id: int) -> bool:
        """Whether :meth:`keep_open` kept the incident open since it last resolved or
        closed: its finding gone proves nothing fixed (see :meth:`_resolve_gone`)."""
        row = self.db.conn.execute(
            f"SELECT {_KEPT} AS kept FROM incidents WHERE id=?", (incident_id,)).fetchone()
        return bool(row and row["kept"])

    def release_kept(self, incident_id: int, actor: str, reason: str) -> bool:
        """A later fix that verified resolves an incident :meth:`keep_open` kept (no check
        would: its finding is gone); True when it did."""
        now = time.time()
        with self.db.transaction() as conn:
            row = conn.execute(f"SELECT state, {_KEPT} AS kept FROM incidents WHERE id=?",
                               (incident_id,)).fetchone()
            if row is None or not row["kept"] or row["state"] not in LIVE_STATES:
                return False
            self._move(conn, incident_id, row["state"], "resolved", actor, reason, now)
        return True

    def _escalated(self, conn: Any, incident_id: int, actor: str, reason: str,
                   now: float, tell: bool = True) -> None:
        """A person must look: in the history, the audit log and (``tell``) the
        notifications."""
        self._event(conn, incident_id, "escalated", None, None, actor, reason, now)
        write_audit(conn, actor, "escalated", f"incident:{incident_id}", reason, at=now)
        if tell:
            note_incident(conn, incident_id, "escalated", now, reason)

    def failed_in_a_row(self, incident_id: int, waited: Collection[str]) -> int:
        """Failed investigations of the incident since its last diagnosis, escalation or
        reopening whose error is none of ``waited`` (its name: an error is recorded as
        ``Name: message``). Those neither count nor end the row: a model that answered
        garbage twice, the server down for an hour, then garbage again, has answered garbage
        three times."""
        rows = self.db.conn.execute(
            "SELECT detail FROM incident_events WHERE incident_id=:id AND "
            "kind='investigation_failed' AND id > COALESCE((SELECT MAX(id) FROM "
            "incident_events WHERE incident_id=:id AND (kind IN ('diagnosis','escalated') OR "
            "(kind='state' AND to_state='reopened'))), 0)",
            {"id": incident_id})
        return sum(1 for (detail,) in rows if detail.partition(":")[0] not in waited)

    def without_proposal_in_a_row(self, incident_id: int, unusable: Collection[str]) -> int:
        """Investigations of the incident the model answered with nothing to decide since
        its last diagnosis with a proposal, escalation or reopening (a person was told, or it
        is a new episode: the tries start afresh): those that ended without a proposal, and
        those whose answer was unusable (``unusable``: the errors' names). An outage (the
        server down, a proxy's 502), a restart or a crash is no answer of the model: it
        neither counts nor ends the row, however often it is retried."""
        rows = self.db.conn.execute(
            "SELECT kind, from_state, to_state, detail FROM incident_events WHERE "
            "incident_id=? AND kind IN ('diagnosis','investigation_failed','state','escalated',"
            f"'{ALL_REFUSED}') ORDER BY id DESC", (incident_id,))
        count = 0
        # newest first: a diagnosis without a proposal is told apart by the move back to open
        # that the same transaction records right after it, with the reason; one whose
        # proposals were all refused by the event written after it (:meth:`record_refused`)
        no_proposal = refused = False
        for kind, old, new, detail in rows:
            if kind == "escalated" or new == "reopened":
                break
            if kind == ALL_REFUSED:
                refused = True
            elif kind == "state":
                no_proposal = (old, new) == ("investigating", "open") and \
                    detail.startswith(NO_PROPOSAL)
            elif kind == "diagnosis":
                if not (no_proposal or refused):
                    break
                count += 1
                no_proposal = refused = False
            elif detail.partition(":")[0] in unusable:
                count += 1
        return count

    def record_refused(self, incident_id: int, reason: str, actor: str = "policy") -> bool:
        """An investigation's proposals, every one refused by the policy as it decided them
        (a path outside ``clean_paths``, a protected unit): the answer, recorded with its
        diagnosis, counts as one without a proposal (:meth:`without_proposal_in_a_row`). False
        where the incident is no longer open (resolved, closed, or waiting on a fix after
        all): nothing is recorded. :meth:`retry_or_escalate` plans what comes next."""
        now = time.time()
        with self.db.transaction() as conn:
            if not _open(conn, incident_id):
                return False
            self._event(conn, incident_id, ALL_REFUSED, None, None, actor, reason, now)
        return True

    def retry_or_escalate(self, incident_id: int, reason: str, retry_at: float | None,
                          actor: str = "policy") -> None:
        """An open incident with nothing to run: retried at ``retry_at`` (the reason kept as
        its investigation's error), or, None, escalated to a person."""
        now = time.time()
        with self.db.transaction() as conn:
            if not _open(conn, incident_id):
                return
            conn.execute("UPDATE incidents SET investigation_error=?, next_investigation_at=?, "
                         "investigation_attempts=investigation_attempts+1, updated_at=? "
                         "WHERE id=?", (reason, retry_at, now, incident_id))
            if retry_at is None:
                self._escalated(conn, incident_id, actor,
                                f"{reason}; retries spent: escalated to a person", now)

    def investigate_again(self, incident_id: int, reason: str) -> None:
        """Due for a new investigation now (the daemon's retry pass picks it up)."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE incidents SET next_investigation_at=?, investigation_error=? "
                         "WHERE id=? AND state IN ('open','reopened')",
                         (time.time(), reason, incident_id))

    def live_of(self, host: str, rules: Collection[str]) -> int | None:
        """The id of a live incident of ``host`` by one of ``rules``; None if it has none."""
        wanted = list(rules)
        row = self.db.conn.execute(
            "SELECT id FROM incidents WHERE host=? AND state IN "
            f"({','.join('?' * len(LIVE_STATES))}) AND rule IN "
            f"({','.join('?' * len(wanted))}) ORDER BY id LIMIT 1",
            (host, *LIVE_STATES, *wanted)).fetchone()
        return None if row is None else int(row[0])

    def due_now(self, waited_for: Collection[str]) -> list[int]:
        """What investigations waited for works again (the LLM server answers): the live
        incidents whose last investigation failed for one of ``waited_for`` (the errors'
        names) and whose retry a backoff put off are due now, most severe first, then oldest.
        Those held for another reason (a day's hold, retries spent, another failure) stay."""
        now = time.time()
        with self.db.transaction() as conn:
            due = _waiting(conn, waited_for, now)
            conn.executemany("UPDATE incidents SET next_investigation_at=? WHERE id=?",
                             [(now, row["id"]) for row in due])
        due.sort(key=lambda row: -Severity.parse(row["severity"]))
        return [row["id"] for row in due]

    def waiting_on(self, waited_for: Collection[str]) -> int:
        """How many live incidents wait, their retry put off, after their last investigation
        failed for one of ``waited_for`` (the errors' names): what :meth:`due_now` makes due."""
        return len(_waiting(self.db.conn, waited_for, time.time()))

    def investigation_due(self, now: float | None = None) -> list[Incident]:
        """Live incidents whose failed investigation is due for a retry, or whose retry is
        further off than any is put off (:data:`LONGEST_INVESTIGATION_WAIT`)."""
        now = now or time.time()
        rows = self.db.conn.execute(
            "SELECT * FROM incidents WHERE (next_investigation_at<=? OR next_investigation_at>?) "
            "AND state IN ('open','reopened')", (now, now + LONGEST_INVESTIGATION_WAIT))
        return self._of_hosts_kept(rows.fetchall())

    def tell_llm_down(self, facts: Mapping[str, Any], outages: Collection[str],
                      outage: Outage = LLM) -> bool:
        """The LLM server (or ``outage``, the worker) has not answered for long: a person is
        told once an outage (its down event with ``facts`` and how many incidents wait), and
        only while incidents wait for it: being investigated, or whose last investigation
        failed for one of ``outages`` (the errors' names). True when it is said, now or
        before (a restart in the middle of an outage); False while none waits."""
        with self.db.transaction() as conn:
            last = last_outage_event(conn, outage)
            if last is not None and last[1] == outage.down:
                return True
            rows = conn.execute("SELECT state, investigation_error FROM incidents WHERE state "
                                "IN ('open','reopened','investigating')").fetchall()
            waiting = sum(1 for state, error in rows if state == "investigating"
                          or (error or "").partition(":")[0] in outages)
            if waiting:
                note_outage(conn, outage, outage.down, {**facts, "waiting": waiting})
        return bool(waiting)

    def tell_down(self, facts: Mapping[str, Any], outage: Outage) -> None:
        """``outage`` (a host's checks) has not worked for long: a person is told once an
        outage, its down event with ``facts``; a restart in the middle says nothing more."""
        with self.db.transaction() as conn:
            note_outage(conn, outage, outage.down, facts)

    def tell_back(self, facts: Mapping[str, Any], outage: Outage = LLM) -> bool:
        """``outage`` (the LLM server, the worker, a host's checks) works again: its back
        event when a person was to be told it was down (its down event is the last said of
        it, by this process or one before a restart), with since when it was; whether
        written."""
        with self.db.transaction() as conn:
            last = last_outage_event(conn, outage)
            if last is None or last[1] != outage.down:
                return False
            (down,) = conn.execute("SELECT facts FROM notify_events WHERE id=?",
                                   (last[0],)).fetchone()
            return note_outage(conn, outage, outage.back,
                               {**facts, "since": json.loads(down).get("since")})

    def record_check_failed(self, host: str, error: str,
                            registered: float | None = None) -> float | None:
        """A check of ``host`` that failed for a reason of ai-sysadmin's own (a bug, not the
        host's): ``error`` is the host's last error and its checks fail since the first such
        one in a row. Nothing else moves: the last check and the last good one stay those
        that worked, and a check that judged nothing opens and resolves nothing. Since when
        its checks fail; None for a host removed meanwhile, or added again since the
        ``registered`` the check began for (nothing is kept).

        The daemon's alone, as is the clearing (:data:`WATCHING`): a check run beside it that
        raises (`check`, `systems refresh`) says so on its own output and keeps nothing, one
        that works clears nothing."""
        now = time.time()
        with self.db.transaction() as conn:
            if _not_the_host(conn, host, registered) is not None:
                return None
            conn.execute(
                "INSERT INTO hosts(name, first_seen, last_error, check_failed_since) "
                "VALUES (?,?,?,?) ON CONFLICT(name) DO UPDATE SET "
                "last_error=excluded.last_error, "
                "check_failed_since=COALESCE(hosts.check_failed_since, excluded.first_seen)",
                (host, now, error, now))
            (since,) = conn.execute("SELECT check_failed_since FROM hosts WHERE name=?",
                                    (host,)).fetchone()
        return float(since)

    def close_host(self, host: str, reason: str, actor: str = "operator") -> list[int]:
        """Close every live or resolved incident of a host no longer managed, with ``reason``
        (nothing will check it again: left open, they would be investigated forever). Checks
        of it that failed fail no more: nobody checks it (`systems` shows no "failing", and
        the host added again is not said to be back from an outage of long ago). Its
        services' rises (restarts, OOM kills) go: only its own checks prune them, and the host
        added again (another machine, maybe) would take them up at its first check as its own
        loops and kills.
        So does what was read of its journal: a cursor is a place in that machine's journal,
        which journalctl seeks in another's by its time (that machine's errors logged before
        it are skipped) or refuses, and the entries kept are that machine's, which only its
        checks prune. Its incidents, their history and evidence, and the audit stay."""
        now = time.time()
        with self.db.transaction() as conn:
            rows = conn.execute("SELECT id, state FROM incidents WHERE host=? AND state!='closed' "
                                "ORDER BY id", (host,)).fetchall()
            for row in rows:
                self._move(conn, row["id"], row["state"], "closed", actor, reason, now)
            failing = conn.execute("SELECT check_failed_since FROM hosts WHERE name=?",
                                   (host,)).fetchone()
            conn.execute("UPDATE hosts SET check_failed_since=NULL WHERE name=?", (host,))
            # added again (another machine, maybe), what it finds opens incidents of its own
            conn.execute("UPDATE incidents SET held_since=NULL WHERE host=? AND held_since IS "
                         "NOT NULL", (host,))
            conn.execute("DELETE FROM rises WHERE host=?", (host,))
            for table in ("journal_cursors", "journal_entries"):  # every consumer's
                conn.execute(f"DELETE FROM {table} WHERE host=?", (host,))
            end_outage_untold(conn, checks_of(host),
                              {"host": host, "since": failing[0] if failing else None}, reason)
        return [row["id"] for row in rows]

    def untriaged(self) -> list[Incident]:
        """Live incidents nobody has investigated yet: open with no diagnosis and no attempt,
        or reopened (an investigation moves it on: the diagnosis, attempts and error it still
        holds are of the time before, whose investigations may all be spent), with no retry
        planned (opened or reopened by `check`, or by a daemon that stopped before its
        triage)."""
        rows = self.db.conn.execute(
            "SELECT * FROM incidents WHERE (state='reopened' OR (state='open' AND diagnosis IS "
            "NULL AND investigation_attempts=0 AND investigation_error IS NULL)) "
            "AND next_investigation_at IS NULL ORDER BY id")
        return self._of_hosts_kept(rows.fetchall())

    def _of_hosts_kept(self, rows: list[Any]) -> list[Incident]:
        """Those of hosts not removed: a removed host's live incident (one a check in flight
        opened after the remove, in a version that let it) is investigated by nobody."""
        gone = {host for host in {r["host"] for r in rows} if host_removed(self.db.conn, host)}
        return [_incident(r) for r in rows if r["host"] not in gone]

    def hosts(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.conn.execute("SELECT * FROM hosts ORDER BY name")]


def _waiting(conn: sqlite3.Connection, waited_for: Collection[str],
             now: float) -> list[sqlite3.Row]:
    """The live incidents whose retry is put off after a failure named in ``waited_for``."""
    rows = conn.execute(
        "SELECT id, severity, investigation_error FROM incidents WHERE state IN "
        "('open','reopened') AND next_investigation_at>? ORDER BY id", (now,)).fetchall()
    return [row for row in rows
            if (row["investigation_error"] or "").partition(":")[0] in waited_for]
