"""oom_kill: a service's memory cgroup counter of OOM kills rose since the last look."""

from dataclasses import replace

from ai_sysadmin.config import Thresholds
from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import RuleContext, evaluate
from ai_sysadmin.monitor.rules.oom_kill import OomKill, new_kills, oom_kills_rose

from ._snapshots import NOW, Checks, context, healthy_snapshot, only, snapshot

RULE = OomKill()
FOUND = {("oom_kill", "worker.service"): Severity.WARNING}


def kills(count: int | None, taken_at: float = NOW, **others: int):
    counts = {"nginx.service": 0, **others}
    if count is not None:
        counts["worker.service"] = count
    return snapshot(taken_at=taken_at, oom_kills=counts)


def test_a_counter_that_rose_since_the_last_look_is_a_warning_on_the_unit():
    finding = only(RULE.evaluate(context(kills(5), previous=kills(3, NOW - 300))))
    assert (finding.rule, finding.subject, finding.severity) == (
        "oom_kill", "worker.service", Severity.WARNING)
    assert finding.summary == ("the kernel's OOM killer killed a process of worker.service "
                               "(2 since the last look, 5 since it started)")
    assert finding.evidence == ("worker.service: memory cgroup oom_kill=5, 3 at the previous "
                                "check",)
    assert RULE.subject_is_unit


def test_old_kills_are_not_new_and_a_first_look_judges_nothing():
    assert RULE.evaluate(context(kills(5), previous=kills(5, NOW - 300))) == []
    first = context(kills(5))
    assert RULE.evaluate(first) == [] and not RULE.judges(first)
    # an earlier look whose counters were not read is no earlier look for it
    unread = replace(kills(None, NOW - 300), oom_kills=None)
    assert not RULE.judges(context(kills(5), previous=unread))
    assert "oom_kill" in evaluate(context(healthy_snapshot(),
                                          previous=healthy_snapshot(NOW - 300)))[1]


def test_a_unit_started_or_restarted_since_counts_all_its_kills_as_new():
    # no cgroup at the last look (not running), or a fresh one (restarted): its count began
    # after that look
    assert new_kills(2, None) == 2 and new_kills(1, 4) == 1 and new_kills(4, 4) == 0
    started = only(RULE.evaluate(context(kills(2), previous=kills(None, NOW - 300))))
    assert "(2 since the last look, 2 since it started)" in started.summary
    assert oom_kills_rose({"worker.service": 4}, {"worker.service": 0}) == {}
    assert oom_kills_rose(None, {"worker.service": 9}) == {}


def test_found_stays_found_while_it_rose_within_the_window_then_resolves():
    window = Thresholds().oom_kill_window_seconds
    rose_at = NOW - 600

    def later(at: float, rose: dict[str, float], fixed: float | None = None) -> RuleContext:
        return RuleContext(kills(5, at), previous=kills(5, at - 300), found_before=FOUND,
                           oom_kills_rose_after=rose,
                           fixed={} if fixed is None else {("oom_kill", "worker.service"): fixed})

    kept = only(RULE.evaluate(later(NOW, {"worker.service": rose_at})))
    assert "(0 since the last look, 5 since it started)" in kept.summary
    assert kept.evidence[-1] == f"its oom_kill rose within the last {window:g} s"
    # a window without a kill: over
    assert RULE.evaluate(later(rose_at + window + 1, {"worker.service": rose_at})) == []
    # a fix after the last kill is judged by the kills that follow it
    assert RULE.evaluate(later(NOW, {"worker.service": rose_at}, fixed=rose_at + 60)) == []
    # not found before: nothing is kept
    ctx = later(NOW, {"worker.service": rose_at})
    assert RULE.evaluate(replace(ctx, found_before={})) == []


def test_healthy_snapshot_gives_no_finding():
    assert RULE.evaluate(context(healthy_snapshot(), previous=healthy_snapshot(NOW - 300))) == []


def test_a_kill_stays_found_for_its_window_when_the_units_cgroup_is_gone(tmp_path):
    """The OOM killer killed a process of app.service, then app.service stopped (or failed):
    its memory cgroup, and the counter with it, is gone. The kill happened all the same: its
    incident stays open, saying the cgroup is gone, until a window (here 300 s, checks a
    minute apart) passed without a kill, not at the next check as if it were over."""
    checks = Checks(tmp_path, oom_kill_window_seconds=300)
    seen = []
    for n, app in enumerate([{"app.service": 0}, {"app.service": 1}, {"app.service": 1},
                             {}, {}, {}, {}]):
        checks.check(checks.look(n, oom_kills={"nginx.service": 0, **app}))
        seen.append(checks.states("oom_kill").get("app.service"))
        if n == 3:
            [gone] = checks.incidents("oom_kill")
            assert gone.summary == ("the kernel's OOM killer killed a process of app.service "
                                    "(0 since the last look, its memory cgroup is gone now)")
            assert gone.evidence == [
                "app.service: no memory cgroup now, it stopped or failed (its oom_kill cannot "
                "be read), 1 at the previous check",
                "its oom_kill rose within the last 300 s"]
    # the kill came between the first two looks: 300 s after the first, it is over
    assert seen == [None] + ["open"] * 5 + ["resolved"]
    assert checks.history("oom_kill", "app.service") == ["open", "resolved"]
