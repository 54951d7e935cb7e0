"""The evidence mode end to end: a real fault (systemd in the lab), the daemon choosing the mode
from the model's name, the durable queue and its worker, the scripted model answering one
schema-held request over both wire protocols, the policy deciding on the answer's actions."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ai_sysadmin.agent.context import ToolContext
from ai_sysadmin.agent.evidence import answer_schema
from ai_sysadmin.agent.tools import REGISTRY
from ai_sysadmin.config import Settings
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.store import ActionStore
from tests.lab.daemon_runner import QUIET_HOST_WIDE, run_daemon
from tests.support.polling import poll_until
from tests.support.scripted_model import ScriptedModel, response_schema, say

pytestmark = pytest.mark.lab
UNIT = """
[Service]
ExecStart=/bin/sh -c 'test -r /etc/demo.conf || { echo "<3>demo: cannot read /etc/demo.conf" >&2; exit 1; }; exec sleep infinity'
"""  # noqa: E501


def _answer(*actions: dict[str, str]) -> str:
    return json.dumps({"diagnosis": "demo.service cannot read /etc/demo.conf",
                       "cause": "the file is missing: the journal says 'cannot read "
                                "/etc/demo.conf'", "actions": list(actions)})


def _settings(tmp_path: Path, url: str, backend: str, autonomy: str = "suggest") -> Settings:
    # the mode follows the model's name: tools for every other model
    return Settings(
        ai_name="hal", state_dir=tmp_path, check_interval=3600, autonomy_level=autonomy,
        llm={"backend": backend, "url": url, "model": "scripted", "timeout": 10},
        agent={"retry_backoff_seconds": 0.5, "mode": "tools", "modes": {"scripted": "evidence"}},
        thresholds=QUIET_HOST_WIDE,
    )


def _failed_demo(sb: Sandbox) -> None:
    apply(sb, "install_unit", {"name": "demo.service", "text": UNIT})
    apply(sb, "start_unit", {"name": "demo.service"})


def _diagnosed_and_decided(store) -> bool:
    return any(i.diagnosis for i in store.incidents()) and bool(ActionStore(store.db).find())


@pytest.mark.parametrize("backend", ["ollama", "openai"])
def test_evidence_mode_diagnoses_a_real_fault_and_proposes_through_the_policy(
        tmp_path, backend) -> None:
    restart = {"kind": "restart_unit", "target": "demo.service",
               "rationale": "restart once /etc/demo.conf is back"}
    with Sandbox() as sb, ScriptedModel([say(_answer(restart))]) as model:
        _failed_demo(sb)
        store = run_daemon(_settings(tmp_path, model.url, backend), sb,
                           _diagnosed_and_decided, 40)[0]
        (incident,) = store.incidents()
        still_failed = sb.exec(["systemctl", "is-failed", "demo.service"]).stdout.strip()
        (request,) = model.requests
    # one request: the schema, no tools, the real unit's journal delimited as host data
    assert response_schema(request) == answer_schema()
    assert not request.get("tools")
    system, user = (m["content"] for m in request["messages"])
    assert "demo: cannot read /etc/demo.conf" in user
    assert "untrusted data from the host" in user and "demo.conf" not in system
    assert "tool unit_status status=" in user and "ActiveState=failed" in user
    # the diagnosis on the incident reads like the tool mode's
    assert incident.diagnosis == (
        "DIAGNOSIS: demo.service cannot read /etc/demo.conf\n"
        "CAUSE: the file is missing: the journal says 'cannot read /etc/demo.conf'\n"
        'PROPOSALS: restart_unit {"unit": "demo.service"}')
    # the proposal was decided by the policy like any other: at 'suggest' it waits for a person
    assert (incident.rule, incident.state) == ("failed_unit", "awaiting_approval")
    (action,) = ActionStore(store.db).find()
    assert (action.kind, action.params, action.state, action.started_at) == (
        "restart_unit", {"unit": "demo.service"}, "pending", None)
    assert still_failed == "failed"


def _refused_etc(store) -> str:
    """What the audit log says of the clean_directory of /etc refused as it was proposed."""
    return " ".join(e["detail"] for e in store.audit_log(50)
                    if e["action"] == "proposal.invalid"
                    and e["detail"].startswith("clean_directory"))


def test_the_policy_judges_the_answers_actions_not_the_model(tmp_path) -> None:
    """Even at auto-full: deleting under /etc is refused outright (as it is proposed: no
    action is recorded, the attempt is in the audit log), and restarting the protected
    journald waits for a person, whatever the model's rationale."""
    clean_etc = {"kind": "clean_directory", "target": "/etc",
                 "rationale": "old files fill the disk"}
    journald = {"kind": "restart_unit", "target": "systemd-journald.service",
                "rationale": "the journal holds the errors"}
    with Sandbox() as sb, ScriptedModel([say(_answer(clean_etc, journald))]) as model:
        _failed_demo(sb)
        journald_before = sb.exec(["systemctl", "show", "-P", "InvocationID",
                                   "systemd-journald.service"]).stdout.strip()
        store = run_daemon(_settings(tmp_path, model.url, "openai", "auto-full"), sb,
                           lambda s: bool(ActionStore(s.db).find()) and _refused_etc(s), 40)[0]
        journald_after = sb.exec(["systemctl", "show", "-P", "InvocationID",
                                  "systemd-journald.service"]).stdout.strip()
        (incident,) = store.incidents()
    (waiting,) = ActionStore(store.db).find()
    assert "outside the configured cache/tmp paths" in _refused_etc(store)
    assert (waiting.kind, waiting.state, waiting.started_at) == ("restart_unit", "pending", None)
    assert "needs a person" in waiting.reason and "protected" in waiting.reason
    assert journald_before and journald_before == journald_after  # not restarted
    assert incident.state != "resolved"


