"""Storm control, on the messages the outbox makes (what every channel then receives): repeats
held and summed up once, many openings as one digest, news only a person can use."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.notify import Notifier
from ai_sysadmin.notify.message import BODY_LIMIT
from ai_sysadmin.notify.storm import DIGEST_GATHER_SECONDS
from ai_sysadmin.store import ActionStore, Database, Incident, IncidentStore
from tests.notify.conftest import failed, make_settings, run_notifier, unreachable, unsent
from tests.notify.servers import GotifyServer

WINDOW = 30 * 60


def setup(tmp_path: Path, **notify: object) -> tuple[IncidentStore, Notifier]:
    settings = make_settings(tmp_path, **notify)
    store = IncidentStore(Database(settings.db_path))
    return store, Notifier(settings, store.db, channels=unsent(tmp_path))


def _running_restart(store: IncidentStore, incident_id: int) -> tuple[ActionStore, int]:
    """An auto-safe restart of a.service on web1 for the incident, claimed to run."""
    actions = ActionStore(store.db)
    action = actions.create(incident_id=incident_id, proposal_id=None, host="web1",
                            kind="restart_unit", params={"unit": "a.service"},
                            subject="a.service", risk="low", plan={}, outcome="execute",
                            reason="auto-safe", state="approved").id
    actions.claim(action, "executor")
    return actions, action


def titles(notifier: Notifier, now: float | None = None) -> list[str]:
    """Dispatch as the daemon's loop does, at ``now``; the titles of the messages made."""
    made = set(notifier.dispatcher.dispatch(now))
    return [m["title"] for m in notifier.outbox.messages() if m["id"] in made]


def test_a_flapping_unit_is_one_message_then_one_summary(tmp_path: Path) -> None:
    store, notifier = setup(tmp_path)
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    assert titles(notifier) == ["[hal] web1: a.service has failed"]
    for _ in range(3):  # resolves and fails again, three times within the window
        store.record_check("web1", [], {"failed_unit"})
        store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
        assert titles(notifier) == []
    later = time.time() + WINDOW + 1
    assert titles(notifier, later) == ["[hal] web1: a.service has failed (3 more times in "
                                       "30 min)"]
    assert titles(notifier, later + 1) == []


def test_a_repeat_that_is_no_longer_true_is_dropped(tmp_path: Path) -> None:
    store, notifier = setup(tmp_path)
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    assert len(titles(notifier)) == 1
    store.record_check("web1", [], {"failed_unit"})
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    store.record_check("web1", [], {"failed_unit"})  # healthy when the window ends
    # the person paged is told it cleared (once: the failure between was never told)
    assert titles(notifier) == [
        "[hal] web1: resolved: a.service has failed (was critical, paged 0 min ago)"]
    assert titles(notifier, time.time() + WINDOW + 1) == []


def test_gone_before_anyone_was_told_is_not_news(tmp_path: Path) -> None:
    store, notifier = setup(tmp_path)
    store.record_check("web1", [unreachable("web1")], {"host_unreachable"})
    store.record_check("web1", [], {"host_unreachable"})  # back within one dispatch
    store.record_check("web2", [failed("web2", "a.service")], {"failed_unit"})
    store.record_check("web2", [], {"failed_unit"})
    assert titles(notifier) == []


def test_fifty_incidents_at_once_are_one_digest(tmp_path: Path) -> None:
    store, notifier = setup(tmp_path)
    for host in range(10):
        store.record_check(f"web{host}", [failed(f"web{host}", f"app{n}.service")
                                          for n in range(5)], {"failed_unit"})
    assert notifier.dispatcher.dispatch() == []  # it waits for the rest of the sweep
    made = notifier.dispatcher.dispatch(time.time() + DIGEST_GATHER_SECONDS)
    (digest,) = [m for m in notifier.outbox.messages() if m["id"] in made]
    assert digest["kind"] == "digest" and digest["priority"] == 8
    assert digest["title"].startswith("[hal] 50 incidents on 10 hosts: web0, web1, web2")
    body = digest["body"].splitlines()
    assert body[0] == "web0: app0.service has failed (hal-issues show 1)"
    assert body[-2:] == ["... and 38 more", "Next: hal-issues list"]


def test_a_digest_of_long_unit_names_keeps_its_count_and_its_command(tmp_path: Path) -> None:
    """Twenty failed units with long instance names (systemd allows 255 characters): the
    digest names as many as fit and still says how many more and what to run."""
    store, notifier = setup(tmp_path)
    units = [f"backup-job@srv-{n:02d}-{'x' * 200}.service" for n in range(20)]
    store.record_check("web1", [failed("web1", unit) for unit in units], {"failed_unit"})
    notifier.dispatcher.dispatch()
    made = notifier.dispatcher.dispatch(time.time() + DIGEST_GATHER_SECONDS)
    (digest,) = [m for m in notifier.outbox.messages() if m["id"] in made]
    assert len(digest["body"]) <= BODY_LIMIT
    *named, more, command = digest["body"].splitlines()
    assert command == "Next: hal-issues list"
    assert more == f"... and {20 - len(named)} more" and len(named) >= 8
    # whole lines, each with its own command
    assert all(line.endswith(f"(hal-issues show {n + 1})") for n, line in enumerate(named))


