"""tasks_exhausted: a service near the most tasks its cgroup's pids controller allows."""

from ai_sysadmin.config import Thresholds
from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import RuleContext, evaluate
from ai_sysadmin.monitor.rules.tasks_exhausted import TasksExhausted
from ai_sysadmin.monitor.snapshot import TaskCount

from ._snapshots import context, healthy_snapshot, only

RULE = TasksExhausted()


def tasks(**services: TaskCount):
    snap = healthy_snapshot()
    snap.service_tasks = {**(snap.service_tasks or {}), **services}
    return snap


def found(current: int, limit: int | None = 4915) -> list[tuple[str, Severity]]:
    snap = tasks(**{"java-app.service": TaskCount(current, limit)})
    return [(f.subject, f.severity) for f in RULE.evaluate(context(snap))]


def test_a_service_near_its_tasks_max_is_a_finding_on_the_unit_that_says_what_fails():
    finding = only(RULE.evaluate(context(tasks(**{"java-app.service": TaskCount(4870, 4915)}))))
    assert (finding.rule, finding.subject, finding.severity) == (
        "tasks_exhausted", "java-app.service", Severity.CRITICAL)
    assert finding.summary == (
        "java-app.service runs 4870 of the 4915 tasks (processes and threads) its cgroup "
        "allows (99%): at the limit its forks and new threads fail with 'Resource "
        "temporarily unavailable'")
    assert finding.evidence == ("java-app.service: pids.current=4870, pids.max=4915 "
                                "(TasksMax=; systemctl show -p TasksCurrent,TasksMax tells)",)
    assert RULE.subject_is_unit


def test_85_percent_warns_95_is_critical_and_below_is_well():
    assert found(17, 20) == [("java-app.service", Severity.WARNING)]
    assert found(18, 20) == [("java-app.service", Severity.WARNING)]
    assert found(19, 20) == [("java-app.service", Severity.CRITICAL)]
    assert found(20, 20) == [("java-app.service", Severity.CRITICAL)]
    assert found(16, 20) == []
    strict = Thresholds(limit_warn_percent=50, limit_critical_percent=80)
    snap = tasks(**{"java-app.service": TaskCount(12, 20)})
    assert [f.severity for f in RULE.evaluate(context(snap, thresholds=strict))] == [
        Severity.WARNING]


def test_a_service_without_a_limit_is_never_a_finding():
    assert found(4_000_000, None) == []


def test_one_that_warned_is_well_again_only_a_margin_below_the_level():
    snap = tasks(**{"java-app.service": TaskCount(84, 100)})
    assert RULE.evaluate(context(snap)) == []
    before = {("tasks_exhausted", "java-app.service"): Severity.WARNING}
    [kept] = RULE.evaluate(RuleContext(snap, found_before=before))
    assert kept.severity is Severity.WARNING


def test_a_host_without_a_pids_controller_or_an_unread_section_is_not_judged():
    snap = healthy_snapshot()
    assert "tasks_exhausted" in evaluate(context(snap))[1]
    snap.service_tasks = None  # no pids controller under system.slice
    assert "tasks_exhausted" not in evaluate(context(snap))[1]
    snap = tasks(**{"java-app.service": TaskCount(4900, 4915)})
    snap.errors["service_tasks"] = "sh exited 127: grep: not found"
    findings, judged = evaluate(context(snap))
    assert "tasks_exhausted" not in judged
    assert not [f for f in findings if f.rule == "tasks_exhausted"]
