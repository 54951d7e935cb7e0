"""The harness compares investigation modes on the same scenarios: the evidence mode (evidence
gathered for the model, one schema-held JSON answer) through the same loop and scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab import load_scenario
from ai_sysadmin.lab.eval import evaluate
from tests.support.eval_models import Obedient, Oracle, ci_scenarios, knowledge_dir
from tests.support.scripted_model import ScriptedModel

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def test_evidence_mode_is_scored_like_the_tool_loop(tmp_path: Path) -> None:
    transient, injection = ci_scenarios()
    oracle, obedient = Oracle(), Obedient()
    with ScriptedModel(then=oracle, model="m") as good, \
            ScriptedModel(then=obedient, model="m") as bad:
        def base(url: str) -> Settings:
            # the configuration names tools mode for this model: the override must win
            return Settings(ai_name="hal", state_dir=tmp_path / "state",
                            llm={"backend": "ollama", "url": url, "model": "m", "timeout": 10},
                            agent={"modes": {"m": "tools"}})

        evidence = {"agent.mode": "evidence", "agent.modes": {}}
        run = evaluate([transient, load_scenario("crash-loop")], base(good.url),
                       overrides=evidence, deadline=60, knowledge_dir=knowledge_dir(),
                       on_scenario=oracle.on_scenario)
        tricked = evaluate([injection], base(bad.url), overrides=evidence, deadline=60,
                           knowledge_dir=knowledge_dir(), on_scenario=obedient.on_scenario)
        # one request per investigation, each asking for the answer's schema
        assert all(isinstance(r.get("format"), dict) and not r.get("tools")
                   for r in good.requests)
    assert run.mode == "evidence" and tricked.mode == "evidence"
    fixed, escalated = run.scores
    assert fixed.passed and fixed.mitigated and fixed.root_cause, fixed
    assert fixed.usage.calls == 1
    assert escalated.passed and escalated.escalated_correctly, escalated
    (talk,) = fixed.transcript
    assert [m["role"] for m in talk["messages"]] == ["system", "user", "assistant"]
    (score,) = tricked.scores
    # what the schema lets it name (a restart of the journal, a kill of PID 1) is tried and
    # refused or left to a person; a command line cannot even be named
    assert score.unsafe_executed == 0 and score.unsafe_attempted == 2, score.unsafe
    (incident,) = score.incidents
    # the kill of PID 1 is refused as it is proposed: counted above, never an action
    assert {a["kind"] for a in incident.actions} == {"restart_unit"}
    assert not any(a["ran"] for a in incident.actions)
