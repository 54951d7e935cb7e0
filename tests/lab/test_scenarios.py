"""Every shipped drill, end to end in a real lab: the fault is detected by the right rule on
the right subject, nothing else fires, and the fix makes the finding go away."""

from __future__ import annotations

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.runner import HOST_WIDE_RULES, run_scenario
from ai_sysadmin.lab.scenario import Expectation, Scenario, Step, list_scenarios

pytestmark = pytest.mark.lab

SCENARIOS = {s.name: s for s in list_scenarios()}


def test_the_required_drills_are_shipped() -> None:
    assert {
        "failed-unit-bad-config", "crash-loop", "broken-unit-file", "disk-full",
        "broken-unit-file-unreferenced",
        "inode-exhaustion", "runaway-cpu", "journal-error-burst", "healthy-noop",
        "port-in-use", "config-deleted", "unwritable-data-dir", "dependency-failed",
        "timer-service-fails", "mount-bad-source", "start-timeout", "start-limit-hit",
        "log-fills-disk", "journal-flood", "too-many-open-files",
        "noisy-but-harmless", "oneshot-exits-0", "deliberately-stopped",
        "injection-delete-data", "injection-stop-sshd", "injection-read-secret",
        "expired-tls-cert", "core-dump", "zombie-accumulation",
    } <= set(SCENARIOS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_drill(name: str, lab_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = SCENARIOS[name]
    messages: list[str] = []
    result = run_scenario(name, lab_settings, messages.append)

    assert result.errors == []
    assert result.unexpected == [], [f.to_dict() for f in result.unexpected]
    assert result.detected, f"missing: {result.missing}"
    for expected in scenario.expect:
        hits = [f for f in result.findings if expected.matches(f)]
        assert hits, f"{expected} never seen; findings: {result.findings}"
        assert all(f.host == "sdtest" for f in hits)
    if scenario.expect:
        assert result.time_to_detect is not None
        assert result.time_to_detect < scenario.detect_timeout
    else:  # the control: a full check of an idle lab finds nothing at all
        # load, memory and swap read the whole machine's /proc, not the lab's
        assert [f for f in result.findings if f.rule not in HOST_WIDE_RULES] == []
        assert result.checks >= 2
    assert result.recovered
    assert result.ok
    assert messages[0] == "booting the lab" and messages[-1] == "stopping the lab"
    assert capsys.readouterr() == ("", "")  # the library never prints


def test_a_fault_nobody_detects_is_reported_as_missing(lab_settings: Settings) -> None:
    scenario = Scenario(
        name="undetectable",
        description="expects a failure that is never injected",
        expect=[Expectation(rule="failed_unit", subject="ghost.service")],
        detect_timeout=0.5,
    )
    result = run_scenario(scenario, lab_settings)
    assert not result.detected and not result.recovered and not result.ok
    assert result.missing == ["failed_unit ghost.service"]
    assert result.checks >= 2


def test_a_failing_step_is_an_error_not_a_crash(lab_settings: Settings) -> None:
    scenario = Scenario.model_validate(
        {
            "name": "bad-step",
            "description": "a fix that cannot run",
            "inject": [{"action": "run", "argv": ["false"]}],
            "expect": [{"rule": "failed_unit", "subject": "x.service"}],
        }
    )
    result = run_scenario(scenario, lab_settings)
    assert not result.detected
    assert len(result.errors) == 1 and "inject step 1 (run)" in result.errors[0]


def test_a_fix_whose_unit_fails_again_a_moment_later_is_not_recovered(
        lab_settings: Settings) -> None:
    # a bare restart of webapp, the squatter left on its port: systemd reports webapp
    # active at once, and it dies of "Address already in use" a moment later
    port_in_use = SCENARIOS["port-in-use"]
    restart_only = port_in_use.model_copy(update={
        "fix": [Step(action="restart_unit", params={"name": "webapp.service"})],
        "recover_timeout": 4})
    result = run_scenario(restart_only, lab_settings)
    assert result.detected
    assert not result.recovered and not result.ok and result.time_to_recover is None
    (error,) = result.errors
    assert error.startswith("still present 4 s after the fix: failed_unit webapp.service")
    # the right fix (stop the squatter first) holds: the drill says so
    assert run_scenario("port-in-use", lab_settings).recovered
