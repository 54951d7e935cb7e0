"""A call the model got wrong is answered with each problem said once: a list of twenty values
of the wrong type is one problem naming where, not twenty copies of it, whether the catalog
judges a proposal's parameters (when it is made, and when it is planned) or the registry a
tool's arguments."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ai_sysadmin.agent.context import ToolContext
from ai_sysadmin.agent.tools import REGISTRY
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.safety.catalog import PlanContext, plan_action

NOT_TEXT = "Input should be a valid string"


def call(ctx: ToolContext, name: str, **args: Any) -> Any:
    return asyncio.run(REGISTRY.call(name, args, ctx))


def _ctx(settings: Any, store: Any) -> ToolContext:
    return ToolContext(settings, {"testhost": LocalTransport("testhost")}, "testhost", store)


def test_a_proposal_with_twenty_wrong_values_says_the_problem_once(settings, store) -> None:
    ctx = _ctx(settings, store)
    result = call(ctx, "propose_action", kind="run_command",
                  parameters={"argv": list(range(20))}, rationale="x")
    assert result.status == "error" and "no proposal was recorded" in result.output
    assert result.output.count(NOT_TEXT) == 1, result.output
    assert "argv.0, argv.1, argv.2, argv.3, argv.4 and 15 more" in result.output
    assert "run_command takes: argv (array, required)" in result.output
    assert len(result.output) < 300, result.output
    # the policy says the same, once, when such a proposal reaches it
    plan = plan_action("run_command", {"argv": list(range(20))}, PlanContext())
    assert not plan.allowed and plan.reason.count(NOT_TEXT) == 1, plan.reason
    assert plan.reason.startswith("invalid parameters: ")
    # different problems are each said
    result = call(ctx, "propose_action", kind="kill_process",
                  parameters={"pid": 1, "signal": "HUP"}, rationale="x")
    assert "pid: Input should be greater than 1" in result.output
    assert "signal: Input should be 'TERM' or 'KILL'" in result.output


def test_a_tool_call_with_wrong_arguments_says_each_problem_once(settings, store) -> None:
    result = call(_ctx(settings, store), "run_readonly", argv=[1, 2, 3, 4, 5, 6])
    assert result.status == "error"
    assert result.output.count(NOT_TEXT) == 1, result.output
    assert "argv.0, argv.1, argv.2, argv.3, argv.4 and 1 more" in result.output


@pytest.mark.parametrize("argv", [["df", "/dev/watchdog"], ["mdadm", "--detail", "/dev/watchdog"],
                                  ["journalctl", "-u", "nginx.service", "-n", "20"],
                                  ["systemctl", "status", "nginx"]])
def test_a_read_proposed_as_a_fix_is_refused_since_a_fix_runs_as_root(argv: list[str]) -> None:
    # approved, it ran as root: df and mdadm open their operands (a watchdog's device arms on
    # open, and the host reboots), and a read shows what the reading identity may not see
    plan = plan_action("run_command", {"argv": argv}, PlanContext())
    assert not plan.allowed, plan.reason
    assert plan.reason.endswith("it changes nothing, so it is no fix; reads are the "
                                "investigation's (run_readonly), as the reading identity, not "
                                "root"), plan.reason
    # a command that changes something is still a person's to weigh
    change = plan_action("run_command", {"argv": ["systemctl", "restart", "nginx.service"]},
                         PlanContext())
    assert change.risk == "high"
