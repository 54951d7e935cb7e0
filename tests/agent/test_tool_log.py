"""Every tool call lands in the decisions log with masked arguments, status, duration and an id
that sorts in time order; ``logs audit`` shows the audit table."""

from __future__ import annotations

import json

import pytest

from ai_sysadmin import logs
from ai_sysadmin.config import AgentSettings
from ai_sysadmin.redact import redact
from tests.agent.test_loop import run_agent
from tests.support.scripted_model import ScriptedModel, call, respond, say, tool_results


def test_tool_calls_are_logged_masked_with_status_and_duration(run_with_model, ctx,
                                                                 tmp_path) -> None:
    logs.configure(ctx.settings.log_dir, ctx.settings.ai_name, mask=redact)
    (tmp_path / "a.conf").write_text("x = 1\n")
    script = [call("read_file", path=str(tmp_path / "a.conf")),
              call("run_readonly", argv=["ls", "--password=hunter2x"]),
              call("journal", unit="x.service", since="today"), say("done")]
    with ScriptedModel(script) as model:
        run_agent(run_with_model, model, ctx)
    records = [r for r in logs.read(ctx.settings.log_dir, "decisions", 50) if "tool" in r]
    assert [r["tool"] for r in records] == ["read_file", "run_readonly", "journal"]
    assert [r["status"] for r in records][:2] == ["ok", "refused"]
    assert all(r["duration_ms"] >= 0 for r in records)
    ids = [r["tool_call"] for r in records]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert "hunter2x" not in json.dumps(records)


def test_logs_audit_reads_the_audit_table(cli, store) -> None:
    store.audit("alice", "action.approved", "action:7", "looks right")
    code, out, _ = cli("logs", "audit", "-n", "5")
    assert code == 0 and "alice action.approved action:7: looks right" in out


def test_a_token_at_the_cut_of_a_tool_call_line_is_masked_whole(run_with_model, ctx) -> None:
    """The tool line a person reads (200 characters of the arguments) and the decisions log
    (300) are masked before they are cut: cut first, a GitHub token split by the cut was too
    short for its pattern and its first 26 characters showed."""
    logs.configure(ctx.settings.log_dir, ctx.settings.ai_name, mask=redact)
    near_200, near_300 = "ghp_" + "A1b2C3d4" * 4 + "zz", "ghp_" + "Q9w8E7r6" * 4 + "yy"
    argv = ["ls", "a" * 149, near_200, "b" * 54, near_300]
    raw = json.dumps({"argv": argv})
    assert raw.index(near_200) == 170 and raw.index(near_300) == 270  # 30 before each cut
    events: list = []
    with ScriptedModel([call("run_readonly", argv=argv), say("done")]) as model:
        run_agent(run_with_model, model, ctx, events=events)
    (line,) = [e.detail for e in events if e.kind == "tool_call"]
    logged = json.dumps([r for r in logs.read(ctx.settings.log_dir, "decisions", 50)
                         if r.get("tool") == "run_readonly"])
    for shown in (line, logged):
        for token in (near_200, near_300):
            assert token[:12] not in shown, shown
    assert line.startswith('{"argv": ["ls", "aaa') and "[redacted]"[:6] in line


def _named(name: str, call_id: str) -> dict:
    """An OpenAI answer with one call of ``name``, under ``call_id``."""
    return {"id": "x", "object": "chat.completion", "model": "scripted",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": None,
                "tool_calls": [{"id": call_id, "type": "function",
                                "function": {"name": name, "arguments": "{}"}}]}}]}


@pytest.mark.parametrize("backend_name", ["openai"])
def test_a_tool_name_and_call_id_of_megabytes_stay_out_of_the_log_and_the_context(
        run_with_model, ctx) -> None:
    """A model that writes megabytes as a tool's name and its server as the call's id: the
    model is told there is no such tool, the decisions log keeps a line of the usual size
    (three copies of the name a call pushed the days before out of it), and the next
    request fits the context (the id went back with every request, uncounted)."""
    logs.configure(ctx.settings.log_dir, ctx.settings.ai_name, mask=redact)
    name, call_id = "journal" + "x" * 2_000_000, "call_" + "y" * 2_000_000
    with ScriptedModel([respond(_named(name, call_id)), say("done")]) as model:
        outcome = run_agent(run_with_model, model, ctx)
        sent = model.requests[-1]
    assert outcome.answer == "done"
    (told,) = tool_results(sent)
    assert "unknown tool 'journalxxx" in told and "(2000007 characters)" in told
    assert len(json.dumps(sent["messages"])) < AgentSettings().max_context_chars
    logged = [r for r in logs.read(ctx.settings.log_dir, "decisions", 50) if "tool" in r]
    assert len(logged) == 1 and len(json.dumps(logged)) < 2000
