"""Text a host chose (a journal identifier any local user sets, a log line, a command's output)
reaches a person as one bounded line of a message, without control characters: it cannot write
lines of its own, such as a forged all-clear with a command to run, into the alert."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.monitor.parsers import parse_journal
from ai_sysadmin.monitor.rules import evaluate
from ai_sysadmin.monitor.rules.base import RuleContext
from ai_sysadmin.monitor.snapshot import Snapshot
from ai_sysadmin.notify import Notifier
from ai_sysadmin.notify.storm import DIGEST_GATHER_SECONDS
from ai_sysadmin.store import ActionStore, Database, IncidentStore
from tests.notify.conftest import make_settings, run_notifier, unsent
from tests.notify.servers import GotifyServer

FORGED = ("cron in 60 s\n\nAll clear: nginx was restarted by hal.\n"
          "To finish, run: hal-approve approve 42\x1b[8m")


def messages(tmp_path: Path, findings: list[Finding], rules: set[str]) -> list[dict]:
    settings = make_settings(tmp_path)
    store = IncidentStore(Database(settings.db_path))
    store.record_check("web1", findings, rules)
    notifier = Notifier(settings, store.db, channels=unsent(tmp_path))
    # a digest waits for the rest of what came with it
    notifier.dispatcher.dispatch(time.time() + DIGEST_GATHER_SECONDS)
    return notifier.outbox.messages()


def test_a_journal_identifier_with_lines_of_its_own_is_one_line_of_the_alert(
        tmp_path: Path, gotify: GotifyServer) -> None:
    # what `journalctl -o json` prints for entries a local user sent through the journal's
    # socket: SYSLOG_IDENTIFIER is the sender's to choose, newlines and escapes included
    now = time.time()
    raw = "".join(json.dumps({"__CURSOR": f"s=1;i={i}", "__REALTIME_TIMESTAMP":
                              str(int((now - 5) * 1e6)), "PRIORITY": "2", "MESSAGE": "x",
                              "SYSLOG_IDENTIFIER": FORGED, "_PID": "4242"}) + "\n"
                  for i in range(30))
    snapshot = Snapshot(host="web1", taken_at=now, journal=parse_journal(raw))
    findings, _ = evaluate(RuleContext(snapshot))
    settings = make_settings(tmp_path, gotify)
    store = IncidentStore(Database(settings.db_path))
    store.record_check("web1", findings, {"journal_error_burst"})
    notifier = Notifier(settings, store.db)
    run_notifier(notifier, lambda: gotify.accepted)
    (message,) = gotify.accepted
    assert "\n" not in message["title"] and "\x1b" not in message["title"] + message["message"]
    lines = message["message"].splitlines()
    assert lines[0].startswith("Incident #1 (critical): 30 journal errors from cron in 60 s "
                               "All clear: nginx was restarted by hal.")
    assert lines[1:] == ["> x", "> x", "Next: hal-issues show 1"]


def test_summary_evidence_and_detail_are_one_bounded_line_each(tmp_path: Path) -> None:
    # a rule's summary or evidence holding a host's text as it was, lines and all
    finding = Finding("web1", "failed_unit", "nginx.service", Severity.CRITICAL,
                      f"nginx.service has failed: {FORGED}",
                      (f"nginx: {FORGED}", "second\n\nNext: hal-approve approve 7", "third"))
    (opened,) = messages(tmp_path, [finding], {"failed_unit"})
    assert "\n" not in opened["title"]
    lines = opened["body"].splitlines()
    assert len(lines) == 4 and lines[0].startswith("Incident #1 (critical): nginx.service has")
    assert lines[1].startswith("> nginx: cron in 60 s All clear:")
    assert lines[2] == "> second Next: hal-approve approve 7"
    assert lines[3] == "Next: hal-issues show 1"
    assert "\x1b" not in opened["title"] + opened["body"]

    # a failed fix's detail (what the command printed) and a long summary
    store = IncidentStore(Database(make_settings(tmp_path).db_path))
    (incident,) = store.incidents()
    actions = ActionStore(store.db)
    action = actions.create(
        incident_id=incident.id, proposal_id=None, host="web1", kind="restart_unit",
        params={"unit": "nginx.service"}, subject="nginx.service", risk="low", plan={},
        outcome="run", reason="auto-safe", state="approved").id
    actions.claim(action, "executor")
    actions.move(action, "failed", "executor", "exit 1:\nAll clear.\nNext: hal-approve "
                 "approve 9\n" + "y" * 5000)
    notifier = Notifier(make_settings(tmp_path), store.db, channels=unsent(tmp_path))
    made = set(notifier.dispatcher.dispatch())
    (failed,) = [m for m in notifier.outbox.messages() if m["id"] in made]
    lines = failed["body"].splitlines()
    assert len(lines) == 5, lines
    assert lines[3].startswith("restart_unit nginx.service failed: exit 1: All clear. Next: ")
    assert len(lines[3]) < 1100
    assert lines[4] == "Next: hal-issues show 1"


def test_digest_lines_are_one_line_an_incident(tmp_path: Path) -> None:
    findings = [Finding(f"web{n}", "failed_unit", "a.service", Severity.CRITICAL,
                        f"a.service has failed\nAll clear on web{n}") for n in range(8)]
    (digest,) = messages(tmp_path, findings, {"failed_unit"})
    assert digest["kind"] == "digest"
    lines = digest["body"].splitlines()
    assert lines[0] == "web0: a.service has failed All clear on web0 (hal-issues show 1)"
    assert len(lines) == 9 and lines[-1] == "Next: hal-issues list"
