"""``issues show`` and ``issues close/resolve`` as an operator meets them: every event reads as
what happened, and an incident a person ended takes its waiting fixes with it."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import ActionStore, IncidentStore


def _incident(store: IncidentStore, host: str = "web1") -> int:
    finding = Finding(host, "disk_space", "/var", Severity.CRITICAL, "/var is 97% full",
                      ("/var: 97 of 100 bytes used",))
    return store.record_check(host, [finding], {"disk_space"}).opened[0]


def test_events_that_change_no_state_show_by_their_kind_and_detail(cli, store) -> None:
    number = _incident(store)
    store.transition(number, "investigating", "agent", "investigation started")
    store.record_investigation(number, None, "LLMUnavailable: cannot connect to Ollama",
                               retry_at=0.0)
    code, out, _ = cli("issues", "show", str(number))
    history = out.split("history:\n")[1].splitlines()
    assert code == 0 and "None" not in out
    assert history[0].endswith("monitor: opened /var is 97% full")
    assert history[2].endswith(
        "agent: investigation failed: LLMUnavailable: cannot connect to Ollama")
    assert history[3].endswith("agent: investigating -> open investigation failed; the "
                               "incident stays open")


def test_a_list_with_nothing_live_says_how_to_see_the_rest(cli, store) -> None:
    number = _incident(store)
    assert cli("issues", "resolve", str(number))[0] == 0
    code, out, _ = cli("issues")
    assert code == 0 and "0 incident(s)" in out
    assert "none live; `--all` lists the resolved and closed ones too" in out
    code, out, _ = cli("issues", "--all")
    assert code == 0 and "1 incident(s)" in out and "none live" not in out


def test_a_host_never_checked_here_is_said_not_listed_as_well(cli, store) -> None:
    # `--host web01` for web1: "0 incident(s)" read as a host with nothing wrong
    number = _incident(store)
    code, _, err = cli("issues", "--host", "web01")
    assert code == 2 and "no host 'web01' was ever checked here" in err
    assert cli("issues", "resolve", str(number))[0] == 0
    code, out, _ = cli("issues", "--host", "web1")  # known, with nothing live: as before
    assert code == 0 and "0 incident(s)" in out
    code, out, _ = cli("issues", "--host", "web1", "--all", "--json")
    assert code == 0 and [i["id"] for i in json.loads(out)] == [number]


@pytest.mark.parametrize("verb", ["close", "resolve"])
def test_ending_an_incident_withdraws_its_waiting_fix(cli, settings: Settings, store,
                                                      verb: str) -> None:
    host = short_hostname()
    number = _incident(store, host)
    executor = Executor(settings, store, {host: LocalTransport(host)})
    fix = asyncio.run(executor.propose(host, "vacuum_journal", {"max_size": "500M"},
                                       incident_id=number))
    other = asyncio.run(executor.propose(host, "vacuum_journal", {"max_size": "600M"}))
    assert fix.state == "pending"

    code, out, _ = cli("issues", verb, str(number), "--reason", "not a problem")
    state = "closed" if verb == "close" else "resolved"
    held = ("; its finding is still present: it stays closed, no new incident opening for "
            "it, until a check finds it gone (a return after that opens a new incident; "
            f"`issues reopen {number}` watches it again now)" if verb == "close" else "")
    assert (code, out) == (0, f"incident {number} is now {state}; action(s) {fix.id} "
                              f"withdrawn: they will not run{held}\n")
    code, out, _ = cli("approve", "list", "--json")
    assert [a["id"] for a in json.loads(out)] == [other.id]  # another incident's stays
    assert ActionStore(store.db).get(fix.id).state == "not_needed"
    why = f"incident {number} {state} by operator: not a problem"
    assert store.last_said(f"action:{fix.id}") == why
    # a yes after that says why nothing will run
    code, _, err = cli("approve", "approve", str(fix.id))
    assert code == 1 and f"action {fix.id} is not_needed, not pending: {why}" in err


def test_a_person_asked_to_approve_a_fix_who_resolves_its_incident_is_told_once(
        cli, settings: Settings, store) -> None:
    # `issues resolve` told them "no longer needed: ..." and "resolved: ..." both; a check
    # that resolves it says the withdrawal alone
    from ai_sysadmin.notify import Notifier
    from tests.notify.conftest import unsent

    notifier = Notifier(settings, store.db, channels=unsent(settings.state_dir))

    def told() -> list[str]:
        made = set(notifier.dispatcher.dispatch())
        return [m["title"] for m in notifier.outbox.messages() if m["id"] in made]

    number = _incident(store)
    ActionStore(store.db).create(
        incident_id=number, proposal_id=None, host="web1", kind="vacuum_journal",
        params={"max_size": "500M"}, subject="journal", risk="low", plan={},
        outcome="approval", reason="suggest", state="pending")
    assert told() == ["[hal] web1: /var is 97% full",
                      "[hal] web1: approval needed: vacuum_journal journal"]
    assert cli("issues", "resolve", str(number), "--reason", "cleaned by hand")[0] == 0
    assert told() == ["[hal] web1: no longer needed: vacuum_journal journal"]


def test_an_incident_a_check_resolves_withdraws_the_fix_that_waited_for_a_person(
        cli, tmp_path, config_file, store) -> None:
    # the operator restarted the unit by hand: the incident resolved, and its fix stayed in
    # `approve list` for 24 h "waiting for approval"
    failed = tmp_path / "failed"
    failed.write_text("yes")
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(
        '#!/bin/sh\n'
        f'if [ "$1" = list-units ] && [ -s {failed} ]; then echo \'[{{"unit": "app.service", '
        '"load": "loaded", "active": "failed", "sub": "failed", "description": "app"}]\'; '
        'elif [ "$1" = show ]; then :; else echo "[]"; fi\n')
    systemctl.chmod(0o755)
    config_file(f'ai_name = "hal"\n[programs]\nsystemctl = "{systemctl}"\n')
    assert cli("check")[0] == 1
    (incident,) = [i for i in store.incidents() if i.subject == "app.service"]
    actions = ActionStore(store.db)
    waiting, running = (actions.create(
        incident_id=incident.id, proposal_id=None, host=incident.host, kind=kind,
        params={"unit": "app.service"}, subject="app.service", risk="low", plan={},
        outcome=outcome, reason="low-risk actions wait for a person at suggest", state=state,
        ttl_seconds=86400).id for kind, outcome, state in (
            ("restart_unit", "approval", "pending"),
            ("reset_failed_unit", "execute", "approved")))
    store.transition(incident.id, "awaiting_approval", "executor", "waits for approval")

    failed.write_text("")  # fixed by hand
    code, out, _ = cli("check", "--json")
    report = json.loads(out)
    code, out, _ = cli("approve", "list")
    assert code == 0 and "0 action(s) waiting for approval" in out
    assert (report["incidents_resolved"], report.get("actions_withdrawn")) == (
        [incident.id], [waiting])
    why = (f"incident {incident.id} resolved: no longer needed, withdrawn (a fresh "
           "collection no longer shows the finding)")
    code, out, _ = cli("approve", "show", str(waiting))
    assert code == 0 and "state not_needed" in out and f"why: {why}" in out
    assert store.last_said(f"action:{waiting}") == why
    # one the policy approved to run is its run's, at most once: the run judges it
    assert actions.get(running).state == "approved"
    # a yes that comes after says why nothing runs
    code, _, err = cli("approve", "approve", str(waiting))
    assert code == 1 and f"action {waiting} is not_needed, not pending: {why}" in err


def test_what_the_model_said_cannot_steer_the_terminal(cli, store) -> None:
    """A diagnosis is the model's text (which quotes hosts): a carriage return that would
    overwrite the line before it, a bell or an escape is not printed."""
    number = _incident(store)
    store.transition(number, "investigating", "agent", "investigation started")
    store.record_investigation(number, "DIAGNOSIS: fine\rall clear\x08\x07 \x1b[2J\x1b]0;t\x07"
                               "done", None)
    code, out, _ = cli("issues", "show", str(number))
    assert code == 0 and "DIAGNOSIS: fineall clear" in out
    assert not any(c in out for c in "\r\x08\x07\x1b")


def test_a_diagnosis_of_several_lines_stays_under_its_event(cli, store) -> None:
    """Its lines after the first are indented under it: none reads as an event, not even
    one the model wrote to look like a person's approval."""
    number = _incident(store)
    store.transition(number, "investigating", "agent", "investigation started")
    store.record_investigation(number, "DIAGNOSIS: /var is full.\nPROPOSALS: clean_directory\n"
                               "  2026-12-05 16:20:27 root: awaiting_approval -> resolved ok",
                               None)
    code, out, _ = cli("issues", "show", str(number))
    history = out.split("history:\n")[1].splitlines()
    assert code == 0
    at = next(i for i, line in enumerate(history) if "DIAGNOSIS: /var is full." in line)
    assert history[at + 1] == "      | PROPOSALS: clean_directory"
    assert history[at + 2] == "      |   2026-12-05 16:20:27 root: awaiting_approval -> resolved ok"
    events = [line for line in history if not line.startswith("      |")]
    assert not any("root:" in line for line in events), history


