from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_sysadmin.errors import StoreError
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.monitor.snapshot import JournalEntry
from ai_sysadmin.orchestrator.rises import OOM_KILLS, RESTARTS
from ai_sysadmin.store import ActionStore, Database, IncidentStore, Rises
from ai_sysadmin.store import incidents as incidents_module
from ai_sysadmin.store.incidents import JOURNAL_PRUNE_SECONDS, JOURNAL_RETENTION_SECONDS
from ai_sysadmin.store.migrations import MIGRATIONS
from tests.conftest import BIN, run_program


def unit_failed(host: str = "web1", unit: str = "nginx.service",
                severity: Severity = Severity.CRITICAL) -> Finding:
    return Finding(host, "failed_unit", unit, severity, f"{unit} has failed",
                   (f"{unit}: active=failed",))


def test_new_finding_opens_one_incident_and_repeats_update_it(store: IncidentStore) -> None:
    first = store.record_check("web1", [unit_failed()], {"failed_unit"})
    assert len(first.opened) == 1
    again = store.record_check("web1", [unit_failed()], {"failed_unit"})
    assert again.opened == [] and again.unchanged == first.opened
    (incident,) = store.incidents()
    assert incident.state == "open"
    assert incident.occurrences == 2
    assert incident.evidence == ["nginx.service: active=failed"]


def test_severity_change_is_reported_as_changed(store: IncidentStore) -> None:
    store.record_check("web1", [unit_failed(severity=Severity.WARNING)], {"failed_unit"})
    out = store.record_check("web1", [unit_failed()], {"failed_unit"})
    assert len(out.changed) == 1
    assert store.get(out.changed[0]).severity == "critical"


def test_resolves_only_when_a_fresh_collection_judged_it(store: IncidentStore) -> None:
    (incident_id,) = store.record_check("web1", [unit_failed()], {"failed_unit"}).opened
    # the units section failed to collect: the rule could not judge, nothing resolves
    out = store.record_check("web1", [], set(), collected_ok=False)
    assert out.resolved == []
    assert store.get(incident_id).state == "open"
    # another host's clean check does not touch this host
    store.record_check("web2", [], {"failed_unit"})
    assert store.get(incident_id).state == "open"
    out = store.record_check("web1", [], {"failed_unit"})
    assert out.resolved == [incident_id]
    incident = store.get(incident_id)
    assert incident.state == "resolved" and incident.resolved_at is not None
    assert incident.events[-1].detail == "a fresh collection no longer shows the finding"


def test_resolved_incident_reopens_and_closed_one_does_not(store: IncidentStore) -> None:
    (incident_id,) = store.record_check("web1", [unit_failed()], {"failed_unit"}).opened
    store.record_check("web1", [], {"failed_unit"})
    out = store.record_check("web1", [unit_failed()], {"failed_unit"})
    assert out.reopened == [incident_id]
    assert store.get(incident_id).state == "reopened"
    store.transition(incident_id, "closed", "operator", "known issue, accepted")
    # closed for good: found again while it lasts, it stays closed; gone and back, it is new
    assert store.record_check("web1", [unit_failed()], {"failed_unit"}).opened == []
    store.record_check("web1", [], {"failed_unit"})
    out = store.record_check("web1", [unit_failed()], {"failed_unit"})
    assert len(out.opened) == 1 and out.opened[0] != incident_id
    states = [e.to_state for e in store.get(incident_id).events if e.kind == "state"]
    assert states == ["resolved", "reopened", "closed"]


def test_a_finding_closed_for_good_opens_no_incident_until_a_check_that_judged_it_finds_it_gone(
        store: IncidentStore) -> None:
    (incident_id,) = store.record_check("web1", [unit_failed()], {"failed_unit"}).opened
    store.transition(incident_id, "closed", "operator", "known, ignore")
    assert store.get(incident_id).held_since is not None
    out = store.record_check("web1", [unit_failed()], {"failed_unit"})
    assert (out.opened, out.held) == ([], [incident_id])
    # checks that could not judge it find nothing gone: the units unread, the rule judged
    # but not this unit, a reading kept from an earlier look
    fingerprint = unit_failed().fingerprint
    store.record_check("web1", [], set(), collected_ok=False)
    store.record_check("web1", [], {"failed_unit"}, unjudged={fingerprint})
    store.record_check("web1", [], {"failed_unit"}, kept_rules={"failed_unit"})
    # nor does another host's clean check, nor a look from before the last that found it
    store.record_check("web2", [], {"failed_unit"})
    store.record_check("web1", [], {"failed_unit"}, collected_at=time.time() - 60)
    assert store.record_check("web1", [unit_failed()], {"failed_unit"}).held == [incident_id]
    assert [i.id for i in store.incidents(None)] == [incident_id]
    # nobody is told of a finding closed for good, however often it is found
    kinds = [k for (k,) in store.db.conn.execute("SELECT kind FROM notify_events")]
    assert kinds == ["opened"]
    # a check that judged it and no longer finds it ends the hold; its return is new
    out = store.record_check("web1", [], {"failed_unit"})
    assert out.resolved == [] and store.get(incident_id).held_since is None
    assert store.get(incident_id).events[-1].kind == "cleared"
    (new,) = store.record_check("web1", [unit_failed()], {"failed_unit"}).opened
    assert new != incident_id and store.get(incident_id).state == "closed"


