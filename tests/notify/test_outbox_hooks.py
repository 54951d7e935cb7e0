"""The store writes an outbox event in the same transaction as each change a person must hear
about, and only for those: nothing lost when the change commits, nothing invented when it
rolls back, whichever process made the change."""

from __future__ import annotations

import pytest

from ai_sysadmin.store import ActionStore, IncidentStore
from ai_sysadmin.store.outbox import Outbox
from tests.notify.conftest import failed, unreachable


def events(store: IncidentStore) -> list[tuple[str, str]]:
    with store.db.transaction() as conn:
        return [(e.kind, e.host) for e in Outbox.events(conn, ("new",))]


def pending(store: IncidentStore, incident_id: int | None) -> int:
    return ActionStore(store.db).create(
        incident_id=incident_id, proposal_id=None, host="web1", kind="restart_unit",
        params={"unit": "nginx.service"}, subject="nginx.service", risk="low", plan={},
        outcome="approval", reason="suggest: a person approves", state="pending").id


def test_each_change_that_matters_writes_one_event(store: IncidentStore) -> None:
    store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
    (incident,) = store.incidents()
    actions = ActionStore(store.db)
    first = pending(store, incident.id)
    actions.move(first, "approved", "alice", "ok")
    actions.claim(first, "executor")
    actions.move(first, "succeeded", "executor", "finding gone for 5 s")
    second = pending(store, incident.id)
    actions.move(second, "approved", "executor", "auto")
    actions.move(second, "escalated", "executor", "ran 3 times in 60 min")
    third = pending(store, incident.id)
    actions.move(third, "approved", "alice", "ok")
    actions.claim(third, "executor")
    with store.db.transaction() as conn:  # the process that claimed it died
        conn.execute("UPDATE actions SET owner='gone 1 1' WHERE id=?", (third,))
    actions.interrupted()
    store.record_no_fix(incident.id, "no idea", retry_at=None)
    assert events(store) == [
        ("opened", "web1"), ("approval", "web1"), ("fixed", "web1"), ("approval", "web1"),
        ("escalated", "web1"), ("approval", "web1"), ("failed", "web1"),
        ("escalated", "web1")]


def test_quiet_changes_write_nothing(store: IncidentStore) -> None:
    store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
    store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})  # again
    (incident,) = store.incidents()
    store.transition(incident.id, "investigating", "agent")
    store.record_investigation(incident.id, "it is the config", None)
    store.record_no_fix(incident.id, "nothing to do yet", retry_at=1e12)  # retried later
    store.record_check("web1", [], {"failed_unit"})  # fixed by itself: no action, no news
    action = pending(store, None)
    ActionStore(store.db).move(action, "rejected", "bob", "no")
    assert events(store) == [("opened", "web1"), ("approval", "web1")]


def test_reopened_and_worse_quote_the_new_episode(store: IncidentStore) -> None:
    from ai_sysadmin.monitor.findings import Severity

    store.record_check("web1", [failed("web1", "a.service", Severity.WARNING)], {"failed_unit"})
    store.record_check("web1", [failed("web1", "a.service")], {"failed_unit"})
    store.record_check("web1", [], {"failed_unit"})
    again = failed("web1", "a.service")
    again = type(again)(again.host, again.rule, again.subject, again.severity, again.summary,
                        ("a.service: load=loaded active=failed sub=failed", "new cause"))
    store.record_check("web1", [again], {"failed_unit"})
    with store.db.transaction() as conn:
        got = [(e.kind, e.severity, e.facts["evidence"]) for e in Outbox.events(conn, ("new",))]
    assert [g[:2] for g in got] == [("opened", "warning"), ("worse", "critical"),
                                    ("opened", "critical")]
    assert got[-1][2][1] == "new cause"


def test_an_unreachable_host_and_its_return(store: IncidentStore) -> None:
    store.record_check("web1", [unreachable("web1")], {"host_unreachable"}, reachable=False)
    store.record_check("web1", [], {"host_unreachable"})
    assert events(store) == [("unreachable", "web1"), ("back", "web1")]


def test_a_change_that_rolls_back_leaves_no_event(store: IncidentStore) -> None:
    with pytest.raises(RuntimeError), store.db.transaction():
        store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
        raise RuntimeError("crash before the commit")
    assert store.incidents(None) == [] and events(store) == []
    store.record_check("web1", [failed("web1", "nginx.service")], {"failed_unit"})
    assert events(store) == [("opened", "web1")]