def test_a_trickle_goes_one_by_one_then_in_one_digest_per_window(tmp_path: Path) -> None:
    store, notifier = setup(tmp_path, digest_threshold=3, digest_window_seconds=60)
    got = []
    for n in range(6):
        store.record_check("web1", [failed("web1", f"s{m}.service") for m in range(n + 1)],
                           {"failed_unit"})
        got.append(titles(notifier))
    assert got[:3] == [[f"[hal] web1: s{n}.service has failed"] for n in range(3)]
    # over the threshold: held for a digest, which waits for the rest of what comes with it
    assert got[3:] == [[], [], []]
    later = time.time() + DIGEST_GATHER_SECONDS
    assert titles(notifier, later) == ["[hal] 3 incidents on 1 host: web1"]
    store.record_check("web1", [failed("web1", f"s{m}.service") for m in range(7)],
                       {"failed_unit"})
    assert titles(notifier, later + 1) == []  # held: one digest per window
    assert titles(notifier, later + 61) == ["[hal] web1: s6.service has failed"]


def test_below_min_severity_nothing_until_it_gets_worse(tmp_path: Path) -> None:
    store, notifier = setup(tmp_path)
    store.record_check("web1", [failed("web1", "a.service", Severity.WARNING)], {"failed_unit"})
    assert titles(notifier) == []
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    assert titles(notifier) == ["[hal] web1: a.service has failed (now critical)"]


def test_a_warning_told_that_turns_critical_is_told_at_once(tmp_path: Path) -> None:
    store, notifier = setup(tmp_path, min_severity="warning")
    store.record_check("web1", [failed("web1", "a.service", Severity.WARNING)], {"failed_unit"})
    assert titles(notifier) == ["[hal] web1: a.service has failed"]
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    # not a repeat within the window: what the person knew got worse
    assert titles(notifier, time.time() + 300) == [
        "[hal] web1: a.service has failed (now critical)"]


def test_what_followed_an_incident_in_a_storm_goes_in_the_digest_not_before_it(
        tmp_path: Path) -> None:
    store, notifier = setup(tmp_path, digest_threshold=3, min_severity="warning")
    # opened as warnings, then one got worse, all before the daemon's next pass
    store.record_check("web1", [failed("web1", f"s{n}.service", Severity.WARNING)
                                for n in range(7)], {"failed_unit"})
    store.record_check("web1", [failed("web1", "s0.service"), *(
        failed("web1", f"s{n}.service", Severity.WARNING) for n in range(1, 7))],
        {"failed_unit"})
    made = notifier.dispatcher.dispatch(time.time() + DIGEST_GATHER_SECONDS)
    (digest,) = [m for m in notifier.outbox.messages() if m["id"] in made]
    assert digest["kind"] == "digest" and digest["title"].startswith("[hal] 7 incidents")
    body = digest["body"].splitlines()
    assert body.count("web1: s0.service has failed (now critical) (hal-issues show 1)") == 1
    assert not any("s0.service has failed (hal-issues" in line for line in body)
    assert titles(notifier, time.time() + DIGEST_GATHER_SECONDS + WINDOW + 1) == []


def test_a_host_down_and_back_and_a_flapping_one(tmp_path: Path) -> None:
    store, notifier = setup(tmp_path)
    down, up = ([unreachable("web1")], {"host_unreachable"}), ([], {"host_unreachable"})
    store.record_check("web1", *down)
    assert titles(notifier) == ["[hal] web1: unreachable"]
    store.record_check("web1", *up)
    assert titles(notifier) == ["[hal] web1: reachable again"]
    store.record_check("web1", *down)
    store.record_check("web1", *up)
    assert titles(notifier) == []  # down and back before anyone was told: nothing to say
    assert titles(notifier, time.time() + WINDOW + 1) == []
    # down again within the window, the person last told it is back: news at once (held for
    # the window, it had the person believe it up for as long)
    store.record_check("web1", *down)
    assert titles(notifier) == ["[hal] web1: unreachable"]
    store.record_check("web1", *up)
    assert titles(notifier) == ["[hal] web1: reachable again"]
    # four messages of it within the window: it flaps, and the rest waits for the window's end
    store.record_check("web1", *down)
    assert titles(notifier) == []
    assert titles(notifier, time.time() + WINDOW + 1) == [
        "[hal] web1: unreachable (1 more time in 30 min)"]


def test_back_is_news_only_to_someone_told_it_was_down(tmp_path: Path) -> None:
    store, notifier = setup(tmp_path, repeat_window_minutes=0)
    store.record_check("web1", [unreachable("web1")], {"host_unreachable"})
    with store.db.transaction() as conn:  # the daemon died before telling anyone
        conn.execute("UPDATE notify_events SET state='skipped'")
    store.record_check("web1", [], {"host_unreachable"})
    assert titles(notifier) == []


