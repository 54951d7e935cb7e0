"""A real small model through the real path: SmolLM2-135M-Instruct served by llama.cpp, asked
by the daemon's investigator through the durable queue, its embedded worker and the OpenAI
backend, with the real tool registry and the incident store.

A 135M model proposes nonsense more often than not. The point is that whatever it says, every
completion reaches the agent as a chat answer (no transport, HTTP or parsing failure), the
investigation ends on the model's own words (its diagnosis, or the agent's typed refusal of an
empty answer), the incident is never resolved by it, proposals are only recorded, and nothing
that changes the host runs. A direct test reads llama.cpp's answers through the OpenAI backend
alone, so a wire-format break is named as such.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from ai_sysadmin.agent.loop import LLMCall
from ai_sysadmin.config import LLMSettings, Settings
from ai_sysadmin.hosts.transport import CommandResult, LocalTransport
from ai_sysadmin.llm.backends import make_backend
from ai_sysadmin.llm.client import QueuedLLM
from ai_sysadmin.llm.queue import open_queue
from ai_sysadmin.llm.types import BackendStatus, ChatResult, Message, ToolSpec
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.daemon import build_daemon
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.redact import redact
from ai_sysadmin.safety.actions import ACTION_KINDS
from ai_sysadmin.safety.command_policy import check_readonly
from ai_sysadmin.store import Database, IncidentStore

from .conftest import N_CTX, LlamaServer

pytestmark = [pytest.mark.slow, pytest.mark.alone, pytest.mark.timeout(600)]

HOST = "testhost"
#: the whole investigation, every LLM round trip included
INVESTIGATION_DEADLINE_SECONDS = 420.0
#: states of a proposal or action in which nothing ran and nothing is cleared to run
NOT_EXECUTED = frozenset({"proposed", "pending", "refused", "recorded", "escalated",
                          "not_needed", "expired", "rejected"})


class RecordingTransport(LocalTransport):
    """This machine, remembering every command and file read asked of it."""

    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.commands: list[tuple[str, ...]] = []
        self.reads: list[str] = []

    async def run(self, argv: Sequence[str], timeout: float = 20.0) -> CommandResult:
        self.commands.append(tuple(argv))
        return await super().run(argv, timeout)

    async def read_file(self, path: str, timeout: float = 20.0) -> str | None:
        self.reads.append(path)
        return await super().read_file(path, timeout)


def _settings(state: Path, server: LlamaServer) -> Settings:
    return Settings(
        ai_name="hal", state_dir=state, check_interval=3600, journal_follow=False,
        autonomy_level="suggest",
        llm={"backend": "openai", "url": server.url, "model": server.model, "timeout": 180,
             "temperature": 0, "context_size": N_CTX},
        queue={"wait_timeout": 400},
        # a short tool budget so a 135M model on two cores finishes; no retry within the test;
        # as much conversation as N_CTX holds beside the tools' descriptions
        agent={"max_tool_calls": 3, "max_context_chars": 5400, "max_tool_output_chars": 1500,
               "retry_backoff_seconds": 3600},
    )


def _rows(store: IncidentStore, table: str) -> list[dict[str, Any]]:
    """Every row of ``table``; none when this schema has no such table."""
    conn = store.db.conn
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                    (table,)).fetchone() is None:
        return []
    return [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY id")]


def _describe(reply: dict | None) -> str:
    if not reply:
        return "(no answer)"
    message = reply.get("message", {})
    calls = [f"{c.get('name')}({c.get('raw_arguments', '')[:120]})"
             for c in message.get("tool_calls", [])]
    text = " ".join((message.get("content") or "").split())[:200]
    tokens = f"{reply.get('prompt_tokens')}+{reply.get('completion_tokens')} tokens"
    return f"{tokens}: calls={calls} text={text!r}"


def test_smollm2_investigates_an_incident_without_crash_or_execution(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    settings = _settings(tmp_path / "state", llama_server)
    store = IncidentStore(Database(settings.db_path))
    host = RecordingTransport(HOST)
    # what the monitor itself runs on this host: the snapshot tool may run the same
    asyncio.run(Collector(host, settings).collect())
    monitoring = set(host.commands)
    host.commands.clear()

    finding = Finding(HOST, "failed_unit", "demo.service", Severity.CRITICAL,
                      "demo.service has failed",
                      ("demo.service: active=failed result=exit-code",
                       "demo: cannot read /etc/demo.conf: No such file or directory"))
    (incident_id,) = store.record_check(HOST, [finding], {"failed_unit"}).opened
    audit_before = len(store.audit_log(1000))
    served_before = llama_server.chat_completions_served()

    llms: list[QueuedLLM] = []

    async def go() -> float:
        daemon = build_daemon(Runtime(settings, store, [host]))
        assert daemon.investigator is not None and daemon.worker is not None
        make = daemon.investigator.llm_for

        def llm_for(incident: int) -> LLMCall:
            llm = make(incident)
            assert isinstance(llm, QueuedLLM)
            llms.append(llm)
            return llm

        daemon.investigator.llm_for = llm_for
        stop = asyncio.Event()
        worker = asyncio.create_task(daemon.worker(stop), name="llm-worker")
        started = time.monotonic()
        try:
            assert daemon.investigator.schedule(incident_id)
            # an exception escaping the investigation is raised here and fails the test
            await asyncio.wait_for(daemon.investigator.running[incident_id],
                                   INVESTIGATION_DEADLINE_SECONDS)
            return time.monotonic() - started
        finally:
            stop.set()
            await daemon.investigator.close()
            await asyncio.wait_for(worker, 30)
            assert worker.exception() is None

    elapsed = asyncio.run(go())

    incident = store.get(incident_id)
    served = llama_server.chat_completions_served() - served_before
    queue = open_queue(settings)
    try:
        requests = [queue.get(rid) for llm in llms for rid in llm.request_ids]
    finally:
        queue.close()
    proposals = _rows(store, "proposals")
    actions = _rows(store, "actions")
    audit = store.audit_log(1000)[audit_before:]

    print(f"\nSmolLM2 investigation: {elapsed:.1f} s, {len(requests)} queued LLM request(s), "
          f"{served} chat completion(s) served by llama.cpp ({llama_server.model})")
    for number, request in enumerate(requests, 1):
        print(f"  request {number}: {request.state} after {request.attempts} attempt(s): "
              f"{_describe(request.result) if request.result else request.error}")
    print(f"  commands run on the host: {host.commands}")
    print(f"  files read on the host: {host.reads}")
    print(f"  proposals: {[(p['kind'], p['parameters'], p['state']) for p in proposals]}")
    print(f"  actions: {[(a['kind'], a['state'], a['reason']) for a in actions]}")
    print(f"  diagnosis: {incident.diagnosis!r}")
    print(f"  investigation error: {incident.investigation_error!r}")
    print(f"  audit: {[(a['action'], a['subject']) for a in audit]}")

    # the real path was taken: the model was asked through the queue and answered over HTTP
    assert requests, "the investigation never asked the model"
    assert served >= len(requests)
    # every completion came back as a chat answer: no transport error, no HTTP error, no body
    # the backend could not read
    unanswered = [(r.id, r.state, r.error) for r in requests if r.state != "done"]
    assert not unanswered, unanswered
    # it ended on the model's own words, and on nothing else
    last = requests[-1].result["message"]
    wrote = (last.get("content") or "").strip()
    if incident.diagnosis is None:
        # the one typed model failure possible here: the agent refuses an empty answer
        assert (incident.investigation_error or "").startswith("LLMBadResponse: "), (
            incident.investigation_error)
        assert not wrote and not last.get("tool_calls"), last
    else:
        assert incident.diagnosis.strip()
        if wrote:  # its last words are the diagnosis (masked as every diagnosis is)
            assert redact(wrote) in incident.diagnosis, (wrote, incident.diagnosis)
        else:  # it was still calling tools when the budget ran out
            assert last.get("tool_calls") and incident.diagnosis.startswith("(incomplete"), (
                last, incident.diagnosis)
        # an answer without a proposal says so on the incident, which is retried later
        assert (incident.investigation_error is None) == bool(proposals), (
            incident.investigation_error, proposals)
    # the incident stays live: an investigation never marks it healthy
    assert incident.state == "open"
    assert incident.resolved_at is None
    assert "resolved" not in [e.to_state for e in incident.events]
    # proposals are rows, nothing more: known kinds, for this incident; one decided has its
    # action, judged below (the proposal's row says only that it was decided)
    for proposal in proposals:
        assert proposal["state"] in ("proposed", "decided", "abandoned"), proposal
        assert proposal["incident_id"] == incident_id and proposal["host"] == HOST
        assert proposal["kind"] in ACTION_KINDS
    # where the policy turned them into actions, none was approved or started
    for action in actions:
        assert action["state"] in NOT_EXECUTED and action["started_at"] is None, action
    # the audit log holds only the incident's own moves, recorded proposals and decisions that
    # run nothing
    for entry in audit:
        what = entry["action"]
        assert (what.startswith("incident.") or what == "proposal.recorded"
                or what.removeprefix("action.") in NOT_EXECUTED), entry
    assert sum(e["action"] == "proposal.recorded" for e in audit) == len(proposals)
    # nothing that changes the host ran: every command was one the monitor itself runs or one
    # the read-only policy allows
    for argv in host.commands:
        assert argv in monitoring or check_readonly(argv).allowed, argv


def test_openai_backend_reads_llama_cpp(llama_server: LlamaServer) -> None:
    """One completion with a tool offered and the model check of `llm status`, straight
    through the backend: the id llama.cpp reports is the file path; the file's stem names it."""
    settings = LLMSettings(backend="openai", url=llama_server.url,
                           model=PurePosixPath(llama_server.model).stem, timeout=120,
                           temperature=0)
    journal = ToolSpec("read_journal", "Read the last lines of a unit's journal.",
                       {"type": "object", "properties": {"unit": {"type": "string"}},
                        "required": ["unit"]})

    async def go() -> tuple[BackendStatus, ChatResult]:
        backend = make_backend(settings)
        try:
            return await backend.status(), await backend.chat(
                [Message("system", "You are a Linux administrator. Be brief."),
                 Message("user", "nginx.service failed. What do you check first?")],
                [journal], max_tokens=48)
        finally:
            await backend.aclose()

    found, result = asyncio.run(go())
    print(f"\nstatus: {found}\nanswer: {result}")
    assert (found.reachable, found.model_present) == (True, True), found
    assert llama_server.model in found.models
    reply = result.message
    assert reply.role == "assistant"
    assert reply.content.strip() or reply.tool_calls, result
    for asked in reply.tool_calls:  # the server's grammar holds calls to the offered tools
        assert asked.id and asked.name == "read_journal", asked
        assert asked.arguments is not None, asked
    assert result.completion_tokens and result.completion_tokens >= 1
    assert result.prompt_tokens and result.prompt_tokens >= 1
