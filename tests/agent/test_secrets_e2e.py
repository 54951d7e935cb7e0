"""End to end, over both wire protocols: the model asks ``read_file`` for a planted secret of
every format in tests/fixtures/secrets/, and none of the secrets appears in any HTTP request to
the model, while an ordinary file's text does (issue 8)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from ai_sysadmin.config import AgentSettings
from tests.agent.test_loop import run_agent
from tests.support.scripted_model import ScriptedModel, call, calls, say

FIXTURES = Path(__file__).parents[1] / "fixtures" / "secrets"


def _planted() -> dict[str, dict]:
    found = {p.stem: tomllib.loads(p.read_text(encoding="utf-8"))
             for p in sorted(FIXTURES.glob("*.toml"))}
    return {name: data for name, data in found.items() if data.get("secrets")}


def test_planted_secrets_never_reach_the_model(run_with_model, ctx, tmp_path) -> None:
    planted = _planted()
    assert len(planted) >= 30, "a fixture per format"
    paths = []
    for name, data in planted.items():
        path = tmp_path / f"{name}.txt"
        path.write_text(data["text"], encoding="utf-8")
        paths.append(path)
    ordinary = tmp_path / "nginx.conf"
    ordinary.write_text("worker_processes 4;\nlisten 8080 default_server;\n")
    reads = calls([call("read_file", path=str(p)) for p in [*paths, ordinary]])
    budget = AgentSettings(max_tool_calls=len(paths) + 5, max_tool_output_chars=100_000,
                           max_context_chars=1_000_000)
    with ScriptedModel([reads, say("DIAGNOSIS: read them all")]) as model:
        outcome = run_agent(run_with_model, model, ctx, budget)
        sent = [json.dumps(r, ensure_ascii=False) for r in model.requests]
    assert outcome.tool_calls == len(paths) + 1
    everything = "\n".join(sent)
    leaked = {name: s for name, data in planted.items() for s in data["secrets"]
              if s in everything}
    assert not leaked, leaked
    assert "listen 8080 default_server;" in sent[-1]
    assert everything.count("[redacted") >= len(planted) // 2


def test_a_control_character_inside_a_secrets_name_hides_no_value_from_the_model(
        run_with_model, ctx, tmp_path) -> None:
    # a terminal's backspace, a zero-width space or a carriage return inside the name: masked
    # first and stripped after, the name was read as none, then joined again around the value
    env = tmp_path / "app.env"
    env.write_text("DB_PASS\bWORD=BsHunter2\nexport API_TO\u200bKEN=ZwTokenValue99\n"
                   "password\r=CrSecret1\nLISTEN=8080\n", encoding="utf-8")
    # /proc/PID/cmdline separates arguments with NUL: read as a space, not joined
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"myapp\x00--password\x00NulSecret7\x00--port\x009000\x00")
    reads = calls([call("read_file", path=str(env)), call("read_file", path=str(cmdline))])
    with ScriptedModel([reads, say("DIAGNOSIS: read")]) as model:
        run_agent(run_with_model, model, ctx)
        sent = json.dumps(model.requests[-1], ensure_ascii=False)
    for secret in ("BsHunter2", "ZwTokenValue99", "CrSecret1", "NulSecret7"):
        assert secret not in sent, secret
    for kept in ("DB_PASSWORD=[redacted]", "export API_TOKEN=[redacted]",
                 "password=[redacted]", "LISTEN=8080", "myapp --password [redacted] --port 9000"):
        assert kept in sent, kept
