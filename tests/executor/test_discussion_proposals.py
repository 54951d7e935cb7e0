"""``approve discuss`` never changes what runs: what the model proposes in a discussion is
advisory, and the model is told so."""

from __future__ import annotations

import asyncio
import os

import pytest

from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import ActionStore, IncidentStore
from tests.conftest import BIN, run_program
from tests.support.scripted_model import ScriptedModel, call, say, tool_results


@pytest.mark.parametrize("investigating", [False, True])
def test_a_fix_proposed_in_a_discussion_is_never_decided_or_run(
        settings: Settings, store: IncidentStore, investigating: bool) -> None:
    """``investigating``: the incident came back and is being investigated again while a
    person discusses the action that waits for them."""
    host = short_hostname()
    finding = Finding(host, "failed_unit", "app.service", Severity.CRITICAL, "app.service failed")
    incident_id = store.record_check(host, [finding], {"failed_unit"}).opened[0]
    pending = asyncio.run(Executor(settings, store, {host: LocalTransport(host)}).propose(
        host, "restart_unit", {"unit": "app.service"}, incident_id=incident_id))
    assert pending.state == "pending"
    if investigating:
        store.transition(incident_id, "open", "agent", "it came back")
        store.transition(incident_id, "investigating", "agent", "investigation started")

    with ScriptedModel([call("propose_action", kind="vacuum_journal",
                             parameters={"max_size": "200M"}, rationale="frees space"),
                        say("I would rather shrink the journal.")]) as model:
        done = run_program(str(BIN), "approve", "discuss", str(pending.id), "-m",
                           "is there anything else we could try?", timeout=120, env={
                               "AI_SYSADMIN_LLM__BACKEND": "openai",
                               "AI_SYSADMIN_LLM__URL": model.url,
                               "AI_SYSADMIN_LLM__MODEL": "scripted",
                               "AI_SYSADMIN_LLM__TIMEOUT": "10",
                               "AI_SYSADMIN_QUEUE__WAIT_TIMEOUT": "30",
                               "AI_SYSADMIN_STATE_DIR": os.fspath(settings.state_dir)})
        told = tool_results(model.requests[1])
    assert done.returncode == 0, done.stderr
    assert "shrink the journal" in done.stdout
    assert any("advisory only" in t and "never decided or run" in t for t in told), told

    # the daemon starts again, at a level that would run a low-risk fix on its own
    daemon = settings.model_copy(update={"autonomy_level": "auto-safe"})
    asyncio.run(Executor(daemon, store, {host: LocalTransport(host)}).decide_undecided())

    actions = ActionStore(store.db).find()
    assert [(a.id, a.kind, a.state) for a in actions] == [(pending.id, "restart_unit",
                                                           "pending")]
    assert store.undecided_proposals() == []
    assert [p["kind"] for p in store.proposals(incident_id)] == ["vacuum_journal"]