def test_show_says_why_the_model_proposed_each_fix_in_its_words_masked(cli, store) -> None:
    # the history said "proposed restart_unit {...}" and nothing of why; approve show did
    number = _incident(store)
    store.transition(number, "investigating", "agent", "investigation started")
    store.add_proposal(number, "web1", "restart_unit", json.dumps({"unit": "nginx.service"}),
                       "nginx died after its config changed; DB_PASSWORD=hunter2 in the log\n"
                       "root: approved")
    store.add_proposal(number, "web1", "vacuum_journal", json.dumps({"max_size": "500M"}),
                       "the journal holds 4 GB", advisory=True)
    code, out, _ = cli("issues", "show", str(number))
    assert code == 0, out
    proposals = out.split("proposals (the model's reasons in its words):\n")[1].splitlines()
    assert proposals[0] == '  restart_unit {"unit": "nginx.service"} · not decided yet'
    assert proposals[1] == ("      why: nginx died after its config changed; "
                            "DB_PASSWORD=[redacted] in the log")
    # the model's second line cannot pose as a line of the command's own
    assert proposals[2] == "      | root: approved"
    assert proposals[3].endswith(" · advisory: never decided")
    assert "hunter2" not in out
    code, out, _ = cli("issues", "show", str(number), "--json")
    shown = json.loads(out)["proposals"]
    assert code == 0 and [p["kind"] for p in shown] == ["restart_unit", "vacuum_journal"]
    assert "DB_PASSWORD=[redacted]" in shown[0]["rationale"] and "hunter2" not in out