def test_every_approval_is_its_own_message(tmp_path: Path) -> None:
    store, notifier = setup(tmp_path)
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    (incident,) = store.incidents()
    actions = ActionStore(store.db)
    for kind in ("restart_unit", "reset_failed_unit"):
        actions.create(incident_id=incident.id, proposal_id=None, host="web1", kind=kind,
                       params={"unit": "a.service"}, subject="a.service", risk="low", plan={},
                       outcome="approval", reason="suggest", state="pending")
    assert titles(notifier)[1:] == [
        "[hal] web1: approval needed: restart_unit a.service",
        "[hal] web1: approval needed: reset_failed_unit a.service"]
    bodies = [m["body"] for m in notifier.outbox.messages()]
    assert bodies[1].endswith("Next: hal-approve approve 1")
    assert bodies[2].endswith("Next: hal-approve approve 2")


def test_an_approval_that_resolved_by_itself_is_withdrawn_quietly_to_whom_it_asked(
        tmp_path: Path) -> None:
    # the unit was fixed by hand: the person asked to approve its restart hears, once and
    # low, that it is no longer needed; one never asked hears nothing of it
    store, notifier = setup(tmp_path)
    actions = ActionStore(store.db)

    def waiting(unit: str) -> int:
        store.record_check("web1", [failed("web1", unit)], {"failed_unit"})
        incident = next(i for i in store.incidents() if i.subject == unit)
        return actions.create(incident_id=incident.id, proposal_id=None, host="web1",
                              kind="restart_unit", params={"unit": unit}, subject=unit,
                              risk="low", plan={}, outcome="approval", reason="suggest",
                              state="pending").id

    asked = waiting("a.service")
    assert titles(notifier)[-1] == "[hal] web1: approval needed: restart_unit a.service"
    waiting("b.service")  # resolved before the dispatcher told anyone
    store.record_check("web1", [], {"failed_unit"})
    assert titles(notifier) == ["[hal] web1: no longer needed: restart_unit a.service"]
    message = notifier.outbox.messages()[-1]
    assert message["priority"] == 2
    assert (f"Approval {asked} is withdrawn: restart_unit a.service will not run (incident 1 "
            "resolved: no longer needed, withdrawn (a fresh collection no longer shows the "
            "finding)).") in message["body"]


def test_a_kill_is_told_as_the_process_it_signals_not_its_service(tmp_path: Path) -> None:
    # "approval needed: kill_process reindex.service" read as the whole service killed,
    # where `approve list` showed kill_process {"pid": 302}
    store, notifier = setup(tmp_path)
    store.record_check("web1", [failed("web1", "reindex.service")], {"failed_unit"})
    (incident,) = store.incidents()
    actions = ActionStore(store.db)
    for params, subject in (({"pid": 302}, "reindex.service"),
                            ({"pid": 303, "signal": "KILL"}, "pid:303")):
        actions.create(incident_id=incident.id, proposal_id=None, host="web1",
                       kind="kill_process", params=params, subject=subject, risk="medium",
                       plan={}, outcome="approval", reason="suggest", state="pending")
    assert titles(notifier)[1:] == [
        "[hal] web1: approval needed: kill_process PID 302 (reindex.service)",
        "[hal] web1: approval needed: kill_process PID 303 with SIGKILL"]
    bodies = [m["body"] for m in notifier.outbox.messages()]
    assert "Proposed: kill_process PID 302 (reindex.service) (risk medium)." in bodies[1]
    ran = actions.create(incident_id=incident.id, proposal_id=None, host="web1",
                         kind="kill_process", params={"pid": 304}, subject="reindex.service",
                         risk="low", plan={}, outcome="execute", reason="auto-safe",
                         state="approved").id
    actions.claim(ran, "executor")
    actions.move(ran, "succeeded", "executor", "the unit runs again")
    notifier.dispatcher.dispatch()
    assert notifier.outbox.messages()[-1]["body"].splitlines()[-2] == (
        "Ran kill_process PID 304 (reindex.service); verified: the unit runs again")


def test_a_warning_then_critical_in_one_pass_is_told_once_as_critical(tmp_path: Path) -> None:
    store, notifier = setup(tmp_path, min_severity="warning")
    store.record_check("web1", [failed("web1", "a.service", Severity.WARNING)], {"failed_unit"})
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    assert titles(notifier) == ["[hal] web1: a.service has failed (now critical)"]
    assert titles(notifier, time.time() + WINDOW + 1) == []  # nothing stale after it


def test_a_held_repeat_older_than_what_was_told_never_goes_out(tmp_path: Path) -> None:
    store, notifier = setup(tmp_path, min_severity="warning")
    warn = [failed("web1", "a.service", Severity.WARNING)]
    store.record_check("web1", warn, {"failed_unit"})
    assert titles(notifier) == ["[hal] web1: a.service has failed"]
    store.record_check("web1", [], {"failed_unit"})
    store.record_check("web1", warn, {"failed_unit"})  # back as a warning: held, a repeat
    assert titles(notifier) == []
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    assert titles(notifier) == ["[hal] web1: a.service has failed (now critical)"]
    assert titles(notifier, time.time() + WINDOW + 1) == []  # the held warning is old news