def test_a_finding_closed_for_good_that_gets_worse_opens_a_new_incident(
        store: IncidentStore) -> None:
    """Closed as a warning (a disk 88 % full, "known"), found critical (99 %): that is not
    what the person let be. A new incident opens, and is told."""
    disk = Finding("web1", "disk_space", "/", Severity.WARNING, "/ is 88% full")
    (incident_id,) = store.record_check("web1", [disk], {"disk_space"}).opened
    store.transition(incident_id, "closed", "operator", "known, cleanup planned")
    assert store.record_check("web1", [disk], {"disk_space"}).held == [incident_id]
    worse = Finding("web1", "disk_space", "/", Severity.CRITICAL, "/ is 99% full")
    out = store.record_check("web1", [worse], {"disk_space"})
    assert out.held == [] and len(out.opened) == 1
    assert store.get(out.opened[0]).severity == "critical"
    assert store.get(incident_id).held_since is None
    kinds = [k for (k,) in store.db.conn.execute("SELECT kind FROM notify_events")]
    assert kinds == ["opened", "opened"]


def test_closing_a_resolved_incident_holds_nothing(store: IncidentStore) -> None:
    (incident_id,) = store.record_check("web1", [unit_failed()], {"failed_unit"}).opened
    store.record_check("web1", [], {"failed_unit"})
    store.transition(incident_id, "closed", "operator", "old news")
    assert store.get(incident_id).held_since is None
    assert len(store.record_check("web1", [unit_failed()], {"failed_unit"}).opened) == 1


def test_a_removed_host_holds_nothing_of_what_a_person_closed(store: IncidentStore) -> None:
    # added again, maybe another machine: what it finds is its own
    (incident_id,) = store.record_check("web1", [unit_failed()], {"failed_unit"}).opened
    store.transition(incident_id, "closed", "operator", "known")
    store.close_host("web1", "removed")
    assert store.get(incident_id).held_since is None


def test_a_reopened_incident_is_untriaged_though_it_holds_its_last_diagnosis(
        store: IncidentStore) -> None:
    """A daemon killed after its check reopened an incident, before investigating it: the next
    daemon's sweep must pick it up, though the diagnosis of its first time is still there."""
    (incident_id,) = store.record_check("web1", [unit_failed()], {"failed_unit"}).opened
    store.transition(incident_id, "investigating", "agent", "investigation started")
    store.record_investigation(incident_id, "DIAGNOSIS: it failed once.", None)
    store.transition(incident_id, "open", "agent", "investigation finished")
    assert store.untriaged() == []  # investigated
    store.record_check("web1", [], {"failed_unit"})
    assert store.record_check("web1", [unit_failed()], {"failed_unit"}).reopened == [incident_id]
    assert [i.id for i in store.untriaged()] == [incident_id]
    assert store.get(incident_id).diagnosis == "DIAGNOSIS: it failed once."


def test_lifecycle_refuses_impossible_moves(store: IncidentStore) -> None:
    (incident_id,) = store.record_check("web1", [unit_failed()], {"failed_unit"}).opened
    for state in ("investigating", "awaiting_approval", "remediating", "resolved"):
        store.transition(incident_id, state, "test")
    with pytest.raises(StoreError, match="cannot go from resolved to investigating"):
        store.transition(incident_id, "investigating", "test")
    with pytest.raises(StoreError, match="unknown incident state"):
        store.transition(incident_id, "fixed", "test")


