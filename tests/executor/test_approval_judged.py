"""A person's yes is to what they judged, and to an incident as it is: not to commands another
terminal's ``approve`` replanned it to while they looked, and not refused for a finding a fix
only hid (an incident kept open). Whatever ends an approval unrun leaves its incident free."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.executor import Executor
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import IncidentStore
from tests.executor.test_approval_lifecycle import HOST, ScriptedHost, history, incident, unit_show
from tests.support.polling import until


class ListingHost(ScriptedHost):
    """A :class:`ScriptedHost` whose ``systemctl list-units`` (what a check reads to judge a
    failed unit) prints the file ``units``, and, while :meth:`hold` is in force, first says
    it was asked (the file ``listing``) and waits for :meth:`release`: the test then acts
    while a check is under way."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.units, self.listing, self.go = tmp / "units", tmp / "listing", tmp / "go"
        self.list_units(("app.service", "failed"))
        self.release()

    def list_units(self, *states: tuple[str, str]) -> None:
        self.units.write_text(json.dumps([
            {"unit": name, "load": "loaded", "active": active, "sub": active,
             "description": name} for name, active in states]))

    def hold(self) -> None:
        self.go.unlink(missing_ok=True)
        self.listing.unlink(missing_ok=True)

    def release(self) -> None:
        self.go.write_text("")

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        if len(argv) > 1 and argv[0].endswith("systemctl") and argv[1] == "list-units":
            # a deadline, not a pause: the test releases it as soon as it has acted
            return ("sh", "-c", 'touch "$0"; n=0; until [ -e "$1" ]; do n=$((n+1)); '
                    '[ "$n" -gt 1200 ] && exit 3; sleep 0.05; done; cat "$2"',
                    str(self.listing), str(self.go), str(self.units))
        return super().wrap(argv)


@pytest.fixture
def host(tmp_path: Path) -> ListingHost:
    return ListingHost(tmp_path)


def test_a_yes_to_commands_another_approval_replanned_meanwhile_runs_nothing_and_says_so(
        quick: Settings, store: IncidentStore, host: ListingHost) -> None:
    incident_id = incident(store)
    alice = Executor(quick, store, {HOST: host})
    bob = Executor(quick, store, {HOST: host})  # another terminal's `approve`
    action = asyncio.run(alice.propose(HOST, "restart_unit", {"unit": "app.service"},
                                       incident_id=incident_id))
    assert action.plan["commands"] == [["systemctl", "restart", "--", "app.service"]]

    async def both() -> None:
        host.hold()
        # alice judged the restart of app.service and is checking its finding is still there
        alices = asyncio.create_task(alice.approve(action.id, "alice"))
        await until(host.listing.exists)
        # meanwhile app.service became another name of app2.service: bob's yes replans it
        host.show.write_text(unit_show("app2.service", "app.service"))
        bobs = await bob.approve(action.id, "bob")
        assert bobs.state == "pending" and "what it would run changed" in bobs.reason
        host.release()
        said = await alices
        assert said.state == "pending", said  # nobody approved a restart of app2.service
        assert said.plan["commands"] == [["systemctl", "restart", "--", "app2.service"]]

    asyncio.run(both())
    assert host.commands() == []
    assert alice.actions.get(action.id).decided_by is None
    # what `approve` prints for an action that waits again: the history's last line
    said = store.last_said(f"action:{action.id}") or ""
    assert "changed while alice was approving it" in said and "approve again" in said
    assert store.get(incident_id).state == "awaiting_approval"
    # a yes given to the new commands, having seen them, runs them
    done = asyncio.run(alice.approve(action.id, "alice"))
    assert done.state in ("succeeded", "failed") and done.decided_by == "alice"
    assert host.commands() == ["systemctl restart -- app2.service"]


def test_a_kept_open_incidents_fix_runs_when_approved_though_its_finding_is_gone(
        quick: Settings, store: IncidentStore, host: ListingHost) -> None:
    incident_id = incident(store)
    executor = Executor(quick, store, {HOST: host})
    # a first fix reset the unit's failed state and left it dead: the executor kept the
    # incident open for a person (its verification's keep_open), and the finding is gone
    assert store.keep_open(incident_id, "executor", "escalated: action 1 did not fix it: "
                           "finding gone, but app.service is not active")
    host.list_units(("app.service", "inactive"))
    assert store.record_check(HOST, [], {"failed_unit"}).resolved == []
    action = asyncio.run(executor.propose(HOST, "restart_unit", {"unit": "app.service"},
                                          incident_id=incident_id))
    assert action.state == "pending"
    assert store.get(incident_id).state == "awaiting_approval"
    done = asyncio.run(executor.approve(action.id, "alice"))
    assert done.started_at is not None and done.decided_by == "alice", done
    assert host.commands() == ["systemctl restart -- app.service"]
    # the unit stays dead here: failed, and the incident is the person's, not stuck waiting
    assert done.state == "failed"
    assert store.get(incident_id).state == "open"
    assert store.needing_person([incident_id]) == {incident_id}


def test_a_fix_found_not_needed_on_approval_frees_its_incident(
        quick: Settings, store: IncidentStore, host: ListingHost) -> None:
    incident_id = incident(store)
    executor = Executor(quick, store, {HOST: host})
    action = asyncio.run(executor.propose(HOST, "restart_unit", {"unit": "app.service"},
                                          incident_id=incident_id))
    assert store.get(incident_id).state == "awaiting_approval"

    async def approve_while_the_daemon_looks() -> None:
        host.hold()
        approving = asyncio.create_task(executor.approve(action.id, "alice"))
        await until(host.listing.exists)
        # the daemon's check, begun after the approval's, still saw the unit failed; it came
        # up before the approval's check read it: that older look resolves nothing
        failed = Finding(HOST, "failed_unit", "app.service", Severity.CRITICAL,
                         "app.service failed")
        store.record_check(HOST, [failed], {"failed_unit"})
        host.list_units(("app.service", "active"))
        host.release()
        done = await approving
        assert done.state == "not_needed", done

    asyncio.run(approve_while_the_daemon_looks())
    assert host.commands() == []
    assert executor.actions.find(("pending",)) == []
    # nothing waits for a person's approval any more: the incident does not say it does
    assert store.get(incident_id).state == "open"
    assert ("action.not_needed", "the finding is gone: no longer needed, not run") in \
        history(store, action.id)