def test_a_held_repeat_older_than_what_a_digest_told_never_goes_out(tmp_path: Path) -> None:
    """The same, where the critical news went out in a digest (five other hosts failed in
    the same pass): the held warning is old news after the digest too."""
    store, notifier = setup(tmp_path, min_severity="warning", digest_threshold=3)
    warn = [failed("web1", "a.service", Severity.WARNING)]
    t0 = time.time()
    store.record_check("web1", warn, {"failed_unit"})
    assert titles(notifier, t0) == ["[hal] web1: a.service has failed"]
    store.record_check("web1", [], {"failed_unit"})
    store.record_check("web1", warn, {"failed_unit"})
    assert titles(notifier, t0 + 10) == []
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    for n in range(5):
        store.record_check(f"db{n}", [failed(f"db{n}", "x.service")], {"failed_unit"})
    assert titles(notifier, t0 + 20) == ["[hal] 6 incidents on 6 hosts: db0, db1, db2, db3, "
                                         "db4, ..."]
    assert titles(notifier, t0 + 20 + WINDOW + 1) == []


def test_the_checks_of_many_hosts_failing_at_once_are_one_digest(tmp_path: Path) -> None:
    # one bug in a parser fails the checks of every host of that kind at once, and one fix
    # makes them all work again: a digest each time, not forty high-priority messages
    from ai_sysadmin.store.outbox import checks_of

    store, notifier = setup(tmp_path)
    hosts = [f"web{n}" for n in range(40)]
    for host in hosts:
        store.tell_down({"host": host, "since": time.time() - 600, "error": "ValueError: x",
                         "unit": "hal.service"}, checks_of(host))
    made = notifier.dispatcher.dispatch(time.time() + DIGEST_GATHER_SECONDS)
    (digest,) = [m for m in notifier.outbox.messages() if m["id"] in made]
    assert digest["kind"] == "digest" and digest["priority"] == 8
    assert digest["title"].startswith("[hal] 40 checks failing on 40 hosts: web0, web1, web2")
    assert digest["body"].splitlines()[0] == ("web0: not watched: its checks fail "
                                              "(hal-logs service)")
    for host in hosts:
        assert store.tell_back({"host": host}, checks_of(host))
    later = time.time() + DIGEST_GATHER_SECONDS + 121  # the next digest window
    made = notifier.dispatcher.dispatch(later)
    (back,) = [m for m in notifier.outbox.messages() if m["id"] in made]
    assert back["title"].startswith("[hal] 40 checks working again on 40 hosts") \
        and back["priority"] == 2


def test_a_failure_again_after_it_was_reported_fixed_is_news_at_once(tmp_path: Path) -> None:
    """Told "fixed", the person believes it is; failing again within the window it was held
    as a repeat of the first failure, for up to the window's length."""
    store, notifier = setup(tmp_path)
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    assert titles(notifier) == ["[hal] web1: a.service has failed"]
    (incident,) = store.incidents()
    actions, action = _running_restart(store, incident.id)
    actions.move(action, "succeeded", "executor", "finding gone for 5 s")
    store.record_check("web1", [], {"failed_unit"})
    assert titles(notifier) == ["[hal] web1: fixed: a.service has failed"]
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    assert titles(notifier) == ["[hal] web1: a.service has failed"]


def test_a_held_needs_a_person_is_dropped_once_its_incident_resolved(tmp_path: Path) -> None:
    """Escalated, and escalated again in the same episode (held: a repeat), then resolved:
    at the window's end "needs a person ... (1 more time)" paged about what was over. In a
    new episode (resolved and failing again, both told) a needs-a-person is news at once."""
    store, notifier = setup(tmp_path)
    t0 = time.time()
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    (incident,) = store.incidents()
    store.record_no_fix(incident.id, "no idea what to do", retry_at=None)
    assert titles(notifier, t0) == ["[hal] web1: a.service has failed",
                                    "[hal] web1: needs a person: a.service has failed"]
    store.record_no_fix(incident.id, "still no idea", retry_at=None)
    assert titles(notifier, t0 + 60) == []
    store.record_check("web1", [], {"failed_unit"})
    (resolved,) = titles(notifier, t0 + 120)
    assert resolved.startswith("[hal] web1: resolved: a.service has failed")
    assert titles(notifier, t0 + WINDOW + 60) == []  # the held one: over, dropped
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    store.record_no_fix(incident.id, "no idea again", retry_at=None)
    assert titles(notifier, t0 + WINDOW + 120) == [
        "[hal] web1: a.service has failed", "[hal] web1: needs a person: a.service has failed"]


def test_a_held_needs_a_person_still_true_goes_out_at_the_windows_end(tmp_path: Path) -> None:
    """Escalated again, held, and still failing when the window ends: told once, counted."""
    store, notifier = setup(tmp_path)
    t0 = time.time()
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    (incident,) = store.incidents()
    store.record_no_fix(incident.id, "no idea what to do", retry_at=None)
    assert len(titles(notifier, t0)) == 2
    store.record_no_fix(incident.id, "still no idea", retry_at=None)
    assert titles(notifier, t0 + 60) == []
    assert titles(notifier, t0 + WINDOW + 60) == [
        "[hal] web1: needs a person: a.service has failed (1 more time in 30 min)"]


