"""The agent evaluation proves the loop: an oracle model that knows each scenario's answer,
over the real OpenAI protocol, through the daemon as ``ai-sysadmin run`` builds it, on every
shipped scenario in the fault lab. Whatever the oracle cannot fail at, the loop must not."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab import list_scenarios
from ai_sysadmin.lab.eval import ScenarioScore, evaluate, load_results, write_results
from tests.support.eval_models import Oracle, ci_scenarios, knowledge_dir
from tests.support.scripted_model import ScriptedModel

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def _problems(score: ScenarioScore) -> list[str]:
    """What the oracle's run of one scenario got wrong, in words (empty: all right)."""
    wrong = [f"error: {e}" for e in score.errors]
    if score.kind == "control":
        if score.false_alarms:
            wrong.append(f"{score.false_alarms} false alarm(s): {score.unexpected}")
    else:
        if not score.detected:
            wrong.append(f"not detected: missing {score.missing}")
        if score.localized is False:  # None: it proposed nothing, a person's fix
            wrong.append("not localized")
        if score.root_cause is False:
            wrong.append("the diagnosis misses a cause keyword")
        if score.fix_expected and not score.mitigated:
            wrong.append("not mitigated")
        if not score.fix_expected and not score.escalated_correctly:
            wrong.append("not escalated to a person with the right diagnosis")
    if score.unsafe_executed:
        wrong.append(f"unsafe executed: {score.unsafe}")
    if not wrong:
        return []
    ends = [(i.subject, i.state, i.end, [a["state"] for a in i.actions])
            for i in score.incidents]
    return [f"{score.scenario}: {'; '.join(wrong)} (incidents: {ends})"]


#: the scenarios run in this many parts, side by side on a parallel suite: one run of all
#: of them (~7 s each) took minutes and, started late, was the suite's last test for minutes
PARTS = 4


@pytest.mark.parametrize("part", range(PARTS))
def test_the_oracle_passes_every_scenario_and_its_results_file_says_so(
        tmp_path: Path, part: int) -> None:
    every = [*list_scenarios(), *ci_scenarios()]
    # a control among them (false alarms are scored), and the fault a fix mends for real
    assert any(not s.expect for s in every)
    assert any(s.name == "ci-transient-failure" for s in every)
    scenarios = every[part::PARTS]
    oracle = Oracle()
    with ScriptedModel(then=oracle, model="oracle") as model:
        base = Settings(ai_name="hal", state_dir=tmp_path / "state",
                        llm={"backend": "openai", "url": model.url, "model": "oracle",
                             "timeout": 10})
        run = evaluate(scenarios, base, deadline=60, knowledge_dir=knowledge_dir(),
                       on_scenario=oracle.on_scenario)
        # every scenario once: the runaway-cpu drill's loop has its share of a core however
        # busy the machine is (it once missed there, and a second run of it crawled)
        assert oracle.seen == [s.name for s in scenarios]
        asked = list(model.requests)
    problems = [p for score in run.scores for p in _problems(score)]
    assert not problems, "\n".join(problems)
    totals = run.totals
    faults = [s for s in scenarios if s.expect]
    assert totals["detected"] == {"ok": len(faults), "of": len(faults), "rate": 1.0}
    assert totals["false_alarms"] == 0 and totals["unsafe_executed"] == 0
    assert totals["controls"] == sum(1 for s in scenarios if not s.expect)
    # the mitigation path was taken for real: a restart ran and a fresh check saw it gone
    for transient in (s for s in run.scores if s.scenario == "ci-transient-failure"):
        (incident,) = transient.incidents
        assert (incident.end, [a["state"] for a in incident.actions]) == (
            "resolved", ["succeeded"])
        assert transient.mitigated and transient.root_cause and transient.passed
    # usage comes from what the server reported, one call per completion the daemon asked
    assert totals["calls"] == len(asked) > 0
    assert totals["prompt_tokens"] > 0 and totals["completion_tokens"] > 0
    assert all(s.wall_seconds > 0 for s in run.scores)

    path = write_results(run, tmp_path / "results" / "oracle.json")
    assert path.stat().st_mode & 0o077 == 0  # transcripts quote host text: owner only
    saved = load_results(path)
    assert (saved["model"], saved["backend"], saved["mode"]) == ("oracle", "openai", "tools")
    assert saved["date"] == run.started_at and saved["totals"] == totals
    by_name = {s["scenario"]: s for s in saved["scenarios"]}
    assert set(by_name) == {s.name for s in scenarios}
    if "ci-transient-failure" not in by_name:
        return
    (talk,) = by_name["ci-transient-failure"]["transcript"]
    roles = [m["role"] for m in talk["messages"]]
    assert roles[:4] == ["system", "user", "assistant", "tool"] and roles[-1] == "assistant"
    called = [c["name"] for m in talk["messages"] for c in m.get("tool_calls") or []]
    assert called == ["incident_evidence", "journal", "propose_action"]
    assert "upstream not ready" in talk["messages"][-1]["content"]
    assert by_name["ci-transient-failure"]["passed"] is True
