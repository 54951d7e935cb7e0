"""Every tool call lands in the decisions log with masked arguments, status, duration and an id
that sorts in time order; ``logs audit`` shows the audit table."""

from __future__ import annotations

import json

from ai_sysadmin import logs
from ai_sysadmin.monitor.redact import redact
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
