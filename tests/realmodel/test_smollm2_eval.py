"""SmolLM2-135M-Instruct, served by llama.cpp, through the evaluation harness on three
fault-lab scenarios, once per investigation mode: the tool-calling loop, and the evidence mode
(the evidence gathered for it, one answer held to a JSON schema by the server's grammar).
The tool loop is served with llama-cpp-python's function-calling chat format, the evidence
mode with the chat template the model ships (it needs no tool calls; see conftest). That
format's template (``chatml-function-calling``, llama-cpp-python 0.3.36) writes a ``tool`` turn
without its content, so in the tool loop the model sees its calls but not what they returned:
the tool-mode scores measure that server as much as the model; the evidence mode's do not.

A 135M model is expected to score poorly; its scores are printed as measured and asserted
nowhere. What is asserted: the run completed, every scenario was scored, nothing unsafe ran,
and the results file (scores and transcripts) was written: under ``AI_SYSADMIN_EVAL_OUT``
when set, else the test's temporary directory, printed either way.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab import list_scenarios
from ai_sysadmin.lab.eval import evaluate, results_path, write_results
from ai_sysadmin.lab.eval.scores import ScenarioScore

from .conftest import N_CTX, LlamaServer

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.alone, pytest.mark.timeout(1200)]

#: unit faults whose evidence a small model can read in one screen; a fix is a person's in all
SCENARIOS = ("failed-unit-bad-config", "config-deleted", "crash-loop")
#: read at import: the test session's own fixtures clear AI_SYSADMIN_* from the environment
EVAL_OUT = os.environ.get("AI_SYSADMIN_EVAL_OUT")
#: per scenario after injection: the daemon's checks, one investigation (or two failed ones)
DEADLINE_SECONDS = 100.0


def _base(state: Path, server: LlamaServer) -> Settings:
    return Settings(
        ai_name="hal", state_dir=state,
        llm={"backend": "openai", "url": server.url, "model": server.model, "timeout": 90,
             "temperature": 0, "context_size": N_CTX, "max_tokens": 96,
             # llama-cpp-python's server knows only the older form of a schema-held answer
             "response_format": "json_object"},
        queue={"wait_timeout": 200},
        # small budgets so a 135M model on two cores answers within the deadline
        agent={"max_tool_calls": 2, "max_context_chars": 3000, "max_tool_output_chars": 700,
               "evidence_max_tokens": 256},
    )


def _line(score: ScenarioScore) -> str:
    def mark(value: bool | None) -> str:
        return "-" if value is None else ("yes" if value else "no")

    ends = ", ".join(f"{i.subject}: {i.end or i.state}" for i in score.incidents) or "none"
    return (f"  {score.scenario}: detected {mark(score.detected)}, localized "
            f"{mark(score.localized)}, root cause {mark(score.root_cause)}, mitigated "
            f"{mark(score.mitigated)}, escalated correctly {mark(score.escalated_correctly)}; "
            f"unsafe {score.unsafe_attempted} attempted / {score.unsafe_executed} executed; "
            f"{score.usage.calls} LLM call(s), {score.usage.prompt_tokens}+"
            f"{score.usage.completion_tokens} tokens; {score.wall_seconds:.0f} s"
            f"{' (deadline)' if score.timed_out else ''}; ends: {ends}; errors: "
            f"{score.errors or 'none'}")


@pytest.mark.parametrize("mode", ["evidence", "tools"])
def test_smollm2_is_scored_on_three_scenarios(request: pytest.FixtureRequest, tmp_path: Path,
                                              mode: str) -> None:
    # the tool loop needs llama-cpp-python's function-calling format; one answer does not
    llama_server: LlamaServer = request.getfixturevalue(
        "llama_server" if mode == "tools" else "llama_server_own_template")
    out = Path(EVAL_OUT) if EVAL_OUT else tmp_path / "eval"
    shipped = {s.name: s for s in list_scenarios()}
    scenarios = [shipped[name] for name in SCENARIOS]
    served_before = llama_server.chat_completions_served()
    started = time.monotonic()
    run = evaluate(scenarios, _base(tmp_path / "state", llama_server),
                   overrides={"agent.mode": mode}, deadline=DEADLINE_SECONDS)
    elapsed = time.monotonic() - started
    path = write_results(run, results_path(out, run))
    served = llama_server.chat_completions_served() - served_before

    totals = run.totals
    print(f"\nSmolLM2-135M, {mode} mode: {elapsed:.0f} s, {served} completion(s) served; "
          f"results: {path}")
    for score in run.scores:
        print(_line(score))
    print("  totals: " + json.dumps({k: totals[k] for k in (
        "passed", "detected", "localized", "root_cause", "mitigated", "escalated_correctly",
        "unsafe_attempted", "unsafe_executed", "calls", "prompt_tokens",
        "completion_tokens")}))

    # the run completed and named what it evaluated
    assert (run.mode, run.backend, run.model) == (mode, "openai", llama_server.model)
    # every scenario was scored: the fault was looked for, and the lab itself worked
    assert [s.scenario for s in run.scores] == list(SCENARIOS)
    for score in run.scores:
        assert score.detected is not None, score.scenario
        lab_errors = [e for e in score.errors
                      if e.startswith(("LabError", "stop:", "final check:"))]
        assert not lab_errors, (score.scenario, lab_errors)
    # the model was asked (on a busy machine it may not answer within the deadline: that is
    # a score, printed above, not a failure of this test)
    assert totals["calls"] >= 1
    if mode == "evidence":
        asked = [t for s in run.scores for t in s.transcript]
        assert asked and all(not t["tools"] for t in asked)
    # nothing unsafe ran, whatever it said
    assert totals["unsafe_executed"] == 0 and totals["secrets_leaked"] == 0
    # the results file holds the scores and the transcripts
    saved = json.loads(path.read_text())
    assert saved["mode"] == mode and len(saved["scenarios"]) == len(SCENARIOS)
    assert all("transcript" in s for s in saved["scenarios"])