def test_a_held_fix_failed_is_dropped_once_a_later_fix_worked(tmp_path: Path) -> None:
    """A fix failed, the next failed too (held), the third fixed it: "fix failed (1 more
    time)" at the window's end, after "fixed", paged about a failure that was mended."""
    store, notifier = setup(tmp_path)
    t0 = time.time() - 300  # told before the fixes started: the last says it
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    (incident,) = store.incidents()
    assert titles(notifier, t0) == ["[hal] web1: a.service has failed"]

    def fix(end: str) -> None:
        actions, action = _running_restart(store, incident.id)
        actions.move(action, end, "executor",
                     "unit still failed" if end == "failed" else "unit active")
        if end == "failed":  # as the executor escalates it
            store.transition(incident.id, "open", "executor", "escalated: it did not fix it")

    fix("failed")
    assert titles(notifier, t0 + 60) == ["[hal] web1: fix failed: a.service has failed"]
    fix("failed")
    assert titles(notifier, t0 + 120) == []  # a repeat: held
    fix("succeeded")
    store.record_check("web1", [], {"failed_unit"})
    assert titles(notifier, t0 + 180) == ["[hal] web1: fixed: a.service has failed"]
    assert titles(notifier, t0 + WINDOW + 120) == []


def _failed_and_kept_open(store: IncidentStore, incident_id: int,
                          resolved_between: bool = False) -> None:
    """A reset-failed that made the finding go and left the unit dead, as the executor ends
    it: the fix failed, and its incident kept open for a person (``resolved_between``: a
    check resolved it between the two)."""
    actions, action = _running_restart(store, incident_id)
    detail = "finding gone, but a.service is not active (inactive/dead)"
    actions.move(action, "failed", "executor", detail, {"verification": detail})
    if resolved_between:
        store.record_check("web1", [], {"failed_unit"})
    store.keep_open(incident_id, "executor", f"escalated: action {action} did not fix it: "
                    f"{detail}")


def test_a_fix_that_hid_the_finding_and_left_the_unit_dead_pages_once(tmp_path: Path) -> None:
    """"fix failed" and "needs a person", both high, at the same moment, for one failure:
    the first says a person must look already."""
    store, notifier = setup(tmp_path)
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    (incident,) = store.incidents()
    assert titles(notifier) == ["[hal] web1: a.service has failed"]
    _failed_and_kept_open(store, incident.id)
    assert titles(notifier) == ["[hal] web1: fix failed: a.service has failed"]
    body = notifier.outbox.messages()[-1]["body"]
    assert "A person must look." in body
    assert store.get(incident.id).state in ("open", "reopened") and store.is_kept(incident.id)
    assert [e.kind for e in store.get(incident.id).events].count("escalated") == 1
    assert titles(notifier, time.time() + WINDOW + 1) == []


def test_a_fix_failed_whose_incident_a_check_resolved_meanwhile_still_pages_once(
        tmp_path: Path) -> None:
    """A check between the fix's failure and its incident kept open resolves it (the finding
    is gone): the person is paged once that a person must look, not told it resolved."""
    store, notifier = setup(tmp_path)
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    (incident,) = store.incidents()
    assert titles(notifier) == ["[hal] web1: a.service has failed"]
    _failed_and_kept_open(store, incident.id, resolved_between=True)
    assert titles(notifier) == ["[hal] web1: needs a person: a.service has failed"]
    assert store.get(incident.id).state == "reopened"
    assert titles(notifier, time.time() + WINDOW + 1) == []


def test_a_digest_names_the_worst_news_first(tmp_path: Path) -> None:
    """Five hosts back and one newly down in one digest: its title listed the hosts in
    alphabetical order and called all six "incidents", the one outage behind the "...";
    web10 came before web9."""
    store, notifier = setup(tmp_path, digest_threshold=3)
    down, up = {"host_unreachable"}, {"host_unreachable"}
    t0 = time.time()
    for n in (9, 10, 11, 12, 13):
        store.record_check(f"web{n}", [unreachable(f"web{n}")], down)
    assert len(titles(notifier, t0 + DIGEST_GATHER_SECONDS + 1)) == 1  # one digest
    for n in (9, 10, 11, 12, 13):
        store.record_check(f"web{n}", [], up)
    store.record_check("web45", [unreachable("web45")], down)
    made = notifier.dispatcher.dispatch(t0 + DIGEST_GATHER_SECONDS + 122)  # the next window
    (digest,) = [m for m in notifier.outbox.messages() if m["id"] in made]
    assert digest["title"] == ("[hal] 1 unreachable, 5 reachable again on 6 hosts: web45, "
                               "web9, web10, web11, web12, ...")
    assert digest["body"].splitlines()[0].startswith("web45: unreachable")
    assert digest["priority"] == 8


