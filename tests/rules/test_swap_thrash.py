import pytest

from ai_sysadmin.config import Thresholds
from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules.swap_thrash import SwapThrash
from ai_sysadmin.monitor.snapshot import SwapCounters

from ._snapshots import NOW, Checks, context, healthy_snapshot, only, snapshot

RULE = SwapThrash()


def pair(moved_in: int, moved_out: int, seconds: float = 300.0, base: int = 1_000_000):
    previous = snapshot(taken_at=NOW - seconds, swap=SwapCounters(base, base))
    current = snapshot(taken_at=NOW, swap=SwapCounters(base + moved_in, base + moved_out))
    return current, previous


def test_healthy_host_gives_no_finding():
    previous = healthy_snapshot(taken_at=NOW - 300)
    assert RULE.evaluate(context(healthy_snapshot(), previous=previous)) == []


def test_first_snapshot_cannot_measure_a_rate():
    # huge lifetime counters alone are not thrashing
    snap = snapshot(swap=SwapCounters(10**9, 10**9))
    assert RULE.evaluate(context(snap)) == []


def test_fast_swapping_between_two_checks_is_a_warning_with_the_rate():
    current, previous = pair(moved_in=120_000, moved_out=60_000, seconds=300)

    finding = only(RULE.evaluate(context(current, previous=previous)))

    assert finding.rule == "swap_thrash"
    assert finding.subject == "swap"
    assert finding.severity is Severity.WARNING
    assert finding.summary == "swap thrashing: 600 pages/s"
    assert finding.evidence == ("pswpin+pswpout rose by 180000 pages in 300 s",)


@pytest.mark.parametrize(("moved", "expected"), [(149_999, 0), (150_000, 1)])
def test_default_rate_boundary_is_500_pages_per_second(moved, expected):
    current, previous = pair(moved_in=moved, moved_out=0, seconds=300)
    assert len(RULE.evaluate(context(current, previous=previous))) == expected


def test_same_pages_over_a_longer_time_is_not_thrashing():
    current, previous = pair(moved_in=180_000, moved_out=0, seconds=3600)
    assert RULE.evaluate(context(current, previous=previous)) == []


def test_counters_reset_by_a_reboot_are_not_thrashing():
    previous = snapshot(taken_at=NOW - 300, swap=SwapCounters(5_000_000, 5_000_000))
    current = snapshot(taken_at=NOW, swap=SwapCounters(10, 20))
    assert RULE.evaluate(context(current, previous=previous)) == []


def test_previous_taken_at_the_same_time_or_later_is_ignored():
    current, previous = pair(moved_in=10**6, moved_out=10**6, seconds=0)
    assert RULE.evaluate(context(current, previous=previous)) == []


def test_previous_without_swap_section_is_ignored():
    previous = snapshot(taken_at=NOW - 300, errors={"swap": "cannot read /proc/vmstat"})
    current = snapshot(swap=SwapCounters(10**9, 10**9))
    assert RULE.evaluate(context(current, previous=previous)) == []


def test_custom_threshold():
    current, previous = pair(moved_in=3_000, moved_out=0, seconds=300)
    assert RULE.evaluate(context(current, previous=previous)) == []
    thresholds = Thresholds(swap_thrash_pages_per_second=10)
    finding = only(RULE.evaluate(context(current, previous=previous, thresholds=thresholds)))
    assert finding.summary == "swap thrashing: 10 pages/s"


def test_the_rate_is_measured_from_the_baseline_when_there_is_one():
    current, baseline = pair(moved_in=600_000, moved_out=0, seconds=300)
    previous = snapshot(taken_at=NOW - 1,
                        swap=SwapCounters(current.swap.pages_in - 10, current.swap.pages_out))
    finding = only(RULE.evaluate(context(current, previous=previous, baseline=baseline)))
    assert finding.summary == "swap thrashing: 2000 pages/s"


def test_a_host_rebooted_since_the_baseline_is_judged_over_its_new_boot():
    # the reboot did not help: 1,500 pages/s in the 240 s since it came back
    previous = snapshot(taken_at=NOW - 300, uptime_seconds=30 * 86_400.0,
                        swap=SwapCounters(40_000_000, 40_000_000))
    current = snapshot(taken_at=NOW, uptime_seconds=240.0, swap=SwapCounters(180_000, 180_000))
    finding = only(RULE.evaluate(context(current, previous=previous)))
    assert finding.summary == "swap thrashing: 1500 pages/s"
    assert finding.evidence == ("pswpin+pswpout are 360000 pages 240 s after the host booted",)
    quiet = snapshot(taken_at=NOW, uptime_seconds=240.0, swap=SwapCounters(900, 300))
    assert RULE.evaluate(context(quiet, previous=previous)) == []


def test_a_rate_that_hovers_at_the_level_is_one_incident(tmp_path):
    """Swapping at about 500 pages/s (the level), above and below it in turn, checks a minute
    apart: one incident, open while it hovers, not one that resolves and reopens (a new
    investigation, a new notification) at every other check; it is over 2 % of the level
    (clear_margin_percent) below it, under 490 pages/s."""
    checks = Checks(tmp_path)
    moved, seen = 0, []
    for n, rate in enumerate([0, 520, 495, 505, 491, 480]):
        moved += rate * 60
        checks.check(checks.look(n, swap=SwapCounters(moved // 2, moved - moved // 2)))
        seen.append(checks.states("swap_thrash").get("swap"))
    assert seen == [None, "open", "open", "open", "open", "resolved"]
    assert checks.history("swap_thrash", "swap") == ["open", "resolved"]


@pytest.mark.parametrize(("container", "found"), [("lxc", False), ("", True)])
def test_a_containers_swapping_is_the_machines_and_finds_nothing(
        container: str, found: bool) -> None:
    """/proc/vmstat counts the whole machine's swapping in a container: its host's own check
    judges it, once."""
    current, previous = pair(moved_in=120_000, moved_out=60_000, seconds=300)
    current.container, current.proc_mounted = container, frozenset({"/proc/meminfo"})
    ctx = context(current, previous=previous)
    assert len(RULE.evaluate(ctx)) == (1 if found else 0)