def test_audit_log_is_append_only(store: IncidentStore) -> None:
    store.audit("operator", "incident.closed", "incident:1", "because")
    assert store.audit_log()[-1]["action"] == "incident.closed"
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.db.conn.execute("UPDATE audit SET actor='someone else'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.db.conn.execute("DELETE FROM audit")


def test_state_changes_land_in_the_audit_log(store: IncidentStore) -> None:
    (incident_id,) = store.record_check("web1", [unit_failed()], {"failed_unit"}).opened
    store.transition(incident_id, "closed", "operator", "won't fix")
    last = store.audit_log()[-1]
    assert (last["actor"], last["action"], last["subject"], last["detail"]) == (
        "operator", "incident.closed", f"incident:{incident_id}", "won't fix")


def test_journal_entries_and_cursor_are_stored_together(store: IncidentStore) -> None:
    now = time.time()
    entries = [JournalEntry(f"c{i}", now + i, 3, f"boom {i}", "app.service") for i in range(3)]
    store.record_check("web1", [], set(), consumer="daemon", journal=entries,
                       journal_cursor="c2")
    assert store.journal_cursor("web1", "daemon") == "c2"
    assert store.journal_cursor("web1", "check") is None
    assert [e["message"] for e in store.journal_entries("web1")] == ["boom 0", "boom 1", "boom 2"]


def test_a_journal_line_whose_secret_name_a_control_character_splits_is_kept_masked(
        store: IncidentStore) -> None:
    """Evidence strips control characters before it masks; the journal kept its lines
    masked only, and a backspace inside a secret's name hid it from the masking: the
    password was stored in clear."""
    line = "app: connecting with DB_PASS\bWORD=hunter2 failed"
    store.record_check("web1", [], set(), journal=[JournalEntry("c1", time.time(), 3, line,
                                                                "app\x1b[2J.service")])
    (kept,) = store.journal_entries("web1")
    assert kept["message"] == "app: connecting with DB_PASSWORD=[redacted] failed"
    assert kept["source"] == "app.service"


def test_a_checks_journal_is_masked_before_it_takes_the_write_lock(
        store: IncidentStore) -> None:
    """Masking a chunk of 2,000 long journal lines took over a minute, inside the check's
    write transaction: every other process (a person's `issues resolve`, another check) was
    refused at the 30 s busy timeout. Another process can write while the lines are read to
    be masked."""
    store.record_check("web1", [], set())
    writable: list[bool] = []
    kept_message = JournalEntry.__dict__["message"]  # the dataclass's slot

    class Watched(JournalEntry):
        """An entry that notes, whenever its message is read, whether another process could
        begin a write then."""

        __slots__ = ()

        @property  # type: ignore[override]
        def message(self) -> str:
            other = sqlite3.connect(store.db.path, timeout=0, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
                writable.append(True)
            except sqlite3.OperationalError:  # database is locked
                writable.append(False)
            finally:
                other.close()
            return kept_message.__get__(self)

        @message.setter
        def message(self, text: str) -> None:
            kept_message.__set__(self, text)

    store.record_check("web1", [], set(), journal=[
        Watched(f"c{i}", time.time(), 4, f"warning {i}", "app.service") for i in range(3)])
    assert writable and all(writable)
    assert [e["message"] for e in store.journal_entries("web1")] == [
        "warning 0", "warning 1", "warning 2"]


def test_a_command_that_only_reads_is_not_held_up_by_another_process_writing(
        store: IncidentStore) -> None:
    """Opening the state database took its write lock even for a file already of this
    schema: `issues list` beside a long write (a check storing its journal, a backup) waited
    for it, and was refused after the 30 s busy timeout. It reads at once."""
    store.record_check("web1", [unit_failed()], {"failed_unit"})
    writer = sqlite3.connect(store.db.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        began = time.monotonic()
        done = run_program(str(BIN), "issues", "list", "--json", timeout=25)
        took = time.monotonic() - began
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert done.returncode == 0, done.stderr
    assert [i["subject"] for i in json.loads(done.stdout)] == ["nginx.service"]
    assert took < 15


def test_journal_entries_past_their_retention_are_deleted(
        store: IncidentStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def age_one(cursor: str) -> None:  # an entry stored a week and a minute ago
        store.db.conn.execute(
            "INSERT INTO journal_entries(host, consumer, cursor, at, priority, source, message) "
            "VALUES ('web1', 'daemon', ?, ?, 3, 'a', ?)",
            (cursor, time.time() - JOURNAL_RETENTION_SECONDS - 60, cursor))

    def kept() -> list[str]:
        return [e["message"] for e in store.journal_entries("web1")]

    age_one("old-1")
    store.record_check("web1", [], set())  # the process's first check of the host
    assert kept() == []
    age_one("old-2")
    store.record_check("web1", [], set())  # none stored, the last delete a moment ago
    assert kept() == ["old-2"]
    store.record_check("web1", [], set(), journal=[
        JournalEntry("new", time.time(), 3, "new", "app.service")])  # one that stores some
    assert kept() == ["new"]
    age_one("old-3")
    later = time.time() + JOURNAL_PRUNE_SECONDS + 1
    monkeypatch.setattr(time, "time", lambda: later)
    store.record_check("web1", [], set())  # an hour on, none stored
    assert kept() == ["new"]


def test_migrations_are_applied_once_and_newer_schema_is_refused(tmp_path) -> None:
    path = tmp_path / "s.db"
    Database(path)
    db = Database(path)
    assert db.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    db.close()
    with pytest.raises(StoreError, match="upgrade ai-sysadmin"):
        Database(path)


def test_a_database_from_before_fix_times_keeps_its_actions_and_times_new_fixes(
        tmp_path) -> None:
    """The previous release's schema (6) is upgraded in place: an action that ran then reads
    as before, with no time of its fix (only its process knew it); one that runs now has
    one, which a checker of any process reads by its incident's rule and subject."""
    path = tmp_path / "s.db"
    before = Database(path, MIGRATIONS[:6])
    found, now = unit_failed(), time.time()
    with before.transaction() as conn:  # as that release's check kept it (today's needs today's)
        incident_id = conn.execute(
            "INSERT INTO incidents(fingerprint, host, rule, subject, severity, summary, state, "
            "opened_at, updated_at, last_seen) VALUES (?,?,?,?,?,?,'open',?,?,?)",
            (found.fingerprint, found.host, found.rule, found.subject, found.severity.label,
             found.summary, now, now, now)).lastrowid

    def ran_to_the_end(actions: ActionStore, at: float | None) -> int:
        action = actions.create(
            incident_id=incident_id, proposal_id=None, host="web1", kind="restart_unit",
            params={"unit": "nginx.service"}, subject="nginx.service", risk="low", plan={},
            outcome="execute", reason="low risk", state="approved")
        actions.claim(action.id, "executor")
        if at is not None:
            actions.ran(action.id, [], at)
        actions.move(action.id, "succeeded", "executor", "verified")
        return action.id

    old = ran_to_the_end(ActionStore(before), None)
    before.close()
    actions = ActionStore(Database(path))
    assert actions.get(old).state == "succeeded" and actions.get(old).ran_at is None
    assert actions.fixes_since("web1", 0.0) == {}
    at = time.time()
    new = ran_to_the_end(actions, at)
    assert actions.get(new).ran_at == at
    assert actions.fixes_since("web1", at - 60) == {("failed_unit", "nginx.service"): at}
    assert actions.fixes_since("web1", at + 1) == {}
    assert actions.fixes_since("web2", 0.0) == {}


def test_a_database_from_before_stored_oom_kills_keeps_restart_rises_and_times_live_kills(
        tmp_path) -> None:
    """The previous release's schema (10) kept restart rises only; an OOM kill's time was
    in its daemon's memory. Upgraded, the restart rises are as they were, and a live OOM kill
    incident's kill is taken to be no later than the last check that found it (so it
    resolves a window after that check, not a window after the new daemon starts); a
    resolved one, and other rules' incidents, have none."""
    path = tmp_path / "s.db"
    before = Database(path, MIGRATIONS[:10])
    rose, last_seen = time.time() - 120, time.time() - 60

    def killed(unit: str) -> Finding:
        return Finding("web1", "oom_kill", unit, Severity.WARNING, f"{unit} OOM-killed")

    with before.transaction() as conn:  # as that release's checks kept them
        conn.execute("INSERT INTO restart_rises(host, unit, rose_after) VALUES (?,?,?)",
                     ("web1", "slow.service", rose))
        for found, state in ((killed("worker.service"), "open"),
                             (killed("gone.service"), "resolved"), (unit_failed(), "open")):
            conn.execute(
                "INSERT INTO incidents(fingerprint, host, rule, subject, severity, summary, "
                "state, opened_at, updated_at, last_seen) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (found.fingerprint, found.host, found.rule, found.subject,
                 found.severity.label, found.summary, state, rose, last_seen, last_seen))
    before.close()

    store = IncidentStore(Database(path))
    assert store.rises("web1", RESTARTS, 0.0) == {"slow.service": rose}
    assert store.rises("web1", OOM_KILLS, 0.0) == {"worker.service": last_seen}


def test_each_counter_keeps_its_own_rises_and_forgets_only_its_own_old_ones(
        store: IncidentStore) -> None:
    """A check that saw a service OOM-killed keeps the kill beside the loop's restart an hour
    before it (the crash loop window is longer here): neither counter's window forgets the
    other's rises."""
    now = time.time()
    store.record_check("web1", [], set(), rises={
        RESTARTS: Rises({"app.service": now - 3600}, now - 7200)})
    store.record_check("web1", [], set(), rises={
        RESTARTS: Rises({}, now - 60), OOM_KILLS: Rises({"app.service": now}, now - 60)})
    assert store.rises("web1", RESTARTS, 0.0) == {"app.service": now - 3600}
    assert store.rises("web1", OOM_KILLS, 0.0) == {"app.service": now}
    store.record_check("web1", [], set(), rises={
        RESTARTS: Rises({"db.service": now}, now - 60)})
    assert store.rises("web1", RESTARTS, 0.0) == {"db.service": now}
    assert store.rises("web1", OOM_KILLS, 0.0) == {"app.service": now}
    assert store.rises("web2", OOM_KILLS, 0.0) == {}


def _flapping(store: IncidentStore, flaps: int) -> int:
    """An incident on a flapping host: found, gone, found again ... (one event each)."""
    (incident_id,) = store.record_check("web1", [unit_failed()], {"failed_unit"}).opened
    for _ in range(flaps):
        store.record_check("web1", [], {"failed_unit"})
        store.record_check("web1", [unit_failed()], {"failed_unit"})
    return incident_id


def test_get_reads_the_latest_events_and_counts_the_others(store: IncidentStore) -> None:
    """A months-old incident on a flapping host gathers tens of thousands of events: every
    `get` (each check, verification, approval) read them all (0.4 s at 50,000)."""
    incident_id = _flapping(store, 60)  # 121 events: opened, then resolved/reopened 60 times
    incident = store.get(incident_id)
    recent = len(incident.events)
    assert recent < 121, "get read every event of the incident"
    assert recent == incidents_module.RECENT_EVENTS
    assert (incident.event_count, incident.earlier_events) == (121, 121 - recent)
    assert incident.events[-1].to_state == "reopened" and incident.state == "reopened"
    assert [e.at for e in incident.events] == sorted(e.at for e in incident.events)
    alone = store.get(incident_id, history=0)  # for its state: no event is read
    assert (alone.state, alone.events, alone.event_count) == ("reopened", [], None)
    every = store.get(incident_id, history=None)
    assert len(every.events) == 121 and every.earlier_events == 0
    assert every.events[-recent:] == incident.events and every.events[0].to_state == "open"


def test_issues_show_says_how_many_earlier_events_it_leaves_out(
        store: IncidentStore, cli: Callable[..., tuple[int, str, str]]) -> None:
    incident_id = _flapping(store, 60)
    dated = re.compile(r"^  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", re.MULTILINE)
    code, out, _ = cli("issues", "show", str(incident_id))
    assert code == 0 and len(dated.findall(out)) == 50
    assert "(71 earlier event(s) not shown: --events 0 shows them all)" in out
    code, out, _ = cli("issues", "show", str(incident_id), "--events", "0")
    assert code == 0 and len(dated.findall(out)) == 121 and "not shown" not in out
    code, out, _ = cli("issues", "show", str(incident_id), "-n", "5", "--json")
    shown = json.loads(out)
    assert (len(shown["events"]), shown["event_count"], shown["earlier_events"]) == (5, 121, 116)


def test_an_incident_a_fix_only_hid_stays_open_until_a_fix_verifies(
        store: IncidentStore) -> None:
    (incident_id,) = store.record_check("web1", [unit_failed()], {"failed_unit"}).opened
    store.record_check("web1", [], {"failed_unit"})  # the reset-failed hid the finding
    assert store.get(incident_id).state == "resolved"
    assert store.keep_open(incident_id, "executor", "escalated: nginx.service is not active")
    assert store.get(incident_id).state == "reopened"
    out = store.record_check("web1", [], {"failed_unit"})
    assert incident_id not in out.resolved and store.get(incident_id).state == "reopened"
    assert store.release_kept(incident_id, "executor", "action 2 fixed it")
    assert store.get(incident_id).state == "resolved"
    # resolved once, it resolves and reopens with its finding as any other
    store.record_check("web1", [unit_failed()], {"failed_unit"})
    assert store.record_check("web1", [], {"failed_unit"}).resolved == [incident_id]
    assert not store.release_kept(incident_id, "executor", "nothing kept")


def test_a_look_stored_after_a_later_one_changes_nothing_of_its_incident(
        store: IncidentStore) -> None:
    """A person's `check` that began before the daemon's last look is stored after it: its
    older finding (a warning, where the daemon's newer look found it critical) neither
    turns the incident back nor tells anyone anything; the next look goes on from the
    newest."""
    now = time.time()

    def disk(severity: Severity, percent: int) -> Finding:
        return Finding("web1", "disk_space", "/srv", severity, f"/srv is {percent} % full",
                       (f"/srv: {percent} %",))

    store.record_check("web1", [disk(Severity.WARNING, 90)], {"disk_space"},
                       collected_at=now - 120)
    (incident_id,) = store.record_check("web1", [disk(Severity.CRITICAL, 96)], {"disk_space"},
                                        collected_at=now - 10).changed
    late = store.record_check("web1", [disk(Severity.WARNING, 93)], {"disk_space"},
                              consumer="cli", collected_at=now - 30)
    assert late.unchanged == [incident_id] and late.changed == []
    incident = store.get(incident_id, history=None)
    assert (incident.severity, incident.summary) == ("critical", "/srv is 96 % full")
    assert [e.detail.split(":")[0] for e in incident.events if e.kind == "changed"] == [
        "severity warning -> critical"]
    assert [row[0] for row in store.db.conn.execute(
        "SELECT kind FROM notify_events ORDER BY id")] == ["opened", "worse"]


@pytest.mark.parametrize("opening", ["state database", "queue"])
def test_processes_starting_together_on_a_new_file_all_open_it(tmp_path, opening: str) -> None:
    """systemd starts the daemon and its LLM worker together: on a fresh machine both create
    the queue file at once, and SQLite refused one of them its switch to WAL at once (about
    one start in twenty), which failed that service as if the file were held locked."""
    from ai_sysadmin.llm.queue.sqlite import SqliteQueue

    def open_it(path) -> None:
        if opening == "queue":
            SqliteQueue(path).close()
        else:
            Database(path).close()

    refused: list[BaseException] = []
    for round_ in range(60):
        path = tmp_path / f"{round_}.db"
        together = threading.Barrier(3)

        def start(path=path, together=together) -> None:
            together.wait()
            try:
                open_it(path)
            except BaseException as exc:  # what a service would die of
                refused.append(exc)

        starting = [threading.Thread(target=start) for _ in range(3)]
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join()
    assert refused == []


def test_the_state_database_syncs_each_commit_the_queue_need_not(tmp_path: Path) -> None:
    """A fix's claim, written before it runs, must outlive a power loss: in WAL mode
    ``synchronous=NORMAL`` keeps a commit through a crash of the process only, and a claim
    rolled back by a reboot made a fix that had run approvable, and run, again. The LLM
    queue, whose requests at worst are answered twice, keeps the cheaper setting."""
    from ai_sysadmin.llm.queue.sqlite import SqliteQueue

    state = Database(tmp_path / "state.db")
    queue = SqliteQueue(tmp_path / "queue.db")
    full, normal = 2, 1  # SQLite's values of PRAGMA synchronous
    assert state.conn.execute("PRAGMA synchronous").fetchone()[0] == full
    assert queue.db.conn.execute("PRAGMA synchronous").fetchone()[0] == normal
    queue.close()


def test_a_proposal_after_its_incident_left_the_investigation_says_so(
        store: IncidentStore) -> None:
    """An investigation's proposal that came after a check resolved its incident is advisory
    (never decided), and its history said "in a discussion", which there was none of."""
    finding = Finding("web1", "failed_unit", "app.service", Severity.CRITICAL, "app failed")
    (incident,) = store.record_check("web1", [finding], {"failed_unit"}).opened
    store.transition(incident, "investigating", "agent", "investigation started")
    store.record_check("web1", [], {"failed_unit"})  # the unit came back meanwhile
    store.add_proposal(incident, "web1", "restart_unit", '{"unit": "app.service"}', "why")
    said = [e.detail for e in store.get(incident).events if e.kind == "proposal"]
    assert said == ['proposed restart_unit {"unit": "app.service"} once the incident was '
                    "resolved (advisory: never decided)"]
