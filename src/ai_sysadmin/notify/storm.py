"""Storm control: which outbox events become messages, and when.

- Below ``notify.min_severity``, an opening says nothing ("skipped").
- "Resolved" (the all-clear) is written only for an incident a person was paged about
  (``store/outbox.py``), and is dropped once it reopens before it is told.
- "Back" is news only to someone who was told the host was unreachable; the LLM's
  ``llm_back`` only to someone told ``llm_down``, the worker's ``worker_back`` only to someone
  told ``worker_down``, a host's ``check_back`` only to someone told its ``check_failing``.
- A repeat (same kind, same incident) within ``notify.repeat_window_minutes`` of the last
  message about it is held; when the window ends, the latest one goes out once, with the count,
  if it is still true (the incident still live, the action still pending; a person needed or
  a fix failed: nothing since resolved it, fixed it or reopened it; fixed: it did not fail or
  reopen since), else it is dropped.
  Told the opposite since (back, fixed, resolved), it is news, not a repeat, until the
  thing flaps. An opening held as a repeat counts toward a digest, and goes in it, once a
  repeat window: a fleet that went down three times in the window flaps host by host, and
  its third outage is still one digest of every host, not a digest of some and a message a
  host later; a fourth is held as repeats again (things that flap together do not make a
  digest every ``digest_window_seconds``). Repeats whose windows end together, more than
  ``digest_threshold``, go in a digest too.
- Openings (``opened``, ``worse``, ``unreachable``, ``back``, ``resolved``: a network
  coming back clears many at once, and a host's ``check_failing``
  and ``check_back``: one bug in a parser fails the checks of every host of that kind at once,
  and one fix makes them all work again): when those told within
  ``notify.digest_window_seconds`` plus this batch exceed ``notify.digest_threshold``, the
  batch is held for a digest; at most one digest goes out per window, listing what is still
  true, once the oldest it holds is :data:`DIGEST_GATHER_SECONDS` old (a fleet's checks land
  over seconds: the rest of the sweep joins it). Fifty incidents in one pass are one message.

With no channel configured, no message is made: what is no longer true is settled as above,
and the rest waits (new) for a channel, the latest of each thing only (as a pass with a
channel tells one message a thing: a disk flapping between warning and critical for a month
left thousands waiting, each read every second); a fix's ``fixed`` of an incident nobody was
told of is skipped. A pass looks at them only when an event was written since the last.
The first pass with a channel tells what is still true then, as any pass does.

One :func:`dispatch` is one transaction: an event is turned into a message exactly once, and a
crash before the commit leaves it new.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from ..config import Settings
from ..monitor.findings import Severity
from ..store.incidents import LIVE_STATES
from ..store.outbox import (
    CHECK_KINDS,
    Outbox,
    OutboxEvent,
    last_outage_event,
    outage_of,
    repeat_family,
)
from .message import Message, render, render_digest

STORM_KINDS = ("opened", "worse", "unreachable", "back", "resolved", *CHECK_KINDS)
_REACH = ("unreachable", "back")
#: what a kind says and the kinds that say the opposite of one thing (its fingerprint): the
#: kind told last of them is what the person believes now
_STATE = ("opened", "worse", "fixed", "resolved", "withdrawn")
#: a fix that failed, or a person needed: news again once the person was told it ended or
#: came back since (a second failure in a new episode is no repeat of the first)
_FIX = ("failed", "escalated", "opened", "worse", "fixed", "resolved", "withdrawn")
_SAYS = {"unreachable": _REACH, "back": _REACH, "opened": _STATE, "worse": _STATE,
         "resolved": _STATE, "failed": _FIX, "escalated": _FIX}
#: an incident's kinds whose message the later kinds make untrue: what its episode came to
#: (fixed, resolved, a fix withdrawn with it), a new episode (it reopened), or, of a fix that
#: worked, that it did not hold
_ENDED = ("fixed", "resolved", "back", "withdrawn", "opened", "unreachable")
_OVERTAKEN = {"escalated": _ENDED, "failed": _ENDED,
              "fixed": ("failed", "escalated", "opened", "worse", "unreachable")}
#: an incident's kinds that tell a person of its problem
_PROBLEM_KINDS = ("opened", "worse", "unreachable", "approval", "failed", "escalated")
#: messages of one thing's changes within the repeat window from which it flaps: its changes
#: are held for the window's end, where the latest goes out once if still true
_FLAPPING = 4
_RANK = Severity.rank_of
#: how long a digest waits, from the oldest event it holds, for the rest of what came with it
DIGEST_GATHER_SECONDS = 10.0
#: the note of a repeat held for a digest, and of one a digest told: once a repeat window
REPEAT_HELD = "held for a digest: a repeat, told in a digest once a repeat window"
REPEAT_TOLD = "a repeat, told in a digest"
#: the note of an event that waited for a channel and was overtaken by a later one of the same
#: thing, which waits in its place
OVERTAKEN_WAITING = "a later event of it waits for a channel in its place"


class Dispatcher:
    def __init__(self, settings: Settings, outbox: Outbox, channels: Sequence[str]) -> None:
        self.settings = settings
        self.notify = settings.notify
        self.outbox = outbox
        self.channels = list(channels)
        #: with no channel, the newest event when the waiting ones were last looked at: until
        #: another is written, none of them changes (ids are never reused: store/outbox.py)
        self._held_up_to: int | None = None

    def dispatch(self, now: float | None = None) -> list[int]:
        """New events to messages; held repeats and digests that are due. The messages made."""
        now = time.time() if now is None else now
        made: list[int] = []
        if not self.channels:
            self._hold_for_a_channel()
            return made
        if not self.outbox.waiting():
            return made  # the usual case: no write lock taken every pass
        with self.outbox.db.transaction() as conn:
            #: what this pass has to say, by thing (repeat key), in order
            groups: dict[str, list[OutboxEvent]] = {}
            #: the repeats of this pass (a digest may tell some: :meth:`_may_join`)
            repeats: list[OutboxEvent] = []
            for event in Outbox.events(conn, ("new",)):
                settled = self._settled(conn, event)
                if settled:
                    Outbox.mark(conn, [event.id], *settled)
                elif event.repeat_key not in groups and self._repeat(conn, event, now):
                    repeats.append(event)
                else:
                    groups.setdefault(event.repeat_key, []).append(event)
            # one message a thing: the latest of this pass (a warning, then critical: the
            # critical one), the rest counted in it
            fresh = [group[-1] for group in groups.values()]
            joining = self._may_join(conn, repeats, now)
            if self._storm(conn, fresh, joining, now):
                # held for the digest with what came before them in this pass (the digest
                # shows the latest of each)
                Outbox.mark(conn, [e.id for e in fresh if e.kind in STORM_KINDS
                                   for e in groups[e.repeat_key]], "storm", "held for a digest")
                Outbox.mark(conn, [e.id for e in joining], "storm", REPEAT_HELD)
                fresh = [e for e in fresh if e.kind not in STORM_KINDS]
                repeats = [e for e in repeats if e not in joining]
            Outbox.mark(conn, [e.id for e in repeats], "repeat", "held: a repeat within the window")
            held: dict[str, list[OutboxEvent]] = {}
            for event in Outbox.events(conn, ("repeat",)) if fresh else ():
                held.setdefault(event.repeat_key, []).append(event)
            for event in fresh:
                message = self._send(conn, [event], render(event, self.settings.ai_name), now,
                                     event.kind)
                made.append(message)
                # what this pass and earlier held repeats said of it is old news now: released
                # after this message, it would tell the person something no longer true
                older = groups[event.repeat_key][:-1] + held.get(event.repeat_key, [])
                Outbox.mark(conn, [e.id for e in older], "suppressed",
                            "counted in a later message", message)
            made += self._release_repeats(conn, now)
            made += self._release_digest(conn, now)
        return made

    def _hold_for_a_channel(self) -> None:
        """No channel configured: no message is made, for nobody would get it, and each of
        its events would count as told (a critical incident never told once a channel is
        configured, an all-clear for a page nobody got). What is no longer news is settled as
        with a channel; of the rest, the latest of each thing stays new, for the first pass
        with one, which tells what is still true then (many at once: a digest). Looked at
        only when an event was written since the last look: one read each pass while none
        is (each waiting event read every second cost a third of a core at 10,000 of them).
        Read first: a look with nothing to settle takes no write lock."""
        newest = self.outbox.newest_event()
        if newest == self._held_up_to:
            return
        if self._waiting_settles(self.outbox.db.conn):
            with self.outbox.db.transaction() as conn:
                for ids, state, note in self._waiting_settles(conn):
                    Outbox.mark(conn, ids, state, note)
        # an event written while they were looked at has a later id: the next pass looks
        self._held_up_to = newest

    def _waiting_settles(self, conn: sqlite3.Connection) -> list[tuple[list[int], str, str]]:
        """What becomes of the events that wait for a channel (ids, state, note): those no
        longer news settled, and each thing's earlier ones overtaken by its latest, as a
        pass with a channel counts them in one message (a warning, then critical: the
        critical one)."""
        settles: list[tuple[list[int], str, str]] = []
        latest: dict[str, int] = {}
        overtaken: list[int] = []
        for event in Outbox.events(conn, ("new",)):
            settled = self._settled(conn, event)
            if settled:
                settles.append(([event.id], *settled))
                continue
            if event.repeat_key in latest:
                overtaken.append(latest[event.repeat_key])
            latest[event.repeat_key] = event.id
        if overtaken:
            settles.append((overtaken, "suppressed", OVERTAKEN_WAITING))
        return settles

    def _settled(self, conn: sqlite3.Connection, event: OutboxEvent) -> tuple[str, str] | None:
        """The state and note of a new event that will never be told; None: it is news."""
        why = self._skip_reason(conn, event)
        if why:
            return "skipped", why
        if not self._still_true(conn, event):
            # down and back (or failed and fine) before anyone was told: nothing to say
            return "suppressed", "no longer true when dispatched"
        return None

    def _may_join(self, conn: sqlite3.Connection, repeats: list[OutboxEvent],
                  now: float) -> list[OutboxEvent]:
        """The repeats of a pass that a digest may tell: openings a digest has not told as
        a repeat within the repeat window."""
        window = self.notify.repeat_window_minutes * 60
        return [e for e in repeats if e.kind in STORM_KINDS and not Outbox.told_with_note(
            conn, e.repeat_key, REPEAT_TOLD, now - window, now + window)]

    def _storm(self, conn: sqlite3.Connection, fresh: list[OutboxEvent],
               repeats: list[OutboxEvent], now: float) -> bool:
        """Whether this pass's openings go to a digest (those of it in :data:`STORM_KINDS`,
        and ``repeats``, those a digest may tell, are then marked ``storm``). A repeat
        counts: each host of a fleet that went down three times in the repeat window flaps,
        and the third outage's digest told of 54 hosts of 200, the rest held for the
        window's end, one message a host, while a digest tells them all in one."""
        storm = [e for e in [*fresh, *repeats] if e.kind in STORM_KINDS]
        if not storm:
            return False
        if Outbox.events(conn, ("storm",)):
            return True
        window = self.notify.digest_window_seconds
        told = Outbox.told_since(conn, STORM_KINDS, now - window, now + window)
        return told + len(storm) > self.notify.digest_threshold

    def _skip_reason(self, conn: sqlite3.Connection, event: OutboxEvent) -> str:
        if event.kind in ("opened", "worse") and (
                _RANK(event.severity) < _RANK(self.notify.min_severity)):
            return f"below notify.min_severity ({self.notify.min_severity})"
        if event.kind == "back" and Outbox.last_told_kind(
                conn, event.fingerprint, _REACH) != "unreachable":
            return "nobody was told it was unreachable"
        if event.kind == "withdrawn" and not Outbox.approval_told(conn, event.action_id):
            return "nobody was asked to approve it"
        if event.kind == "resolved" and Outbox.withdrawal_told(conn, event.incident_id,
                                                               event.id):
            # the person asked to approve its fix hears it cleared there: one message
            return "said by its fix's withdrawal"
        if event.kind == "fixed" and not self.channels and not (
                event.incident_id is not None and Outbox.last_told_kind(
                    conn, event.fingerprint, _PROBLEM_KINDS)):
            # kept for a channel configured months later, every fix since would be a message
            # of its own about a problem the person never heard of
            return "no channel configured, and nobody was told of what it fixed"
        outage = outage_of(event.kind, event.fingerprint)
        if outage is not None and event.kind == outage.back and Outbox.last_told_kind(
                conn, outage.fingerprint, outage.kinds) != outage.down:
            return f"nobody was told of the outage ({outage.down})"
        return ""

    def _repeat(self, conn: sqlite3.Connection, event: OutboxEvent, now: float) -> bool:
        window = self.notify.repeat_window_minutes * 60
        last = Outbox.last_message_at(conn, event.repeat_key, now + window)
        if not (window > 0 and _within(now, last, window)):
            return False
        # told since that the opposite holds (back, fixed): it changed again, which is news
        # (a host down again within the window had the person believe it up, for as long),
        # unless it flaps: told that often within the window, the rest waits for its end
        said = _SAYS.get(event.kind) or (
            outage.kinds if (outage := outage_of(event.kind, event.fingerprint)) else ())
        believed = Outbox.last_told_kind(conn, event.fingerprint, said) if said else None
        if believed is not None and repeat_family(believed) != repeat_family(event.kind) and \
                Outbox.told_since(conn, said, now - window, now + window,
                                  event.fingerprint) < _FLAPPING:
            return False
        # worse than what a person was last told (warning, now critical, or back as critical
        # after a warning cleared): news, not a repeat
        told = Outbox.last_told_severity(conn, event.repeat_key)
        return not (repeat_family(event.kind) == "opened" and told is not None
                    and _RANK(event.severity) > _RANK(told))

    def _still_true(self, conn: sqlite3.Connection, event: OutboxEvent) -> bool:
        """Whether a held event still says something true now."""
        state = Outbox.state_of
        if event.kind in ("opened", "worse", "unreachable"):
            return state(conn, "incidents", event.incident_id) in LIVE_STATES
        if event.kind == "resolved":
            return state(conn, "incidents", event.incident_id) not in LIVE_STATES
        if event.kind == "back":
            return (state(conn, "incidents", event.incident_id) not in LIVE_STATES
                    and Outbox.last_told_kind(conn, event.fingerprint,
                                              _REACH) == "unreachable")
        if event.kind == "approval":
            return state(conn, "actions", event.action_id) == "pending"
        if event.kind in _OVERTAKEN and event.incident_id is not None:
            # a person needed, or a fix that failed: told after the incident resolved, or a
            # later fix worked, it paged someone about what was over; a fix that worked,
            # told after it failed again or reopened, said all was well. Its incident's state
            # alone does not say it: "fixed" is written while the check that resolves the
            # incident is still to come
            live = state(conn, "incidents", event.incident_id) in LIVE_STATES
            return (live or event.kind == "fixed") and not Outbox.said_after(
                conn, event.incident_id, event.id, _OVERTAKEN[event.kind])
        outage = outage_of(event.kind, event.fingerprint)
        if outage is not None:
            # down and back again since: what it says is over; back, told it was down
            last = last_outage_event(conn, outage)
            return last is not None and last[0] == event.id and (
                event.kind == outage.down or Outbox.last_told_kind(
                    conn, outage.fingerprint, outage.kinds) == outage.down)
        return True

    def _send(self, conn: sqlite3.Connection, events: Sequence[OutboxEvent], message: Message,
              now: float, kind: str) -> int:
        message_id = Outbox.add_message(conn, kind, message.title,
                                        message.body, message.priority, self.channels, now)
        state = "digested" if kind == "digest" else "sent"
        Outbox.mark(conn, [e.id for e in events], state, "", message_id)
        return message_id

    def _release_repeats(self, conn: sqlite3.Connection, now: float) -> list[int]:
        window = self.notify.repeat_window_minutes * 60
        groups: dict[str, list[OutboxEvent]] = {}
        for event in Outbox.events(conn, ("repeat",)):
            groups.setdefault(event.repeat_key, []).append(event)
        made = []
        due: list[list[OutboxEvent]] = []
        for key, held in groups.items():
            if _within(now, Outbox.last_message_at(conn, key, now + window), window):
                continue
            if not self._still_true(conn, held[-1]):
                Outbox.mark(conn, [e.id for e in held], "suppressed",
                            "no longer true when the repeat window ended")
                continue
            due.append(held)
        # many at once (a fleet held since its last digest): held for the digest, which
        # goes out at most once a digest window, with what else it holds; not a message each
        storm = [held for held in due if held[-1].kind in STORM_KINDS]
        if len(storm) > self.notify.digest_threshold:
            Outbox.mark(conn, [held[-1].id for held in storm], "storm", REPEAT_HELD)
            Outbox.mark(conn, [e.id for held in storm for e in held[:-1]], "suppressed",
                        "counted in a later message")
            due = [held for held in due if held not in storm]
        for held in due:
            latest = held[-1]
            message = render(latest, self.settings.ai_name, len(held), window / 60)
            made.append(self._send(conn, [latest], message, now, latest.kind))
            Outbox.mark(conn, [e.id for e in held[:-1]], "suppressed",
                        "counted in a later message", made[-1])
        return made

    def _release_digest(self, conn: sqlite3.Connection, now: float) -> list[int]:
        held = Outbox.events(conn, ("storm",))
        window = self.notify.digest_window_seconds
        if not held or _within(now, Outbox.last_digest_at(conn, now + window), window):
            return []
        # the rest of the sweep that began it: a fleet's checks land over seconds, and a
        # digest sent at the pass that crossed the threshold told of 63 hosts down of 100,
        # the other 37 held for the next window or never told (back by then)
        # (an event stamped ahead of now, on a clock since set back, holds nothing)
        if 0 <= now - min(e.at for e in held) < min(DIGEST_GATHER_SECONDS, window):
            return []
        true = [e for e in held if self._still_true(conn, e)]
        Outbox.mark(conn, [e.id for e in held if e not in true], "suppressed",
                    "no longer true when the digest went out")
        # one line a thing: the latest of what was held about it
        latest = {e.repeat_key: e for e in true}
        earlier = [e for e in true if latest[e.repeat_key] is not e]
        true = [e for e in true if latest[e.repeat_key] is e]
        if not true:
            return []
        message = (render(true[0], self.settings.ai_name) if len(true) == 1
                   else render_digest(true, self.settings.ai_name))
        made = self._send(conn, true, message, now, "digest")
        Outbox.mark(conn, [e.id for e in true if e.note == REPEAT_HELD], "digested",
                    REPEAT_TOLD, made)
        # repeats held before what the digest said of the same thing are old news now, as
        # they are after a message of its own: released after the window, they would tell
        # the person of a warning that is critical since
        told = {e.repeat_key: e.id for e in true}
        stale = [e for e in Outbox.events(conn, ("repeat",))
                 if e.id < told.get(e.repeat_key, -1)]
        Outbox.mark(conn, [e.id for e in earlier + stale], "suppressed",
                    "counted in a later message", made)
        return [made]


def _within(now: float, last: float | None, window: float) -> bool:
    """Whether ``last`` (a message's time) is less than ``window`` before ``now``. The
    outbox reads no message later than ``now`` by a window or more: such a time was stamped on
    a clock since set back (NTP correcting a clock that ran a year ahead), and judged as a
    window still running it held every repeat, and every opening once a digest had gone out,
    until the clock caught up: a year without a word to anyone."""
    return last is not None and -window < now - last < window
