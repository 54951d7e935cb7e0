"""The notification outbox: events, messages and their deliveries, in the state database.

An event is written by :func:`note_incident` or :func:`note_action` inside the transaction of
the change it reports, so a change that commits always has its event and a change that rolls
back never has one, whichever process made it (the daemon, `approve approve`, `issues resolve`).
What becomes a message, and when, is the notifier's business (``notify/``); this module only
stores.

Event kinds: ``opened`` (and ``worse``: a live incident became more severe), ``unreachable``,
``back``, ``resolved`` (an incident a person was paged about cleared, and no fix said so),
``approval``, ``withdrawn`` (an approval no longer needed), ``fixed``, ``failed``,
``escalated``; of no incident (:func:`note_outage`):
``llm_down`` and ``llm_back``, the LLM server that investigations wait for,
``worker_down`` and ``worker_back``, the separate worker that serves their queue, and
``check_failing`` and ``check_back``, the daemon's checks of one host, which fail for a reason
of its own (a bug), not the host's.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..monitor.findings import Severity
from .db import Database

#: the rule whose incident means the host itself is down (monitor/rules/host_unreachable.py)
UNREACHABLE_RULE = "host_unreachable"
#: Gotify's "high": a message at it or above paged a person, who is told when it clears
PAGING_PRIORITY = 8
EVENT_STATES = ("new", "skipped", "repeat", "storm", "sent", "digested", "suppressed")
DELIVERY_STATES = ("pending", "delivered", "failed")
#: action state -> event kind; other states are nothing a person needs to hear about
_ACTION_KINDS = {"pending": "approval", "succeeded": "fixed", "failed": "failed",
                 "escalated": "escalated"}
#: what counts as "the same message again": ``worse`` repeats ``opened``
_FAMILY = {"worse": "opened"}


def repeat_family(kind: str) -> str:
    """The kind a message of ``kind`` is a repeat of (``worse``: ``opened``)."""
    return _FAMILY.get(kind, kind)

#: the longest a delivery is ever put off (the notifier's longest backoff): one due later than
#: this was put off on a clock since set back (NTP correcting a clock that ran ahead), and is
#: due now, not when the clock catches up with it, a year later maybe
LONGEST_BACKOFF_SECONDS = 3600.0


@dataclass(frozen=True)
class Outage:
    """Something a person relies on that stopped working, of no incident (those are of a host,
    a rule and a subject): the fingerprint its events share, the kind said when it stopped
    and the kind said when it works again. One is said down once, and back only after."""

    fingerprint: str
    down: str
    back: str

    @property
    def kinds(self) -> tuple[str, str]:
        return (self.down, self.back)


#: the LLM server, and the worker that serves the queue apart from the daemon: one each
LLM = Outage("llm", "llm_down", "llm_back")
WORKER = Outage("llm-worker", "worker_down", "worker_back")
#: the daemon's checks of a host: one outage a host, told apart by the fingerprint
CHECK_KINDS = ("check_failing", "check_back")
#: every pair of kinds an outage is said with
_OUTAGE_KINDS = (LLM.kinds, WORKER.kinds, CHECK_KINDS)


def checks_of(host: str) -> Outage:
    """The daemon's checks of ``host``, which fail for a reason of ai-sysadmin's own (a bug,
    a store that fails) and leave it watched by nobody."""
    return Outage(f"checks:{host}", *CHECK_KINDS)


def outage_of(kind: str, fingerprint: str) -> Outage | None:
    """The outage an event of this kind and fingerprint is said of; None for an incident's
    or an action's."""
    return next((Outage(fingerprint, *kinds) for kinds in _OUTAGE_KINDS if kind in kinds),
                None)


@dataclass(frozen=True)
class OutboxEvent:
    id: int
    at: float
    kind: str
    host: str
    fingerprint: str
    incident_id: int | None
    action_id: int | None
    severity: str
    repeat_key: str
    facts: dict[str, Any]
    state: str
    #: why it is in its state (the dispatcher's words)
    note: str = ""


@dataclass(frozen=True)
class Delivery:
    message_id: int
    channel: str
    title: str
    body: str
    priority: int
    attempts: int


def _event(row: sqlite3.Row) -> OutboxEvent:
    data = {k: row[k] for k in OutboxEvent.__dataclass_fields__}
    data["facts"] = json.loads(row["facts"])
    return OutboxEvent(**data)


