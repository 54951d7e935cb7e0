"""A stop of a protected unit is refused by its name, also where the host's facts could not
be read: the refusal rests on no fact, so no answer from the host would lift it (pure parts;
the executor's decision on a host whose bus does not answer is in
tests/executor/test_protected_while_unread.py)."""

from __future__ import annotations

import pytest

from ai_sysadmin.safety.catalog import PlanContext, judge_unit_on_host, plan_action
from ai_sysadmin.safety.unit_facts import UnitFacts

#: the host was asked and did not say (its bus does not answer): no unit, no process
UNREAD = PlanContext(facts_problem="systemctl show failed (1): Failed to connect to bus")


@pytest.mark.parametrize("argv", [
    ["systemctl", "stop", "sshd"], ["systemctl", "mask", "ssh.service"],
    ["systemctl", "disable", "sshd.service"], ["systemctl", "kill", "dbus.service"],
    ["systemctl", "stop", "S\\x73hd.service"],  # a look-alike
])
def test_a_stop_of_a_protected_unit_is_refused_whatever_the_host_says(argv: list[str]
                                                                      ) -> None:
    plan = plan_action("run_command", {"argv": argv}, UNREAD)
    assert (plan.allowed, plan.firm) == (False, True), plan
    assert "protected" in plan.reason


@pytest.mark.parametrize(("kind", "params"), [
    ("stop_unit", {"unit": "sshd.service"}),  # no such action
    ("restart_unit", {"unit": "a/b"}),  # no unit name
    ("restart_unit", {"unit": "sshd.service", "now": True}),  # no such parameter
    ("run_command", {"argv": ["bash", "-c", "systemctl stop sshd"]}),
    ("run_command", {"argv": ["systemctl", "stop", "a.service", "b.service"]}),
    ("clean_directory", {"path": "/etc"}),  # not a configured path
])
def test_refusals_of_what_was_asked_alone_hold_whatever_the_host_says(
        kind: str, params: dict[str, object]) -> None:
    plan = plan_action(kind, params, UNREAD)
    assert (plan.allowed, plan.firm) == (False, True), plan


@pytest.mark.parametrize(("kind", "params"), [
    ("run_command", {"argv": ["systemctl", "stop", "foo.service"]}),
    ("run_command", {"argv": ["systemctl", "disable", "foo.service"]}),
    ("update_packages", {}),
    ("nix_gc", {}),
])
def test_refusals_for_want_of_the_facts_are_not_firm(kind: str, params: dict[str, object]
                                                     ) -> None:
    """The host may answer: judged again then (the executor asks a person meanwhile)."""
    plan = plan_action(kind, params, UNREAD)
    assert (plan.allowed, plan.firm) == (False, False), plan


def test_an_unread_unit_is_judged_by_its_name_before_its_facts() -> None:
    _, verdict = judge_unit_on_host("stop", "sshd.service", UNREAD)
    assert verdict.firm and verdict.refused is not None
    assert verdict.refused.startswith("sshd.service is protected: remote access")
    assert "could not be read" not in verdict.refused
    _, verdict = judge_unit_on_host("stop", "foo.service", UNREAD)
    assert not verdict.firm and "could not be read" in (verdict.refused or "")
    # a start of it is still a person's decision, not a refusal
    _, verdict = judge_unit_on_host("restart", "sshd.service", UNREAD)
    assert verdict.refused is None and verdict.person


def test_a_disable_that_disables_a_protected_unit_too_is_refused_by_its_name() -> None:
    """Also=sshd.service in foo.service's [Install]: sshd's own facts are not read (a
    template instance, or gone meanwhile), its name refuses the disable."""
    foo = UnitFacts("foo.service", ("foo.service",), {"LoadState": ("loaded",)}, ())
    ctx = PlanContext(facts_read=True, units={"foo.service": foo},
                      also=(("sshd.service", "foo.service"),))
    plan = plan_action("run_command", {"argv": ["systemctl", "disable", "foo.service"]}, ctx)
    assert (plan.allowed, plan.firm) == (False, True), plan
    assert "also disables sshd.service" in plan.reason and "is protected" in plan.reason
