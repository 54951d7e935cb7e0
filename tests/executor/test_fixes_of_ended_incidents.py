"""A fix waits for a person only while its incident is live. An incident resolved or closed
while it was investigated, or by the fix before it, asks nobody to approve a fix of it, and
nobody is paged about it; one a person ends takes back the approvals it asked for."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import StoreError
from ai_sysadmin.executor import Executor
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import ActionStore, IncidentStore
from tests.executor.test_approval_lifecycle import (
    HOST,
    ScriptedHost,
    incident,
    restart_waiting,
)

FAILED = Finding(HOST, "failed_unit", "app.service", Severity.CRITICAL, "app.service failed")


@pytest.fixture
def host(tmp_path: Path) -> ScriptedHost:
    return ScriptedHost(tmp_path)


def told(store: IncidentStore) -> list[tuple[str, int | None, int | None]]:
    return [(row["kind"], row["incident_id"], row["action_id"]) for row in
            store.db.conn.execute("SELECT * FROM notify_events ORDER BY id")]


def resolved_while_investigated(store: IncidentStore) -> tuple[int, int]:
    """An incident whose unit came back while the model investigated it, and the restart
    the model proposed meanwhile."""
    incident_id = incident(store)
    store.transition(incident_id, "investigating", "agent", "investigation started")
    proposal = store.add_proposal(incident_id, HOST, "restart_unit",
                                  json.dumps({"unit": "app.service"}), "restart it")
    assert store.record_check(HOST, [], {"failed_unit"}).resolved == [incident_id]
    store.record_investigation(incident_id, "app crashed; restart it", None)
    return incident_id, proposal


def approved_by_alice(settings: Settings, store: IncidentStore, host: ScriptedHost
                      ) -> tuple[int, int, ActionStore]:
    """An incident about app.service, and the restart proposed for it, approved by alice."""
    _, incident_id, action = restart_waiting(settings, store, host)
    actions = ActionStore(store.db)
    actions.move(action.id, "approved", "alice", "go", expect="pending")
    return incident_id, action.id, actions


def test_a_fix_proposed_for_an_incident_resolved_meanwhile_asks_nobody(
        settings: Settings, store: IncidentStore, host: ScriptedHost) -> None:
    incident_id, proposal = resolved_while_investigated(store)
    executor = Executor(settings, store, {HOST: host})
    asyncio.run(executor.decide_and_act(incident_id, HOST, [
        {"id": proposal, "kind": "restart_unit", "parameters": {"unit": "app.service"}}]))
    [action] = executor.actions.find()
    assert action.state == "not_needed"
    assert action.reason == f"incident {incident_id} is resolved: no longer needed, not run"
    assert store.get(incident_id, history=0).state == "resolved"
    assert told(store) == [("opened", incident_id, None)]
    assert host.commands() == []


def test_a_fix_proposed_before_its_incident_resolved_is_not_decided_once_it_is_back(
        settings: Settings, store: IncidentStore, host: ScriptedHost) -> None:
    """The daemon died between recording the model's restart and deciding it; the unit came
    back (the incident resolved), then failed again (reopened) before the daemon restarted.
    The restarted daemon ran the restart proposed for the time before, beside the one the
    reopened incident's new investigation proposes."""
    incident_id, _ = resolved_while_investigated(store)
    assert store.record_check(HOST, [FAILED], {"failed_unit"}).reopened == [incident_id]
    executor = Executor(settings, store, {HOST: host})
    assert asyncio.run(executor.decide_undecided()) == {}
    assert executor.actions.find() == [] and host.commands() == []


def test_an_approval_cut_off_for_an_incident_resolved_since_is_not_asked_again(
        settings: Settings, store: IncidentStore, host: ScriptedHost) -> None:
    """Alice said yes and her `approve` was killed before the fix started; the unit came
    back and a check resolved the incident. Bob's `approve list` tidies her approval up: it
    goes to nobody (it went back to pending, and paged for approval a second time)."""
    incident_id, action_id, actions = approved_by_alice(settings, store, host)
    with store.db.transaction() as conn:  # alice's `approve` died right then
        conn.execute("UPDATE actions SET owner='gone 1 1' WHERE id=?", (action_id,))
    assert store.record_check(HOST, [], {"failed_unit"}).resolved == [incident_id]
    Executor(settings, store, {}).tidy()
    after = actions.get(action_id)
    assert after.state == "not_needed", after
    assert "resolved: no longer needed" in after.reason
    assert [kind for kind, _, _ in told(store)] == ["opened", "approval"]
    assert store.get(incident_id, history=0).state == "resolved"


def test_retries_spent_on_an_incident_resolved_meanwhile_page_nobody(
        store: IncidentStore) -> None:
    incident_id = incident(store)
    store.transition(incident_id, "investigating", "agent", "investigation started")
    store.record_check(HOST, [], {"failed_unit"})
    store.record_no_fix(incident_id, "nothing to do", None)  # the last allowed answer
    assert store.get(incident_id, history=0).state == "resolved"
    assert [kind for kind, _, _ in told(store)] == ["opened"]


@pytest.mark.parametrize("how", ["resolved", "closed"])
def test_an_incident_a_person_ends_takes_back_the_approval_it_asked_for(
        settings: Settings, store: IncidentStore, host: ScriptedHost, how: str) -> None:
    """As a check's resolution does: the person asked to approve the fix is told it was
    withdrawn (`issues resolve`, `issues close`)."""
    executor = Executor(settings, store, {HOST: host})
    incident_id = incident(store)
    action = asyncio.run(executor.propose(HOST, "restart_unit", {"unit": "app.service"},
                                          incident_id=incident_id))
    with store.db.transaction():  # as `issues resolve/close` does
        Executor(settings, store, {}).withdraw(f"incident {incident_id} {how} by bob",
                                               incident_id=incident_id, who="bob")
        store.transition(incident_id, how, "bob", f"{how} by the operator")
    assert told(store) == [("opened", incident_id, None), ("approval", incident_id, action.id),
                           ("withdrawn", incident_id, action.id)]


def test_a_fix_claimed_to_run_is_never_withdrawn_as_not_needed(
        settings: Settings, store: IncidentStore, host: ScriptedHost) -> None:
    """A fix that ran nothing goes back to no person where its incident ended; one claimed
    to run is its run's: a withdrawal (an incident a person ends) finds it too late."""
    incident_id, action_id, actions = approved_by_alice(settings, store, host)
    assert actions.claim(action_id, "alice") is not None
    with pytest.raises(StoreError):
        actions.move(action_id, "not_needed", "bob", f"incident {incident_id} resolved by bob")
    assert actions.get(action_id).state == "executing"
