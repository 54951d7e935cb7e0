import pytest

from ai_sysadmin.config import Thresholds
from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules.crash_loop import CrashLoop

from ._snapshots import NOW, context, healthy_snapshot, healthy_units, only, snapshot, unit

RULE = CrashLoop()


def looping(restarts: int, active: str = "activating", sub: str = "auto-restart"):
    return unit("worker.service", active, sub, restarts=restarts)


def test_healthy_units_give_no_finding():
    assert RULE.evaluate(context(healthy_snapshot())) == []


def test_unit_restarting_now_without_history_is_a_critical_finding():
    snap = snapshot(units=[*healthy_units(), looping(5)])

    finding = only(RULE.evaluate(context(snap)))

    assert finding.rule == "crash_loop"
    assert finding.subject == "worker.service"
    assert finding.severity is Severity.CRITICAL
    assert finding.summary == "worker.service is crash-looping (5 restarts)"
    assert finding.evidence == ("worker.service: NRestarts=5 active=activating sub=auto-restart",)


def test_activating_counts_as_restarting_too():
    snap = snapshot(units=[looping(4, active="activating", sub="start")])
    assert only(RULE.evaluate(context(snap))).subject == "worker.service"


def test_old_restarts_of_a_unit_now_running_are_not_a_loop_without_history():
    snap = snapshot(units=[looping(7, active="active", sub="running")])
    assert RULE.evaluate(context(snap)) == []


def test_rising_count_since_previous_check_is_a_finding_even_while_running():
    previous = snapshot(taken_at=NOW - 300, units=[looping(4, "active", "running")])
    current = snapshot(units=[looping(9, "active", "running")])

    finding = only(RULE.evaluate(context(current, previous=previous)))

    assert finding.evidence == (
        "worker.service: NRestarts=9 active=active sub=running",
        "NRestarts was 4 at the previous check",
    )


def test_count_not_rising_since_previous_check_is_no_loop_even_in_auto_restart():
    previous = snapshot(taken_at=NOW - 300, units=[looping(6)])
    current = snapshot(units=[looping(6)])
    assert RULE.evaluate(context(current, previous=previous)) == []


def test_unit_new_since_previous_check_falls_back_to_its_state():
    previous = snapshot(taken_at=NOW - 300, units=healthy_units())
    current = snapshot(units=[*healthy_units(), looping(3)])
    assert only(RULE.evaluate(context(current, previous=previous))).subject == "worker.service"


def test_previous_snapshot_without_units_falls_back_to_state():
    previous = snapshot(taken_at=NOW - 300, errors={"units": "systemctl timed out"})
    current = snapshot(units=[looping(3)])
    assert len(RULE.evaluate(context(current, previous=previous))) == 1


@pytest.mark.parametrize(("restarts", "expected"), [(2, 0), (3, 1), (4, 1)])
def test_default_limit_is_three_restarts(restarts, expected):
    snap = snapshot(units=[looping(restarts)])
    assert len(RULE.evaluate(context(snap))) == expected


def test_rising_below_the_limit_is_not_a_loop():
    previous = snapshot(taken_at=NOW - 300, units=[looping(1)])
    current = snapshot(units=[looping(2)])
    assert RULE.evaluate(context(current, previous=previous)) == []


def test_custom_limit():
    snap = snapshot(units=[looping(2)])
    assert RULE.evaluate(context(snap, thresholds=Thresholds(crash_loop_restarts=10))) == []
    snap = snapshot(units=[looping(2)])
    assert len(RULE.evaluate(context(snap, thresholds=Thresholds(crash_loop_restarts=2)))) == 1


def test_unknown_restart_count_is_never_a_loop():
    snap = snapshot(units=[unit("worker.service", "activating", "auto-restart", restarts=None)])
    assert RULE.evaluate(context(snap)) == []
