from dataclasses import replace

import pytest

from ai_sysadmin.config import Thresholds
from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import RuleContext
from ai_sysadmin.monitor.rules.crash_loop import CrashLoop
from ai_sysadmin.monitor.snapshot import JournalEntry, ServiceResult

from ._snapshots import (
    NOW,
    context,
    entry,
    healthy_restarts,
    healthy_snapshot,
    healthy_units,
    only,
    snapshot,
    unit,
)

RULE = CrashLoop()


def looping(restarts: int | None, active: str = "activating", sub: str = "auto-restart",
            taken_at: float = NOW, others: bool = False):
    """A snapshot of worker.service restarted ``restarts`` times (None: not counted), with the
    healthy units (``others``) or alone."""
    units = [*healthy_units(), unit("worker.service", active, sub)] if others else [
        unit("worker.service", active, sub)]
    counts = healthy_restarts() if others else {}
    if restarts is not None:
        counts["worker.service"] = restarts
    return snapshot(taken_at=taken_at, units=units, restarts=counts)


def test_healthy_units_give_no_finding():
    assert RULE.evaluate(context(healthy_snapshot())) == []


def test_unit_restarting_now_without_history_is_a_critical_finding():
    snap = looping(5, others=True)

    finding = only(RULE.evaluate(context(snap)))

    assert finding.rule == "crash_loop"
    assert finding.subject == "worker.service"
    assert finding.severity is Severity.CRITICAL
    assert finding.summary == "worker.service is crash-looping (5 restarts)"
    assert finding.evidence == ("worker.service: NRestarts=5 active=activating sub=auto-restart",)


def test_activating_counts_as_restarting_too():
    snap = looping(4, active="activating", sub="start")
    assert only(RULE.evaluate(context(snap))).subject == "worker.service"


def test_old_restarts_of_a_unit_now_running_are_not_a_loop_without_history():
    snap = looping(7, active="active", sub="running")
    assert RULE.evaluate(context(snap)) == []


def test_rising_count_since_previous_check_is_a_finding_even_while_running():
    previous = looping(4, "active", "running", taken_at=NOW - 300)
    current = looping(9, "active", "running")

    finding = only(RULE.evaluate(context(current, previous=previous)))

    assert finding.evidence == (
        "worker.service: NRestarts=9 active=active sub=running",
        "NRestarts was 4 at the previous check",
    )


def test_a_count_systemd_started_again_from_0_and_past_the_limit_since_is_rising():
    # a person started the unit by hand (systemd counts from 0 again), and it crashed 4
    # times since: caught running between two crashes, it is looping still
    previous = looping(7, "active", "running", taken_at=NOW - 300)
    current = looping(4, "active", "running")

    finding = only(RULE.evaluate(context(current, previous=previous)))

    assert finding.evidence == (
        "worker.service: NRestarts=4 active=active sub=running",
        "NRestarts was 7 at the previous check, then counted from 0 again",
    )
    assert RULE.evaluate(context(looping(2, "active", "running"), previous=previous)) == []


def test_a_unit_waiting_to_restart_again_loops_however_recent_the_last_look():
    # an approval's check, seconds after another, falls between two restarts: the incident
    # must not resolve (and the fix become "not needed") while the unit still loops
    previous = looping(6, taken_at=NOW - 2)
    current = looping(6)
    assert only(RULE.evaluate(context(current, previous=previous))).subject == "worker.service"
    running = looping(6, "active", "running")
    assert RULE.evaluate(context(running, previous=previous)) == []  # it stopped looping


def test_unit_new_since_previous_check_falls_back_to_its_state():
    previous = snapshot(taken_at=NOW - 300, units=healthy_units(), restarts=healthy_restarts())
    current = looping(3, others=True)
    assert only(RULE.evaluate(context(current, previous=previous))).subject == "worker.service"


def test_previous_snapshot_without_units_falls_back_to_state():
    previous = snapshot(taken_at=NOW - 300, errors={"units": "systemctl timed out"})
    current = looping(3)
    assert len(RULE.evaluate(context(current, previous=previous))) == 1


@pytest.mark.parametrize(("restarts", "expected"), [(2, 0), (3, 1), (4, 1)])
def test_default_limit_is_three_restarts(restarts, expected):
    snap = looping(restarts)
    assert len(RULE.evaluate(context(snap))) == expected


def test_rising_below_the_limit_is_not_a_loop():
    previous = looping(1, taken_at=NOW - 300)
    current = looping(2)
    assert RULE.evaluate(context(current, previous=previous)) == []


def test_custom_limit():
    snap = looping(2)
    assert RULE.evaluate(context(snap, thresholds=Thresholds(crash_loop_restarts=10))) == []
    snap = looping(2)
    assert len(RULE.evaluate(context(snap, thresholds=Thresholds(crash_loop_restarts=2)))) == 1


def test_unknown_restart_count_is_never_a_loop():
    assert RULE.evaluate(context(looping(None))) == []


def test_the_count_is_compared_with_the_previous_check_not_with_the_rate_baseline():
    # a fix's verification, seconds after the fix: the count no longer rises since the last
    # look, though it did since the last periodic check
    baseline = looping(5, taken_at=NOW - 300)
    previous = looping(8, "active", "running", taken_at=NOW - 2)
    current = looping(8, "active", "running")
    assert RULE.evaluate(context(current, previous=previous, baseline=baseline)) == []
    assert RULE.evaluate(context(current, previous=baseline)) != []