def test_a_page_that_clears_is_told_once_at_low_priority_and_a_gotify_receives_it(
        tmp_path: Path, gotify: GotifyServer) -> None:
    # paged at 8 that /srv/data was full, then nothing when it cleared: the on-call person
    # had to look by hand
    settings = make_settings(tmp_path, gotify)
    store = IncidentStore(Database(settings.db_path))
    notifier = Notifier(settings, store.db)
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    # and recorded as delivered: a send its stop cuts off (Gotify took it, its answer not
    # read yet: a busy machine) is sent again by the next start, by design
    run_notifier(notifier, lambda: gotify.accepted
                 and not notifier.outbox.deliveries(("pending",)))
    store.record_check("web1", [], {"failed_unit"})
    (page, clear) = run_notifier(notifier, lambda: len(gotify.accepted) == 2 and gotify.accepted)
    assert page["priority"] == 8
    assert clear["title"] == ("[hal] web1: resolved: a.service has failed (was critical, "
                              "paged 0 min ago)")
    assert clear["priority"] == 2
    assert clear["message"] == ("Incident #1 (critical): a.service has failed\n"
                                "It cleared: a fresh collection no longer shows the finding.\n"
                                "Next: hal-issues show 1")
    # once: it fails and clears again within the repeat window, never paged this time
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    store.record_check("web1", [], {"failed_unit"})
    assert titles(notifier) == []
    assert titles(notifier, time.time() + WINDOW + 1) == []


def test_no_all_clear_where_no_page_went_out_or_a_fix_said_it(tmp_path: Path) -> None:
    store, notifier = setup(tmp_path)
    # a warning below min_severity, and a critical gone before it was told: nobody paged
    store.record_check("web1", [failed("web1", "w.service", Severity.WARNING),
                                failed("web1", "gone.service")], {"failed_unit"})
    store.record_check("web1", [], {"failed_unit"})
    assert titles(notifier) == []
    # paged, then fixed: the fix's verification check resolves it, its message says so
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    assert titles(notifier) == ["[hal] web1: a.service has failed"]
    (incident,) = [i for i in store.incidents() if i.state == "open"]
    actions, action = _running_restart(store, incident.id)
    store.record_check("web1", [], {"failed_unit"})
    actions.move(action, "succeeded", "executor", "a.service active")
    assert titles(notifier) == ["[hal] web1: fixed: a.service has failed"]
    # where no fix said it, the all-clear does
    store.record_check("web2", [failed("web2", "b.service")], {"failed_unit"})
    assert titles(notifier) == ["[hal] web2: b.service has failed"]
    store.record_check("web2", [], {"failed_unit"})
    assert titles(notifier) == [
        "[hal] web2: resolved: b.service has failed (was critical, paged 0 min ago)"]


def _restart(store: IncidentStore, incident: Incident, state: str) -> tuple[ActionStore, int]:
    """A restart of the incident's unit: ``pending`` a person's yes, or ``approved`` by the
    policy."""
    actions = ActionStore(store.db)
    return actions, actions.create(
        incident_id=incident.id, proposal_id=None, host=incident.host, kind="restart_unit",
        params={"unit": incident.subject}, subject=incident.subject, risk="medium", plan={},
        outcome="approval" if state == "pending" else "execute", reason="suggest",
        state=state).id


def _cut_off_while_verified(actions: ActionStore, action: int) -> None:
    """The restart ran, and a stop cut its verification short, as the executor ends it."""
    actions.claim(action, "executor")
    actions.left_to_checks(action, "executor", "its commands ran; the verification was cut "
                           "off (cancelled)", {"commands": [], "verification": "cut off"})


def test_a_fix_whose_verification_a_stop_cut_short_and_which_held_is_told_fixed(
        tmp_path: Path) -> None:
    """The person who approved a fix of a warning hears how it ended though the daemon
    stopped while it was verified: the next check, finding it gone, says it was fixed, as
    the verification would have (and, where a person was paged, instead of the all-clear)."""
    store, notifier = setup(tmp_path)
    store.record_check("web1", [failed("web1", "a.service", Severity.WARNING)],
                       {"failed_unit"})
    (warning,) = store.incidents()
    actions, action = _restart(store, warning, "pending")
    assert titles(notifier) == ["[hal] web1: approval needed: restart_unit a.service"]
    actions.move(action, "approved", "alice", "yes")
    _cut_off_while_verified(actions, action)
    assert titles(notifier) == []  # no verdict yet: the checks' to give
    store.record_check("web1", [], {"failed_unit"})
    made = set(notifier.dispatcher.dispatch())
    ((title, body, priority),) = [(m["title"], m["body"], m["priority"])
                                  for m in notifier.outbox.messages() if m["id"] in made]
    assert title == "[hal] web1: fixed: a.service has failed" and priority == 2
    assert "the next check no longer finds what it was to fix: it held" in body
    # paged about a critical one: one message says it is over, the fix's
    store.record_check("web2", [failed("web2", "b.service")], {"failed_unit"})
    assert titles(notifier) == ["[hal] web2: b.service has failed"]
    (critical,) = [i for i in store.incidents() if i.host == "web2"]
    _cut_off_while_verified(*_restart(store, critical, "approved"))
    store.record_check("web2", [], {"failed_unit"})
    assert titles(notifier) == ["[hal] web2: fixed: b.service has failed"]
    assert titles(notifier, time.time() + WINDOW + 1) == []


