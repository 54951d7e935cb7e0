"""What every shipped drill tells the agent evaluation is checked without a lab (and without
root): a fault names its cause, its fix is actions the catalog accepts, an injection's demands
are real tool calls the policy never lets run on its own, and a planted secret is root's."""

from __future__ import annotations

import pytest

from ai_sysadmin.agent.tools import REGISTRY
from ai_sysadmin.lab.scenario import Scenario, list_scenarios
from ai_sysadmin.safety.catalog import CATALOG, PlanContext, plan_action

SCENARIOS = {s.name: s for s in list_scenarios()}
INJECTIONS = sorted(n for n, s in SCENARIOS.items() if s.kind == "injection")


def _units(scenario: Scenario) -> set[str]:
    """Every unit a drill installs, starts or expects a finding about."""
    steps = [*scenario.inject, *scenario.fix]
    names = {str(s.params["name"]) for s in steps if "name" in s.params}
    names |= {str(s.params["unit"]) for s in steps if "unit" in s.params}
    return names | {e.subject for e in scenario.expect if e.subject}


def test_the_new_drills_are_shipped_with_their_kind() -> None:
    kinds = {
        "port-in-use": "fault", "config-deleted": "fault", "unwritable-data-dir": "fault",
        "dependency-failed": "fault", "timer-service-fails": "fault",
        "mount-bad-source": "fault", "start-timeout": "fault", "start-limit-hit": "fault",
        "log-fills-disk": "fault", "journal-flood": "fault", "too-many-open-files": "fault",
        "noisy-but-harmless": "control", "oneshot-exits-0": "control",
        "deliberately-stopped": "control", "healthy-noop": "control",
        "injection-delete-data": "injection", "injection-stop-sshd": "injection",
        "injection-read-secret": "injection",
    }
    assert {name: SCENARIOS[name].kind for name in kinds if name in SCENARIOS} == kinds


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_drill_says_what_the_agent_should_find(name: str) -> None:
    scenario = SCENARIOS[name]
    assert scenario.agent is not None, f"{name} has no [agent] table"
    assert scenario.tags, f"{name} has no tags to choose it by"
    agent = scenario.agent
    if scenario.kind == "control":
        # nothing is wrong: nothing to name, nothing to do, and the tag says so
        assert (agent.cause, agent.fix, agent.unsafe) == ([], [], [])
        assert "control" in scenario.tags
        return
    assert agent.cause and all(word.strip() for word in agent.cause), name
    for action in agent.fix:
        CATALOG[action.kind].params.model_validate(action.parameters)  # raises when wrong
        unit = action.parameters.get("unit")
        if unit is not None:
            assert unit in _units(scenario), f"{name}: the fix aims at {unit}, not in the drill"


@pytest.mark.parametrize("name", INJECTIONS)
def test_an_injection_lists_demands_the_policy_never_runs_alone(name: str) -> None:
    scenario = SCENARIOS[name]
    assert scenario.agent is not None and scenario.agent.unsafe
    assert "injection" in scenario.tags
    assert scenario.expect, "an injection rides on a real fault"
    for demand in scenario.agent.unsafe:
        tool = REGISTRY.get(demand.tool)
        assert tool is not None, f"{name}: no tool {demand.tool!r}"
        tool.model.model_validate(demand.arguments)  # the call an obedient model would make
        if demand.tool == "propose_action":
            kind, params = demand.arguments["kind"], demand.arguments["parameters"]
            plan = plan_action(kind, params, PlanContext())
            assert not plan.allowed or plan.risk == "high", (name, plan.reason)


def test_the_planted_secret_is_root_only_and_nowhere_else() -> None:
    scenario = SCENARIOS["injection-read-secret"]
    assert scenario.agent is not None and scenario.agent.secret
    secret = scenario.agent.secret
    # one step plants it; no unit file, log line or other step (what reaches the model) holds it
    planted = [s for s in [*scenario.inject, *scenario.fix] if secret in str(s.params)]
    assert len(planted) == 1 and secret not in scenario.description
    step = planted[0]
    assert step.action == "write_file" and step.params["mode"] == 0o600
    demanded = {str(d.arguments.get("path")) for d in scenario.agent.unsafe}
    assert step.params["path"] in demanded  # the injection asks for exactly that file
