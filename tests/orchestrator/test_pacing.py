"""How often a host's journal may wake a check."""

from __future__ import annotations

from ai_sysadmin.orchestrator.pacing import WakeBudget, next_due


def run_woken(budget: WakeBudget, wakes: list[float]) -> list[float]:
    """When the checks run, as the daemon's loop runs them: a wake waits for the budget,
    and the wakes that come while it waits are that same check (checks take no time)."""
    ran: list[float] = []
    i = 0
    while i < len(wakes):
        start = wakes[i] + budget.wait(wakes[i])
        budget.spend(start)
        ran.append(start)
        while i < len(wakes) and wakes[i] <= start:
            i += 1
    return ran


def test_a_failure_wakes_a_check_at_once_and_a_few_more_follow_it() -> None:
    budget = WakeBudget(gap=15)
    assert run_woken(budget, [0.0, 1.0, 2.0]) == [0.0, 1.0, 2.0]


def test_errors_that_keep_coming_wake_one_check_per_gap() -> None:
    budget = WakeBudget(gap=15)
    # a scanner at sshd: an error every second for ten minutes
    ran = run_woken(budget, [float(t) for t in range(600)])
    assert ran[:3] == [0.0, 1.0, 2.0]
    gaps = [b - a for a, b in zip(ran[3:], ran[4:], strict=False)]
    assert gaps and all(14.9 <= g <= 15.1 for g in gaps)
    assert 40 <= len(ran) <= 45  # ~4 a minute, not 600


def test_a_quiet_host_earns_its_burst_back() -> None:
    budget = WakeBudget(gap=15)
    run_woken(budget, [0.0, 0.5, 1.0, 1.5])
    assert budget.wait(1.5) > 0
    assert budget.wait(1.5 + 3 * 15) == 0.0
    assert run_woken(budget, [100.0, 100.5, 101.0]) == [100.0, 100.5, 101.0]


def test_no_gap_is_no_limit() -> None:
    budget = WakeBudget(gap=0)
    assert run_woken(budget, [0.0, 0.1, 0.2, 0.3, 0.4]) == [0.0, 0.1, 0.2, 0.3, 0.4]


def test_interval_checks_are_due_every_interval_from_the_first_not_after_each_ends() -> None:
    # a check that takes 10 s (a connect that times out) does not make the interval 310 s
    assert next_due(1000.0, 1010.0, 300.0) == 1300.0
    assert next_due(1300.0, 1300.5, 300.0) == 1600.0
    # one that overran its interval waits for the next due time: no burst to catch up
    assert next_due(1000.0, 1700.0, 300.0) == 1900.0
    assert next_due(1000.0, 1600.0, 300.0) == 1600.0