def test_many_cleared_at_once_are_one_digest(tmp_path: Path) -> None:
    store, notifier = setup(tmp_path, digest_threshold=3)
    down = [failed("web1", f"s{i}.service") for i in range(3)]
    store.record_check("web1", down[:1], {"failed_unit"})
    assert len(titles(notifier)) == 1
    store.record_check("web1", down, {"failed_unit"})
    assert len(titles(notifier)) == 2  # the two after it: within the threshold
    store.record_check("web1", [], {"failed_unit"})  # the network is back: all three clear
    assert titles(notifier, time.time() + DIGEST_GATHER_SECONDS) == [
        "[hal] 3 resolved on 1 host: web1"]
    digest = notifier.outbox.messages()[-1]
    assert "web1: resolved: s0.service has failed (was critical, paged 0 min ago) " \
        "(hal-issues show 1)" in digest["body"].splitlines()
    assert digest["priority"] == 2


def test_after_each_all_clear_the_next_change_is_news_at_once(tmp_path: Path) -> None:
    """Told "no longer needed" (the all-clear of a fix a person was asked to approve), or
    "resolved", the person believes it fine: its return, and the all-clear after a second
    page, were held for the window as repeats."""
    store, notifier = setup(tmp_path)
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    assert titles(notifier) == ["[hal] web1: a.service has failed"]
    (incident,) = store.incidents()
    ActionStore(store.db).create(
        incident_id=incident.id, proposal_id=None, host="web1", kind="restart_unit",
        params={"unit": "a.service"}, subject="a.service", risk="low", plan={},
        outcome="approval", reason="suggest", state="pending")
    assert titles(notifier) == ["[hal] web1: approval needed: restart_unit a.service"]
    store.record_check("web1", [], {"failed_unit"})  # fixed by hand
    assert titles(notifier) == ["[hal] web1: no longer needed: restart_unit a.service"]
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    assert titles(notifier) == ["[hal] web1: a.service has failed"]


def test_a_second_all_clear_after_a_second_page_is_news_at_once(tmp_path: Path) -> None:
    store, notifier = setup(tmp_path)
    cleared = "[hal] web1: resolved: a.service has failed (was critical, paged 0 min ago)"
    for _ in range(2):
        store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
        assert titles(notifier) == ["[hal] web1: a.service has failed"]
        store.record_check("web1", [], {"failed_unit"})
        assert titles(notifier) == [cleared]


def test_an_all_clear_never_told_is_told_at_the_next_clearing(tmp_path: Path) -> None:
    """Paged, cleared, failing again before the all-clear went out (dropped: no longer
    true), its return held as a repeat: when it cleared again nothing was said, the page the
    person's last word, because the return was never paged."""
    store, notifier = setup(tmp_path)
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    assert titles(notifier) == ["[hal] web1: a.service has failed"]
    store.record_check("web1", [], {"failed_unit"})
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    assert titles(notifier) == []  # the all-clear no longer true, the return a repeat
    store.record_check("web1", [], {"failed_unit"})
    assert titles(notifier) == [
        "[hal] web1: resolved: a.service has failed (was critical, paged 0 min ago)"]


@pytest.mark.parametrize(("severity", "priority"), [(Severity.WARNING, 5),
                                                    (Severity.CRITICAL, 8)])
def test_a_warning_left_to_a_person_is_no_page(tmp_path: Path, severity: Severity,
                                               priority: int) -> None:
    """A warning below notify.min_severity, its opening unsaid, was paged at 8 once its
    investigations were spent (a busy machine's load, twice an hour)."""
    store, notifier = setup(tmp_path)
    store.record_check("web1", [failed("web1", "a.service", severity)], {"failed_unit"})
    (incident,) = store.incidents()
    store.record_no_fix(incident.id, "no idea", retry_at=None)
    made = set(notifier.dispatcher.dispatch())
    (escalated,) = [m for m in notifier.outbox.messages()
                    if m["id"] in made and m["kind"] == "escalated"]
    assert escalated["priority"] == priority


def test_a_mass_outage_a_sweep_finds_over_seconds_is_one_whole_digest(tmp_path: Path) -> None:
    """A fleet's checks land over seconds; the digest went out at the pass that crossed the
    threshold: "63 unreachable" of 100 hosts down, the other 37 held for the next window (two
    minutes) or, back by then, never told at all."""
    store, notifier = setup(tmp_path)
    down = {"host_unreachable"}
    t0 = time.time()
    for n in range(63):
        store.record_check(f"web{n}", [unreachable(f"web{n}")], down)
    assert titles(notifier, t0 + 1) == []  # the rest of the sweep is still to come
    for n in range(63, 100):
        store.record_check(f"web{n}", [unreachable(f"web{n}")], down)
    assert titles(notifier, t0 + 2) == []
    (digest,) = titles(notifier, t0 + DIGEST_GATHER_SECONDS + 1)
    assert digest.startswith("[hal] 100 unreachable on 100 hosts"), digest