def test_a_garbage_answer_fails_the_investigation_which_is_retried(tmp_path) -> None:
    script = [say("demo is broken, restart it I guess"), say(_answer())]
    with Sandbox() as sb, ScriptedModel(script) as model:
        _failed_demo(sb)
        store = run_daemon(_settings(tmp_path, model.url, "ollama"), sb,
                           lambda s: any(i.diagnosis for i in s.incidents()), 40)[0]
        (incident,) = store.incidents()
        asked = len(model.requests)
    events = store.get(incident.id).events
    (failed,) = [e.detail for e in events if e.kind == "investigation_failed"]
    assert asked == 2
    assert failed == ("LLMBadResponse: the model's answer in evidence mode is not JSON: "
                      "'demo is broken, restart it I guess'")
    # the failure never resolved it; the retry's answer is the diagnosis, without a fix
    assert "resolved" not in [e.to_state for e in events if e.kind == "state"]
    assert incident.diagnosis.startswith("DIAGNOSIS: demo.service cannot read")
    assert incident.diagnosis.endswith("PROPOSALS: none")
    assert incident.state == "open"
    assert incident.investigation_error == "the investigation ended without a proposal"
    assert incident.investigation_attempts == 2  # the failed one and the one without a fix


#: a web service that logs its requests at info (as journald keeps a service's stdout), then
#: dies of a cause it writes to stderr, also at info
BUSY = """
[Service]
ExecStart=/bin/sh -c 'for i in $(seq 60); do echo "GET /api/v1/items?page=$i 200 12ms client=10.0.0.$i ua=Mozilla/5.0 (X11; Linux x86_64)"; done; echo "FATAL: cannot bind 0.0.0.0:8080: Address already in use" >&2; exit 1'
"""  # noqa: E501


def test_the_evidence_holds_the_end_of_the_units_journal_where_it_died(tmp_path) -> None:
    """The unit's journal, newest entries last, was cut to its share from the front: the
    model read an hour of access log and never the line it died of, nor systemd's."""
    with Sandbox() as sb, ScriptedModel([say(_answer())]) as model:
        apply(sb, "install_unit", {"name": "demo.service", "text": BUSY})
        apply(sb, "start_unit", {"name": "demo.service"})
        apply(sb, "wait_unit", {"name": "demo.service", "value": "failed"})

        def logged() -> bool:  # journald takes a dead service's stream a moment later
            return "FATAL" in sb.exec(["journalctl", "-u", "demo.service", "-q"]).stdout
        poll_until(logged, 30, "the service's last words in its journal")
        store = run_daemon(_settings(tmp_path, model.url, "ollama"), sb,
                           lambda s: any(i.diagnosis for i in s.incidents()), 40)[0]
        (request,) = model.requests
    user = request["messages"][1]["content"]
    journal = user[user.index("tool journal"):user.index("tool snapshot")]
    assert "FATAL: cannot bind 0.0.0.0:8080" in journal
    assert "[truncated: showed its first" in journal
    assert store.incidents()[0].diagnosis


def test_the_journal_tool_shows_the_newest_entries_of_its_window_oldest_first(
        tmp_path) -> None:
    """journalctl --since with --lines counts from the window's start: the tool showed the
    day's first entries, where it says it shows the newest."""
    with Sandbox() as sb:
        apply(sb, "install_unit", {"name": "demo.service", "text": BUSY})
        apply(sb, "start_unit", {"name": "demo.service"})

        def logged() -> bool:
            return "Failed with result" in sb.exec(
                ["journalctl", "-u", "demo.service", "-q"]).stdout
        poll_until(logged, 30, "the service's end in its journal")
        ctx = ToolContext(Settings(ai_name="hal", state_dir=tmp_path),
                          {"sdtest": SandboxTransport(sb)}, "sdtest")
        result = asyncio.run(REGISTRY.call("journal", {"unit": "demo.service", "lines": 4,
                                                       "since": "-24h"}, ctx))
        # the unit's whole journal, in journald's order (systemd's own lines may come before
        # the service's last ones, which its stream brought a moment later)
        whole = sb.exec(["journalctl", "-u", "demo.service", "-q", "--output=short-iso"],
                        check=True).stdout.splitlines()

    def said(lines: list[str]) -> list[str]:
        return [line.split(": ", 1)[1] for line in lines if ": " in line]

    shown = said(result.output.splitlines())
    assert shown == said(whole)[-4:], result.output
    assert "FATAL: cannot bind 0.0.0.0:8080: Address already in use" in shown
    assert not [line for line in shown if "page=1 " in line or "page=2 " in line]