def _decided(store: IncidentStore, number: int, unit: str, state: str) -> int:
    """A proposal of the investigation of ``number`` the policy made an action of, in
    ``state``: that action's id."""
    proposal = store.add_proposal(number, "web1", "restart_unit", json.dumps({"unit": unit}),
                                  f"{unit} failed")
    return ActionStore(store.db).create(
        incident_id=number, proposal_id=proposal, host="web1", kind="restart_unit",
        params={"unit": unit}, subject=unit, risk="low", plan={}, outcome="approval",
        reason="low-risk actions wait for a person at suggest", state=state,
        ttl_seconds=86400).id


def test_show_says_what_became_of_each_proposal_now(cli, store) -> None:
    # a rejected fix was listed "· pending", a failed one "· approved": the state it was
    # created in, under the proposal's id (an action's id only by chance)
    number = _incident(store)
    store.add_proposal(None, "web1", "vacuum_journal", "{}", "an earlier, other incident")
    store.transition(number, "investigating", "agent", "investigation started")
    rejected = _decided(store, number, "a.service", "pending")
    failed = _decided(store, number, "b.service", "approved")
    refused = _decided(store, number, "sshd.service", "refused")
    store.add_proposal(number, "web1", "restart_unit", json.dumps({"unit": "c.service"}),
                       "c.service failed")
    actions = ActionStore(store.db)
    actions.claim(failed, "executor")
    actions.move(failed, "failed", "executor", "the unit failed again", {"error": "exit 1"})
    assert cli("approve", "reject", str(rejected), "--reason", "not now")[0] == 0

    code, out, _ = cli("issues", "show", str(number))
    lines = [line for line in out.split("proposals (the model's reasons in its words):\n")[1]
             .splitlines() if not line.startswith("      ")]
    assert code == 0 and lines == [
        f'  restart_unit {{"unit": "a.service"}} · action {rejected}: rejected',
        f'  restart_unit {{"unit": "b.service"}} · action {failed}: failed',
        f'  restart_unit {{"unit": "sshd.service"}} · action {refused}: refused',
        '  restart_unit {"unit": "c.service"} · not decided yet']
    code, out, _ = cli("approve", "show", str(failed))
    assert code == 0 and "state failed" in out
    code, out, _ = cli("issues", "show", str(number), "--json")
    shown = json.loads(out)["proposals"]
    assert [(p["action_id"], p["state"]) for p in shown] == [
        (rejected, "rejected"), (failed, "failed"), (refused, "refused"), (None, "proposed")]
    assert shown[0]["id"] != rejected  # a proposal's id is no action's


