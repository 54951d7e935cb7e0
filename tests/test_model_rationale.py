"""The person deciding on a fix reads why the model proposed it: `approve show`, the JSON of
`approve show` and `approve list`, and the approval's notification carry the model's rationale,
labelled as its words, masked and without control characters (the model's words are as
untrusted as a host's, and may quote one)."""

from __future__ import annotations

import json
from pathlib import Path

from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.notify import Notifier
from ai_sysadmin.store import ActionStore, Database, IncidentStore
from tests.notify.conftest import make_settings, unsent

SECRET = "hunter2"
RATIONALE = (f"nginx exited after a failed bind on :80 (journal: password={SECRET} here)\n"
             "decided by root at 2024-01-01 00:00: yes\x1b[8m")


def _proposed(store: IncidentStore, rationale: str = RATIONALE) -> int:
    """An action waiting for a person, decided from a proposal of the model's."""
    finding = Finding("web1", "failed_unit", "nginx.service", Severity.CRITICAL,
                      "nginx.service has failed", ("nginx.service: active=failed",))
    incident = store.record_check("web1", [finding], {"failed_unit"}).opened[0]
    store.transition(incident, "investigating", "agent", "investigation started")
    proposal = store.add_proposal(incident, "web1", "restart_unit",
                                  json.dumps({"unit": "nginx.service"}), rationale)
    return ActionStore(store.db).create(
        incident_id=incident, proposal_id=proposal, host="web1", kind="restart_unit",
        params={"unit": "nginx.service"}, subject="nginx.service", risk="low", plan={},
        outcome="approval", reason="suggest: every action waits for a person",
        state="pending", ttl_seconds=3600).id


def test_approve_show_and_its_json_say_why_the_model_proposed_it(
        cli, config_file, store) -> None:
    config_file('ai_name = "hal"\n')
    action = str(_proposed(store))
    code, out, err = cli("approve", "show", action)
    assert code == 0, err
    assert SECRET not in out and "\x1b" not in out
    lines = out.splitlines()
    [said] = [i for i, line in enumerate(lines)
              if line.startswith("the model's reason (its words): ")]
    assert lines[said] == ("the model's reason (its words): nginx exited after a failed bind "
                           "on :80 (journal: password=[redacted] here)")
    # its second line cannot pass for a line of the command's own
    assert lines[said + 1].startswith("  | decided by root")

    shown = json.loads(cli("approve", "show", action, "--json")[1])
    assert shown["rationale"].startswith("nginx exited after a failed bind on :80 (journal: "
                                         "password=[redacted] here)")
    [listed] = json.loads(cli("approve", "list", "--json")[1])
    assert listed["id"] == int(action) and listed["rationale"] == shown["rationale"]


def test_an_action_no_proposal_made_has_no_rationale(cli, config_file, store) -> None:
    config_file('ai_name = "hal"\n')
    action = ActionStore(store.db).create(
        incident_id=None, proposal_id=None, host="web1", kind="vacuum_journal",
        params={"max_size": "500M"}, subject="journal", risk="medium", plan={},
        outcome="approval", reason="waits for a person", state="pending", ttl_seconds=3600)
    code, out, _ = cli("approve", "show", str(action.id))
    assert code == 0 and "the model's reason" not in out
    assert json.loads(cli("approve", "show", str(action.id), "--json")[1])["rationale"] is None


def test_the_approval_message_says_why_the_model_proposed_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    store = IncidentStore(Database(settings.db_path))
    _proposed(store, RATIONALE + " " + "y" * 5000)
    notifier = Notifier(settings, store.db, channels=unsent(tmp_path))
    notifier.dispatcher.dispatch()
    [approval] = [m for m in notifier.outbox.messages() if "approval needed" in m["title"]]
    body = approval["body"]
    assert SECRET not in body and "\x1b" not in body
    lines = body.splitlines()
    [said] = [line for line in lines if line.startswith("The model's reason (its words): ")]
    # one line (its own lines cannot forge one of the message's), bounded
    assert said.startswith("The model's reason (its words): nginx exited after a failed bind "
                           "on :80 (journal: password=[redacted] here) decided by root")
    assert len(said) < 600 and said.endswith("…")
    assert lines[-1] == "Next: hal-approve approve 1"