def clean_restarter(restarts: int, journal: list | None, taken_at: float = NOW,
                    active: str = "active", sub: str = "running", **more: object):
    """worker.service under Restart=always (systemd restarts it after a clean exit too)."""
    snap = looping(restarts, active, sub, taken_at=taken_at)
    return replace(snap, **{"clean_restarts": frozenset({"worker.service"}),
                            "service_results": {}, "journal": journal, **more})


def pid1_failure(result: str = "exit-code", pid: int | None = 1) -> JournalEntry:
    return replace(entry("worker.service: Failed with result 'exit-code'.", priority=4,
                         unit="worker.service"), pid=pid, unit_result=result)


def test_restarts_after_clean_exits_are_no_crash_loop():
    # a getty after each console logout, a service that polls by exiting under Restart=always
    previous = clean_restarter(4, [], taken_at=NOW - 300)
    assert RULE.evaluate(context(clean_restarter(9, []), previous=previous)) == []
    waiting = clean_restarter(9, [], active="activating", sub="auto-restart")
    assert RULE.evaluate(context(waiting, previous=previous)) == []


def test_a_restart_always_service_that_fails_is_a_crash_loop_by_systemds_word():
    previous = clean_restarter(4, [], taken_at=NOW - 300)
    current = clean_restarter(9, [pid1_failure("signal")])
    finding = only(RULE.evaluate(context(current, previous=previous)))
    assert finding.evidence[-1] == "systemd: a run failed with result 'signal'"


def test_a_restart_always_service_whose_last_run_failed_is_a_crash_loop():
    failed = ServiceResult("exit-code", "exited", 1)
    current = clean_restarter(9, [], active="activating", sub="auto-restart",
                              service_results={"worker.service": failed})
    assert only(RULE.evaluate(context(current))).evidence[-1] == "its last run ended: exit-code"


def test_without_the_journal_the_count_decides_as_before():
    previous = clean_restarter(4, [], taken_at=NOW - 300)
    current = clean_restarter(9, None, errors={"journal": "not readable"})
    assert only(RULE.evaluate(context(current, previous=previous))).subject == "worker.service"


def slow_loop(found: bool = True, rose_ago: float = 600.0, fixed_ago: float | None = None,
              restarts: int = 6, **more: object) -> RuleContext:
    """worker.service between two crashes: running, its count as at the previous check, seen
    rising ``rose_ago`` seconds ago; found by that check (``found``), fixed ``fixed_ago``."""
    previous = looping(restarts, "active", "running", taken_at=NOW - 300)
    current = replace(looping(restarts, "active", "running"), **more)
    return RuleContext(
        current, previous=previous, restarts_rose_after={"worker.service": NOW - rose_ago},
        found_before={("crash_loop", "worker.service"): Severity.CRITICAL} if found else {},
        fixed={} if fixed_ago is None else {("crash_loop", "worker.service"): NOW - fixed_ago})


def test_a_loop_slower_than_the_checks_stays_found_between_two_crashes():
    finding = only(RULE.evaluate(slow_loop()))
    assert finding.summary == "worker.service is crash-looping (6 restarts)"
    assert finding.evidence[-1] == "NRestarts rose within the last 3600 s"
    # under Restart=always too, where the run now going says nothing of a failure
    always = slow_loop(clean_restarts=frozenset({"worker.service"}), service_results={},
                       journal=[])
    assert only(RULE.evaluate(always)).subject == "worker.service"


def test_a_slow_loop_ends_when_its_restarts_stop_for_the_window_or_a_fix_ran_since():
    assert RULE.evaluate(slow_loop(rose_ago=3601)) == []
    shorter = Thresholds(crash_loop_window_seconds=300)
    assert RULE.evaluate(replace(slow_loop(rose_ago=600), thresholds=shorter)) == []
    # a fix judged by what follows it: a rise before it keeps nothing, one after it does
    assert RULE.evaluate(slow_loop(rose_ago=600, fixed_ago=500)) == []
    assert len(RULE.evaluate(slow_loop(rose_ago=400, fixed_ago=500))) == 1


def test_an_old_rise_finds_no_loop_that_was_not_found_already():
    # a fresh look (a restarted daemon) or a unit that was not looping: restarts an hour
    # ago are no crash loop by themselves
    assert RULE.evaluate(slow_loop(found=False)) == []


class _Window(list):
    """A journal window that counts how often it is read."""

    reads = 0

    def __iter__(self):
        self.reads += 1
        return super().__iter__()


def test_hundreds_of_restart_always_workers_are_judged_from_one_read_of_the_window():
    # 400 worker instances under Restart=always, all rising: those PID 1 said failed (the
    # even ones, the last word of each kept) loop, the others exit cleanly; the window of
    # 4000 entries is read once for all of them, not once a worker
    names = [f"w@{n}.service" for n in range(400)]
    said = [replace(entry(f"{name}: Failed", priority=4, unit=name, n=k), pid=1,
                    unit_result=("exit-code", "signal")[k // 400])
            for k, name in enumerate(names * 2) if k % 2 == 0]
    chatter = [entry(f"w@{n % 400}: working", unit=f"w@{n % 400}.service", n=n)
               for n in range(4000 - len(said))]
    window = _Window([*chatter, *said])

    def workers(count: int, taken_at: float):
        return snapshot(taken_at=taken_at, units=[unit(name, "activating", "auto-restart")
                                                  for name in names],
                        restarts=dict.fromkeys(names, count), service_results={},
                        clean_restarts=frozenset(names), journal=[])

    findings = RULE.evaluate(context(workers(9, NOW), previous=workers(4, NOW - 300),
                                     journal_window=window))

    assert [f.subject for f in findings] == names[::2]
    assert {f.evidence[-1] for f in findings} == {"systemd: a run failed with result 'signal'"}
    assert window.reads == 1