def test_an_incident_left_to_a_person_is_listed_so_not_as_plain_open(cli, store) -> None:
    # an incident whose fix was turned down, or that was escalated, read "open" as one the
    # assistant had not looked at yet
    rejected = _incident(store, "web1")
    escalated = _incident(store, "web2")
    untouched = _incident(store, "web3")
    store.transition(rejected, "investigating", "agent", "investigation started")
    fix = _decided(store, rejected, "a.service", "pending")
    store.transition(rejected, "awaiting_approval", "executor", f"action {fix} waits")
    assert cli("approve", "reject", str(fix))[0] == 0
    store.hold_for_person(escalated, "3 investigations failed in a row", 0.0,
                          time.time() + 3600)

    code, out, _ = cli("issues", "list", "--json")
    assert code == 0 and {i["id"]: (i["state"], i["needs_person"]) for i in json.loads(out)} == {
        rejected: ("open", True), escalated: ("open", True), untouched: ("open", False)}
    code, out, _ = cli("issues", "list")
    rows = {int(line.split("│")[1]): line.split("│")[2].strip()
            for line in out.splitlines() if line.startswith("│")}
    assert rows == {rejected: "open (needs a person)", escalated: "open (needs a person)",
                    untouched: "open"}
    code, out, _ = cli("issues", "show", str(rejected))
    assert code == 0 and out.splitlines()[1].startswith("state open (needs a person) · ")
    # found again after it resolved: a new episode, the assistant's again
    store.record_check("web1", [], {"disk_space"})
    finding = Finding("web1", "disk_space", "/var", Severity.CRITICAL, "/var is 97% full")
    assert store.record_check("web1", [finding], {"disk_space"}).reopened == [rejected]
    code, out, _ = cli("issues", "show", str(rejected))
    assert code == 0 and out.splitlines()[1].startswith("state reopened · ")


