"""Every tool call lands in the decisions log with masked arguments, status, duration and an id
that sorts in time order; ``logs audit`` shows the audit table."""

from __future__ import annotations

import json

from ai_sysadmin import logs
from ai_sysadmin.redact import redact
from tests.agent.test_loop import run_agent
from tests.support.scripted_model import ScriptedModel, call, say


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