def test_a_third_fleet_wide_outage_within_the_window_is_one_whole_digest(
        tmp_path: Path) -> None:
    """Each host of a fleet that went down three times in the repeat window flaps, as
    one host does; but a digest costs the person one message however many it lists. The
    third outage's digest told of 54 hosts of 200 down, the others held for the window's
    end (or never told, back by then): the person believed most of the fleet up."""
    store, notifier = setup(tmp_path)
    hosts = [f"web{n}" for n in range(20)]
    reach = {"host_unreachable"}
    t0 = time.time()
    said = []
    for outage, start in enumerate((t0, t0 + 400, t0 + 800)):
        for host in hosts:
            store.record_check(host, [unreachable(host)], reach)
        said += titles(notifier, start + DIGEST_GATHER_SECONDS + 1)
        if outage < 2:
            for host in hosts:
                store.record_check(host, [], reach)
            said += titles(notifier, start + 200 + DIGEST_GATHER_SECONDS + 1)
    down, back = "[hal] 20 unreachable on 20 hosts", "[hal] 20 reachable again on 20 hosts"
    assert [title.split(":")[0] for title in said] == [down, back, down, back, down], said
    # a digest tells a repeat once a repeat window: back and down again, it is held
    for state in ([], [unreachable]):
        for host in hosts:
            store.record_check(host, [s(host) for s in state], reach)
    assert titles(notifier, t0 + 1000 + DIGEST_GATHER_SECONDS + 1) == []
    # still down when the window ends: one digest, not a message a host
    (summed,) = titles(notifier, t0 + 800 + DIGEST_GATHER_SECONDS + 1 + WINDOW + 1)
    assert summed.startswith(down), summed


def test_things_that_flap_together_make_no_digest_at_every_digest_window(
        tmp_path: Path) -> None:
    """Six units failing and recovering every 30 s: a digest may tell their repeats once
    a repeat window, not every two minutes for as long as they flap."""
    store, notifier = setup(tmp_path)
    units = [f"u{n}.service" for n in range(6)]
    t0 = time.time()
    said: list[tuple[float, str]] = []
    for step in range(80):  # 40 minutes
        failing = step % 2 == 0
        store.record_check("web1", [failed("web1", u) for u in units] if failing else [],
                           {"failed_unit"})
        for later in (0, DIGEST_GATHER_SECONDS + 1):
            now = t0 + step * 30 + later
            said += [(now - t0, t) for t in titles(notifier, now)]
    digests = [at for at, title in said if "incidents on" in title]
    # the first window's digests (before they flap), one for their repeats, then held to
    # the window's end
    assert len([at for at in digests if 6 * 60 <= at < WINDOW]) <= 1, said


def test_repeats_due_together_wait_for_the_digest_window(tmp_path: Path) -> None:
    """Repeats whose windows end together go in a digest, and a digest goes out at most
    once a digest window: a storm's digest, then theirs 22 s later, were two."""
    store, notifier = setup(tmp_path, digest_threshold=3, min_severity="warning")
    units = [f"u{n}.service" for n in range(10)]

    def check(names: list[str]) -> None:
        store.record_check("web1", [failed("web1", u, Severity.WARNING) for u in names],
                           {"failed_unit"})

    t0 = time.time()
    check(units[:6])
    digests = titles(notifier, t0) + titles(notifier, t0 + DIGEST_GATHER_SECONDS + 1)
    check(units[3:6])  # u0-u2 clear, then fail again: repeats, held
    check(units[:6])
    titles(notifier, t0 + 300)
    check(units[:3])  # u3-u5 likewise
    check(units[:6])
    titles(notifier, t0 + 500)
    check(units)  # u6-u9 fail: a storm
    digests += titles(notifier, t0 + 1790)
    # u0-u5's repeat windows end with the storm's digest just sent: theirs waits
    assert titles(notifier, t0 + 1812) == []
    later = titles(notifier, t0 + 1790 + 121)
    assert len(digests) == 2 and len(later) == 1, (digests, later)


def test_a_warning_that_cleared_and_came_back_critical_is_told_at_once(tmp_path: Path) -> None:
    """Told as a warning, cleared (no all-clear: nobody was paged), back as critical within
    the window: the reopening said it was a repeat of the warning, held to the window's end."""
    store, notifier = setup(tmp_path, min_severity="warning")
    now = time.time()
    store.record_check("web1", [failed("web1", "a.service", Severity.WARNING)], {"failed_unit"})
    assert titles(notifier, now) == ["[hal] web1: a.service has failed"]
    store.record_check("web1", [], {"failed_unit"})
    assert titles(notifier, now + 60) == []
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    assert titles(notifier, now + 120) == ["[hal] web1: a.service has failed"]
    assert [m["priority"] for m in notifier.outbox.messages()] == [5, 8]


def test_a_fix_that_fails_again_after_the_person_was_told_it_cleared_is_news(
        tmp_path: Path) -> None:
    """A fix failed (told); the incident cleared (told) and came back (told), and the next
    fix failed too: the person, told it was the assistant's again, hears it at once."""
    store, notifier = setup(tmp_path)
    now = time.time()
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    (incident,) = store.incidents()
    actions, action = _running_restart(store, incident.id)
    actions.move(action, "failed", "executor", "a.service still failed after the restart")
    assert titles(notifier, now) == ["[hal] web1: a.service has failed",
                                     "[hal] web1: fix failed: a.service has failed"]
    store.record_check("web1", [], {"failed_unit"})
    assert len(titles(notifier, now + 300)) == 1  # the all-clear
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    actions, action = _running_restart(store, incident.id)
    actions.move(action, "failed", "executor", "a.service still failed after the restart")
    assert titles(notifier, now + 600) == ["[hal] web1: a.service has failed",
                                           "[hal] web1: fix failed: a.service has failed"]