# -- written with the change ------------------------------------------------------------------
def _incident_facts(conn: sqlite3.Connection, incident_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM incidents WHERE id=?", (incident_id,)).fetchone()
    if row is None:
        return None
    return {"incident": row["id"], "host": row["host"], "rule": row["rule"],
            "subject": row["subject"], "severity": row["severity"], "summary": row["summary"],
            "evidence": json.loads(row["evidence"])[:2], "fingerprint": row["fingerprint"]}


def _insert(conn: sqlite3.Connection, kind: str, facts: Mapping[str, Any], repeat_key: str,
            action_id: int | None, at: float | None) -> None:
    conn.execute(
        "INSERT INTO notify_events(at, kind, host, fingerprint, incident_id, action_id, "
        "severity, repeat_key, facts) VALUES (?,?,?,?,?,?,?,?,?)",
        (time.time() if at is None else at, kind, facts["host"], facts.get("fingerprint", ""),
         facts.get("incident"), action_id, facts.get("severity", "warning"), repeat_key,
         json.dumps(facts)))


def note_incident(conn: sqlite3.Connection, incident_id: int, change: str,
                  at: float | None = None, detail: str = "") -> None:
    """An incident ``opened``, ``reopened``, got ``worse``, ``resolved`` or was ``escalated``:
    the event, in the caller's transaction. A resolution is news for an unreachable host
    (the host is back), and for an incident a person was paged about this episode (the
    all-clear, :func:`_paged`); a fixed incident is reported by its action."""
    facts = _incident_facts(conn, incident_id)
    if facts is None:
        return
    unreachable = facts["rule"] == UNREACHABLE_RULE
    if change == "resolved":
        if not unreachable:
            _note_resolved(conn, facts, detail, at)
            return
        kind = "back"
    elif change == "escalated":
        kind = "escalated"
    else:
        kind = "unreachable" if unreachable else ("worse" if change == "worse" else "opened")
    facts["detail"] = detail
    _insert(conn, kind, facts, f"{repeat_family(kind)}|{facts['fingerprint']}", None, at)


def _note_resolved(conn: sqlite3.Connection, facts: dict[str, Any], detail: str,
                   at: float | None) -> None:
    """The all-clear of an incident a person was paged about, unless a fix's message says
    it: one that ran since the last page, verified (``fixed``) or being verified (the check
    of its verification resolves the incident before the fix's event is written), or one
    whose verification a stop cut short, told ``fixed`` by this check (it held)."""
    paged = _paged(conn, facts["incident"])
    if paged is None:
        return
    last_page, facts["paged"] = paged
    fixing = conn.execute("SELECT 1 FROM actions a WHERE incident_id=? AND started_at>=? AND "
                          "(state IN ('executing','succeeded') OR EXISTS(SELECT 1 FROM "
                          "notify_events n WHERE n.action_id=a.id AND n.kind='fixed')) LIMIT 1",
                          (facts["incident"], last_page)).fetchone()
    if fixing is not None:
        return
    # what the problem looked like is no news once it is gone
    facts["evidence"], facts["detail"] = [], detail
    _insert(conn, "resolved", facts, f"resolved|{facts['fingerprint']}", None, at)


#: an incident's messages after which a person believes it cleared
ALL_CLEAR_KINDS = ("resolved", "fixed", "withdrawn")


def _paged(conn: sqlite3.Connection, incident_id: int) -> tuple[float, dict[str, Any]] | None:
    """Whether a person was paged about the incident since the last all-clear they were told
    of it (:data:`ALL_CLEAR_KINDS`; ever, where none was): a message of one of its events at
    :data:`PAGING_PRIORITY` or above, alone or in a digest, that a channel took or may still
    take (a delivery not given up). Not since it last reopened: an
    all-clear held back and then dropped (it failed again before it went out, its return a
    repeat never paged) left the page the person's last word. When the last page went out,
    and when the first did, the worst severity and the last summary paged; None if none
    was (never notified, or only low)."""
    (cleared,) = conn.execute(
        "SELECT MAX(m.at) FROM notify_events e JOIN notify_messages m ON m.id=e.message_id "
        f"WHERE e.incident_id=? AND e.kind IN ({','.join('?' * len(ALL_CLEAR_KINDS))})",
        (incident_id, *ALL_CLEAR_KINDS)).fetchone()
    # a page is one some channel took or still may: one given up on everywhere (or made,
    # by an earlier version, with no channel configured) reached nobody
    rows = conn.execute(
        "SELECT e.severity, e.facts, m.at FROM notify_events e JOIN notify_messages m "
        "ON m.id=e.message_id WHERE e.incident_id=? AND m.at>? AND m.priority>=? "
        "AND EXISTS(SELECT 1 FROM notify_deliveries d WHERE d.message_id=m.id AND "
        "d.state!='failed') ORDER BY m.at, e.id",
        (incident_id, -1.0 if cleared is None else cleared, PAGING_PRIORITY)).fetchall()
    if not rows:
        return None
    worst = max((row["severity"] for row in rows), key=Severity.rank_of)
    return rows[-1]["at"], {"at": rows[0]["at"], "severity": worst,
                            "summary": json.loads(rows[-1]["facts"]).get("summary")}


def note_action(conn: sqlite3.Connection, action_id: int, state: str, detail: str,
                at: float | None = None) -> None:
    """An action reached ``state``: waiting for a person, fixed and verified, failed or
    escalated become an event, in the caller's transaction; other states do not."""
    kind = _ACTION_KINDS.get(state)
    if kind is not None:
        _note_action_kind(conn, action_id, kind, detail, at)


def note_withdrawn(conn: sqlite3.Connection, action_id: int, detail: str,
                   at: float | None = None) -> None:
    """A fix that waited for a person was withdrawn, its incident resolved by itself: the
    event, in the caller's transaction. Told (low) only to a person who was asked to approve
    it: the dispatcher skips it otherwise (an approval not yet told is not told at all)."""
    _note_action_kind(conn, action_id, "withdrawn", detail, at)


def _note_action_kind(conn: sqlite3.Connection, action_id: int, kind: str, detail: str,
                      at: float | None) -> None:
    row = conn.execute("SELECT * FROM actions WHERE id=?", (action_id,)).fetchone()
    if row is None:
        return
    facts = (_incident_facts(conn, row["incident_id"]) if row["incident_id"] else None) or {
        "host": row["host"]}
    facts["action"] = {"id": action_id, "kind": row["kind"], "subject": row["subject"],
                       "risk": row["risk"], "params": json.loads(row["params"])}
    if kind == "approval" and row["proposal_id"] is not None:
        # the person deciding reads why the model proposed it (its words, masked when
        # recorded; the message cuts and masks them again)
        said = conn.execute("SELECT rationale FROM proposals WHERE id=?",
                            (row["proposal_id"],)).fetchone()
        if said is not None:
            facts["action"]["rationale"] = said["rationale"]
    facts["detail"] = detail
    # every approval is its own question, and its withdrawal its own answer; the same
    # outcome on one incident is a repeat
    key = (f"{kind}|action:{action_id}" if kind in ("approval", "withdrawn") else
           f"{kind}|{facts.get('fingerprint') or f'action:{action_id}'}")
    _insert(conn, kind, facts, key, action_id, at)


def last_event_kind(conn: sqlite3.Connection, incident_id: int) -> str | None:
    """The kind of the newest event of the incident (or of a fix of it), told or not: what
    was last said of it."""
    row = conn.execute("SELECT kind FROM notify_events WHERE incident_id=? ORDER BY id DESC "
                       "LIMIT 1", (incident_id,)).fetchone()
    return str(row[0]) if row else None


def last_outage_event(conn: sqlite3.Connection, outage: Outage) -> tuple[int, str] | None:
    """The id and kind of the newest event of ``outage`` (down or back), told or not: what
    was last said of it (the LLM server, the worker, a host's checks), across restarts."""
    row = conn.execute(
        "SELECT id, kind FROM notify_events WHERE kind IN (?, ?) AND fingerprint=? "
        "ORDER BY id DESC LIMIT 1", (*outage.kinds, outage.fingerprint)).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def note_outage(conn: sqlite3.Connection, outage: Outage, kind: str,
                facts: Mapping[str, Any], at: float | None = None) -> bool:
    """``outage`` stopped working (its ``down`` kind: ``llm_down``, ``worker_down``,
    ``check_failing``) or works again (its ``back``): the event, in the caller's
    transaction, once a change: one down an outage (a restart in the middle of one says
    nothing more), back only after one. Whether written."""
    if kind not in outage.kinds:
        raise ValueError(f"{kind!r} is said of no outage {outage.fingerprint!r}")
    last = last_outage_event(conn, outage)
    if (last[1] if last else outage.back) == kind:
        return False
    _insert(conn, kind, {**facts, "fingerprint": outage.fingerprint,
                         "severity": "critical" if kind == outage.down else "info"},
            f"{kind}|{outage.fingerprint}", None, at)
    return True


def end_outage_untold(conn: sqlite3.Connection, outage: Outage, facts: Mapping[str, Any],
                      why: str) -> bool:
    """``outage`` is over with nothing true to tell of it (a host's checks that failed, the
    host removed: nobody checks it, so nobody can say its checks work): its back event, in
    the caller's transaction, skipped with ``why``. A down not yet told is no longer true
    then, and a later back has no down to follow. Whether it was down."""
    if not note_outage(conn, outage, outage.back, facts):
        return False
    (event_id,) = conn.execute("SELECT last_insert_rowid()").fetchone()
    Outbox.mark(conn, [event_id], "skipped", why)
    return True


# -- read and moved by the notifier -----------------------------------------------------------
class Outbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def events(conn: sqlite3.Connection, states: Iterable[str]) -> list[OutboxEvent]:
        wanted = list(states)
        rows = conn.execute(
            f"SELECT * FROM notify_events WHERE state IN ({','.join('?' * len(wanted))}) "
            "ORDER BY id", wanted)
        return [_event(r) for r in rows]

    @staticmethod
    def mark(conn: sqlite3.Connection, event_ids: Iterable[int], state: str, note: str = "",
             message_id: int | None = None) -> None:
        conn.executemany("UPDATE notify_events SET state=?, note=?, message_id=? WHERE id=?",
                         [(state, note, message_id, i) for i in event_ids])

    @staticmethod
    def last_told_severity(conn: sqlite3.Connection, repeat_key: str) -> str | None:
        """The severity of what a person was last told about this."""
        row = conn.execute(
            "SELECT e.severity FROM notify_events e JOIN notify_messages m ON "
            "m.id=e.message_id WHERE e.repeat_key=? ORDER BY m.at DESC, m.id DESC LIMIT 1",
            (repeat_key,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def last_message_at(conn: sqlite3.Connection, repeat_key: str,
                        until: float = float("inf")) -> float | None:
        """When a person was last told about this (individually or in a digest), before
        ``until``: a time after it was stamped on a clock since set back, and would hide the
        messages since."""
        row = conn.execute(
            "SELECT MAX(m.at) FROM notify_events e JOIN notify_messages m ON m.id=e.message_id "
            "WHERE e.repeat_key=? AND m.at<?", (repeat_key, until)).fetchone()
        return row[0]

    @staticmethod
    def told_with_note(conn: sqlite3.Connection, repeat_key: str, note: str,
                       since: float, until: float = float("inf")) -> bool:
        """Whether an event about this, marked with ``note``, was told since then."""
        return conn.execute(
            "SELECT 1 FROM notify_events e JOIN notify_messages m ON m.id=e.message_id "
            "WHERE e.repeat_key=? AND e.note=? AND m.at>=? AND m.at<? LIMIT 1",
            (repeat_key, note, since, until)).fetchone() is not None

    @staticmethod
    def last_told_kind(conn: sqlite3.Connection, fingerprint: str,
                       kinds: Iterable[str]) -> str | None:
        wanted = list(kinds)
        row = conn.execute(
            "SELECT kind FROM notify_events WHERE fingerprint=? AND message_id IS NOT NULL "
            f"AND kind IN ({','.join('?' * len(wanted))}) ORDER BY id DESC LIMIT 1",
            (fingerprint, *wanted)).fetchone()
        return row[0] if row else None

    @staticmethod
    def told_since(conn: sqlite3.Connection, kinds: Iterable[str], since: float,
                   until: float = float("inf"), fingerprint: str | None = None) -> int:
        """Events of these kinds a person was told about (alone or in a digest) since then,
        up to ``until``: what was told later was told on a clock since set back.
        ``fingerprint``: of that one thing only."""
        wanted = list(kinds)
        one = "" if fingerprint is None else " AND e.fingerprint=?"
        row = conn.execute(
            "SELECT COUNT(*) FROM notify_events e JOIN notify_messages m ON m.id=e.message_id "
            f"WHERE m.at>=? AND m.at<? AND e.kind IN ({','.join('?' * len(wanted))}){one}",
            (since, until, *wanted, *(() if fingerprint is None else (fingerprint,)))
        ).fetchone()
        return int(row[0])

    @staticmethod
    def said_after(conn: sqlite3.Connection, incident_id: int, after: int,
                   kinds: Iterable[str]) -> bool:
        """Whether an event of these kinds was written of the incident after event
        ``after``, told or not: what happened to it since."""
        wanted = list(kinds)
        return conn.execute(
            "SELECT 1 FROM notify_events WHERE incident_id=? AND id>? AND kind IN "
            f"({','.join('?' * len(wanted))}) LIMIT 1",
            (incident_id, after, *wanted)).fetchone() is not None

    @staticmethod
    def withdrawal_told(conn: sqlite3.Connection, incident_id: int | None,
                        after: int) -> bool:
        """Whether a withdrawal of the incident's fix, written with its resolution (event
        ``after``), goes to a person who was asked to approve that fix. Written after it
        (the resolution withdraws what waits for a yes) or just before it, nothing else
        said of the incident between: `issues resolve` withdraws the fixes first, in the
        person's words."""
        return incident_id is not None and conn.execute(
            "SELECT 1 FROM notify_events w WHERE w.kind='withdrawn' AND w.incident_id=:i "
            "AND w.id!=:after AND w.id>COALESCE((SELECT MAX(o.id) FROM notify_events o "
            "WHERE o.incident_id=:i AND o.id<:after AND o.kind!='withdrawn'), 0) "
            "AND EXISTS(SELECT 1 FROM notify_events a WHERE a.kind='approval' AND "
            "a.action_id=w.action_id AND a.message_id IS NOT NULL) LIMIT 1",
            {"i": incident_id, "after": after}).fetchone() is not None

    @staticmethod
    def approval_told(conn: sqlite3.Connection, action_id: int | None) -> bool:
        """Whether a person was told that the action waits for their approval."""
        return action_id is not None and conn.execute(
            "SELECT 1 FROM notify_events WHERE kind='approval' AND action_id=? AND "
            "message_id IS NOT NULL LIMIT 1", (action_id,)).fetchone() is not None

    @staticmethod
    def state_of(conn: sqlite3.Connection, table: str, row_id: int | None) -> str | None:
        """The state of an incident or action now (None: gone)."""
        if table not in ("incidents", "actions") or row_id is None:
            return None
        row = conn.execute(f"SELECT state FROM {table} WHERE id=?", (row_id,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def last_digest_at(conn: sqlite3.Connection, until: float = float("inf")) -> float | None:
        """When the last digest went out, before ``until`` (see :meth:`last_message_at`)."""
        return conn.execute("SELECT MAX(at) FROM notify_messages WHERE kind='digest' AND at<?",
                            (until,)).fetchone()[0]

    @staticmethod
    def add_message(conn: sqlite3.Connection, kind: str, title: str, body: str, priority: int,
                    channels: Iterable[str], at: float) -> int:
        """A message and one pending delivery per channel, due now."""
        cur = conn.execute("INSERT INTO notify_messages(at, kind, title, body, priority) "
                           "VALUES (?,?,?,?,?)", (at, kind, title, body, priority))
        message_id = int(cur.lastrowid)
        conn.executemany("INSERT INTO notify_deliveries(message_id, channel, state, next_at) "
                         "VALUES (?,?,'pending',?)", [(message_id, c, at) for c in channels])
        return message_id

    def newest_event(self) -> int | None:
        """The id of the newest event, told or not (None: there is none); a later event has a
        higher id (:meth:`prune` keeps the newest, so no id is used twice)."""
        return self.db.conn.execute("SELECT MAX(id) FROM notify_events").fetchone()[0]

    def waiting(self) -> bool:
        """Whether any event waits to be dispatched (new, a held repeat, a digest to come)."""
        return self.db.conn.execute(
            "SELECT 1 FROM notify_events WHERE state IN ('new','repeat','storm') LIMIT 1"
        ).fetchone() is not None

    # -- deliveries ------------------------------------------------------------------------------
    def due(self, channel: str, now: float, limit: int = 20) -> list[Delivery]:
        rows = self.db.conn.execute(
            "SELECT d.message_id, d.channel, d.attempts, m.title, m.body, m.priority "
            "FROM notify_deliveries d JOIN notify_messages m ON m.id=d.message_id "
            "WHERE d.channel=? AND d.state='pending' AND (d.next_at<=? OR d.next_at>?) "
            "ORDER BY d.message_id LIMIT ?",
            (channel, now, now + LONGEST_BACKOFF_SECONDS, limit))
        return [Delivery(r["message_id"], r["channel"], r["title"], r["body"], r["priority"],
                         r["attempts"]) for r in rows]

    def next_due_at(self, channel: str) -> float | None:
        return self.db.conn.execute(
            "SELECT MIN(next_at) FROM notify_deliveries WHERE channel=? AND state='pending'",
            (channel,)).fetchone()[0]

    def delivered(self, message_id: int, channel: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE notify_deliveries SET state='delivered', delivered_at=?, "
                         "attempts=attempts+1, last_error=NULL WHERE message_id=? AND channel=?",
                         (time.time(), message_id, channel))

    def attempt_failed(self, message_id: int, channel: str, error: str,
                       retry_at: float | None) -> None:
        """One failed attempt: due again at ``retry_at``, or given up (None)."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE notify_deliveries SET attempts=attempts+1, last_error=?, state=?, "
                "next_at=COALESCE(?, next_at) WHERE message_id=? AND channel=?",
                (error, "pending" if retry_at is not None else "failed", retry_at, message_id,
                 channel))

    def waiting_on(self, channel: str, reason: str) -> None:
        """Why a channel's pending deliveries wait (its configuration), kept as their error for
        `notify status`; no attempt is counted. Written only when it changes."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE notify_deliveries SET last_error=? WHERE channel=? AND "
                         "state='pending' AND last_error IS NOT ?", (reason, channel, reason))

    def due_now(self, channels: Iterable[str], now: float) -> int:
        """Every pending delivery to ``channels`` that waits out a backoff is due at ``now``;
        how many were waiting. Their attempts stay: one that fails again backs off as far."""
        wanted = list(channels)
        with self.db.transaction() as conn:
            return conn.execute(
                "UPDATE notify_deliveries SET next_at=? WHERE state='pending' AND next_at>? "
                f"AND channel IN ({','.join('?' * len(wanted))})", (now, now, *wanted)).rowcount

    def channels(self) -> set[str]:
        """Every channel name deliveries are stored under, whatever their state."""
        return {r[0] for r in self.db.conn.execute(
            "SELECT DISTINCT channel FROM notify_deliveries")}

    def hand_over(self, old: str, new: str) -> int:
        """Move ``old``'s deliveries to ``new``, attempts and all, those settled too (``new``
        is the same channel renamed); how many pending moved. One ``new`` already has for the
        same message stays with ``old`` (it is sent once)."""
        with self.db.transaction() as conn:
            pending = conn.execute("UPDATE OR IGNORE notify_deliveries SET channel=? WHERE "
                                   "channel=? AND state='pending'", (new, old)).rowcount
            conn.execute("UPDATE OR IGNORE notify_deliveries SET channel=? WHERE channel=?",
                         (new, old))
        return int(pending)

    def give_up(self, channel: str, reason: str) -> int:
        """Fail every pending delivery to ``channel`` with ``reason``; how many."""
        with self.db.transaction() as conn:
            return conn.execute("UPDATE notify_deliveries SET state='failed', last_error=? "
                                "WHERE channel=? AND state='pending'", (reason, channel)).rowcount

    def queue_message(self, kind: str, title: str, body: str, priority: int,
                      channels: Iterable[str]) -> int:
        """A message for the channels' loops to deliver now; its id."""
        with self.db.transaction() as conn:
            return self.add_message(conn, kind, title, body, priority, channels, time.time())

    def record_sent(self, kind: str, title: str, body: str, priority: int,
                    results: Mapping[str, str | None]) -> int:
        """A message sent at once (``notify``), with each channel's outcome (None: accepted);
        nothing is retried."""
        with self.db.transaction() as conn:
            return self._sent(conn, kind, title, body, priority, results, time.time())

    def record_sent_then_queue(self, sent: tuple[str, str, str, int],
                               results: Mapping[str, str | None],
                               queued: tuple[str, str, str, int], channels: Iterable[str],
                               at: float) -> int:
        """In one transaction: a message sent around the outbox at ``at`` (``sent``: kind,
        title, body, priority; ``results`` as :meth:`record_sent`'s), and ``queued``, the
        one that follows it, for the channels' loops to deliver now; the latter's id."""
        now = time.time()
        with self.db.transaction() as conn:
            self._sent(conn, *sent, results, at)
            return self.add_message(conn, *queued, channels, now)

    def _sent(self, conn: sqlite3.Connection, kind: str, title: str, body: str,
              priority: int, results: Mapping[str, str | None], at: float) -> int:
        message_id = self.add_message(conn, kind, title, body, priority, results, at)
        for channel, error in results.items():
            conn.execute(
                "UPDATE notify_deliveries SET state=?, attempts=1, last_error=?, "
                "delivered_at=? WHERE message_id=? AND channel=?",
                ("delivered" if error is None else "failed", error,
                 at if error is None else None, message_id, channel))
        return message_id

    # -- what `notify status` shows -----------------------------------------------------------
    def deliveries(self, states: Iterable[str], limit: int = 50) -> list[dict[str, Any]]:
        wanted = list(states)
        rows = self.db.conn.execute(
            "SELECT d.*, m.title, m.at AS created_at FROM notify_deliveries d "
            "JOIN notify_messages m ON m.id=d.message_id "
            f"WHERE d.state IN ({','.join('?' * len(wanted))}) "
            "ORDER BY d.message_id DESC LIMIT ?", (*wanted, limit))
        return [dict(r) for r in rows]

    def counts(self) -> dict[str, dict[str, int]]:
        """{channel: {state: n}} of deliveries, and {"events": {state: n}}."""
        out: dict[str, dict[str, int]] = {}
        for row in self.db.conn.execute(
                "SELECT channel, state, COUNT(*) AS n FROM notify_deliveries "
                "GROUP BY channel, state"):
            out.setdefault(row["channel"], {})[row["state"]] = row["n"]
        out["events"] = {r["state"]: r["n"] for r in self.db.conn.execute(
            "SELECT state, COUNT(*) AS n FROM notify_events GROUP BY state")}
        return out

    def messages(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.db.conn.execute(
            "SELECT * FROM notify_messages ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [dict(r) for r in reversed(rows)]

    def prune(self, before: float) -> None:
        """Forget what was settled before ``before``: told, skipped, delivered or given up,
        and what waited for a channel since then that is no news now: of an incident no
        longer live, or of none (a fix that failed a month ago), but an approval still asked
        for. Events of live incidents stay: "back" after a month down needs the
        "unreachable"; so does the last said of each outage (the LLM server, the worker,
        each host's checks: a "back" needs its "down"), and the newest event (SQLite gives
        a new row the highest id plus one: the dispatcher, with no channel, tells a new
        event by its id alone)."""
        with self.db.transaction() as conn:
            kinds = [kind for pair in _OUTAGE_KINDS for kind in pair]
            kept = [r[0] for r in conn.execute(
                f"SELECT MAX(id) FROM notify_events WHERE kind IN ({','.join('?' * len(kinds))}) "
                "GROUP BY fingerprint UNION SELECT MAX(id) FROM notify_events", kinds)
                if r[0] is not None]
            conn.execute("DELETE FROM notify_events WHERE at<? AND (state NOT IN "
                         "('new','repeat','storm') OR state='new' AND NOT (kind='approval' "
                         "AND action_id IN (SELECT id FROM actions WHERE state='pending'))) "
                         "AND (incident_id IS NULL OR incident_id "
                         "NOT IN (SELECT id FROM incidents WHERE state NOT IN "
                         "('resolved','closed'))) AND id NOT IN "
                         f"({','.join('?' * len(kept))})", (before, *kept))
            old = [r[0] for r in conn.execute(
                "SELECT id FROM notify_messages m WHERE at<? AND NOT EXISTS (SELECT 1 FROM "
                "notify_deliveries d WHERE d.message_id=m.id AND d.state='pending') AND NOT "
                "EXISTS (SELECT 1 FROM notify_events e WHERE e.message_id=m.id)", (before,))]
            conn.executemany("DELETE FROM notify_deliveries WHERE message_id=?",
                             [(i,) for i in old])
            conn.executemany("DELETE FROM notify_messages WHERE id=?", [(i,) for i in old])