def test_an_incident_closed_while_its_finding_is_present_stays_closed_until_it_clears(
        cli, store) -> None:
    # a failure the operator knows about: closed, it opened again as a new incident at the
    # next check, with a new investigation and a new approval page
    number = _incident(store)
    code, out, _ = cli("issues", "close", str(number), "--reason", "known, ignore")
    assert (code, out) == (0, f"incident {number} is now closed; its finding is still "
                              "present: it stays closed, no new incident opening for it, "
                              "until a check finds it gone (a return after that opens a new "
                              f"incident; `issues reopen {number}` watches it again now)\n")
    finding = Finding("web1", "disk_space", "/var", Severity.CRITICAL, "/var is 97% full")
    for _ in range(3):
        assert store.record_check("web1", [finding], {"disk_space"}).opened == []
    code, out, _ = cli("issues", "list")
    assert code == 0 and "0 incident(s)" in out
    code, out, _ = cli("issues", "list", "--all")
    rows = {int(line.split("│")[1]): line.split("│")[2].strip()
            for line in out.splitlines() if line.startswith("│")}
    assert rows == {number: "closed (held while present)"}
    code, out, _ = cli("issues", "show", str(number))
    assert out.splitlines()[1].startswith("state closed (held while present) · ")
    assert "held: closed while its finding is present" in out
    # it cleared: the hold ends, and its return is a new incident
    store.record_check("web1", [], {"disk_space"})
    (again,) = store.record_check("web1", [finding], {"disk_space"}).opened
    code, out, _ = cli("issues", "list", "--all", "--json")
    assert {i["id"]: i["state"] for i in json.loads(out)} == {number: "closed", again: "open"}
    code, out, _ = cli("issues", "show", str(number))
    assert out.splitlines()[1].startswith("state closed · ")
    assert "cleared: a fresh collection no longer shows the finding" in out


def test_an_incident_whose_fix_the_observe_level_only_recorded_is_a_persons(
        cli, settings: Settings, store) -> None:
    # at observe the assistant records what it would run and is done: listed plain "open",
    # the incident read as one it was still at, forever
    host = short_hostname()
    number = _incident(store, host)
    observing = settings.model_copy(update={"autonomy_level": "observe"})
    executor = Executor(observing, store, {host: LocalTransport(host)})
    fix = asyncio.run(executor.propose(host, "vacuum_journal", {"max_size": "500M"},
                                       incident_id=number))
    assert fix.state == "recorded"
    code, out, _ = cli("issues", "list")
    rows = {int(line.split("│")[1]): line.split("│")[2].strip()
            for line in out.splitlines() if line.startswith("│")}
    assert code == 0 and rows == {number: "open (needs a person)"}
    code, out, _ = cli("issues", "list", "--json")
    assert [(i["id"], i["needs_person"]) for i in json.loads(out)] == [(number, True)]


def test_a_close_made_by_mistake_is_undone_and_the_next_check_opens_the_finding_again(
        cli, store) -> None:
    """Closed while its finding was present, an incident held that finding unwatched for as
    long as it stayed (weeks of a full disk nobody was told of again): `issues reopen` lifts
    the hold, and the next check that finds it opens a new incident, told and investigated."""
    number = _incident(store)
    assert cli("issues", "close", str(number))[0] == 0
    finding = Finding("web1", "disk_space", "/var", Severity.CRITICAL, "/var is 97% full")
    assert store.record_check("web1", [finding], {"disk_space"}).opened == []
    code, out, _ = cli("issues", "reopen", str(number), "--reason", "closed the wrong one")
    assert (code, out) == (0, f"incident {number} stays closed; its finding is watched again: "
                              "the next check of web1 that finds it opens a new incident\n")
    (again,) = store.record_check("web1", [finding], {"disk_space"}).opened
    code, out, _ = cli("issues", "list", "--json")
    assert [(i["id"], i["state"]) for i in json.loads(out)] == [(again, "open")]
    code, out, _ = cli("issues", "show", str(number))
    assert out.splitlines()[1].startswith("state closed · ")
    assert "hold lifted: the next check that finds its finding opens a new incident for it " \
           "(closed the wrong one)" in out
    # nothing held any more: said, and nothing changes
    code, _, err = cli("issues", "reopen", str(number))
    assert code != 0 and f"incident {number} is closed, and holds no finding" in err
    code, _, err = cli("issues", "reopen", str(again))
    assert code != 0 and f"incident {again} is open, and holds no finding" in err
