"""The classic runaway: a daemon up for days that began to spin. ps's %CPU is its lifetime
average (a few tenths of a percent), so a check that kept only the busiest by that never saw
it on a host with a few dozen ordinary processes. A check keeps the processes whose CPU rose
most since the host's last listing, and the rate is measured from every process listed then."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import CommandResult
from ai_sysadmin.monitor.rules import RuleContext
from ai_sysadmin.monitor.rules.runaway_process import RunawayProcess
from ai_sysadmin.monitor.sections import (
    SECTIONS_BY_NAME,
    JournalQuery,
    Plan,
    ProcessHistory,
    ps_argv,
)
from ai_sysadmin.monitor.snapshot import Snapshot

T0 = 1_795_000_000.0
TEN_DAYS = 864_000


def line(pid: int, pcpu: float, etimes: int, times: int, unit: str, args: str) -> str:
    """One line as ``ps -ww -eo`` prints PS_CGROUP_COLUMNS (the cgroup padded to 239)."""
    return (f"{pid:>7} {1:>7} S    {'root':<32} {pcpu:>4.1f}  0.1 {20000:>6} {etimes:>7} "
            f"{times:>8} {'0::/system.slice/' + unit:<239} {args}")


def listing(after: int, hog_spun: int, others: int = 30) -> str:
    """The host ``after`` seconds past T0; the hog has spun ``hog_spun`` seconds of that."""
    rows = [line(1, 0.0, TEN_DAYS + after, 60, "init.scope", "/sbin/init")]
    for n in range(others):  # ordinary workers, busier on average than the hog's lifetime
        rows.append(line(2000 + n, 1.0 + n / 10, 3600 + after, 36 + after // 100,
                         f"app{n}.service", f"/usr/bin/worker{n} --serve"))
    used = 3600 + hog_spun
    rows.append(line(999, 100.0 * used / (TEN_DAYS + after), TEN_DAYS + after, used,
                     "stuckd.service", "/usr/sbin/stuckd -f"))
    return "\n".join(rows) + "\n"


def checked(plan: Plan, after: int, hog_spun: int) -> Snapshot:
    snap = Snapshot("web1", T0 + after)
    ps = ps_argv(plan.programs)
    SECTIONS_BY_NAME["processes"].take(
        [CommandResult(ps, 0, listing(after, hog_spun), "", 0.0)], snap, plan)
    return snap


def test_a_long_lived_daemon_that_began_to_spin_is_a_runaway(tmp_path: Path) -> None:
    plan = Plan(Settings(ai_name="hal", state_dir=tmp_path), JournalQuery(), True,
                history=ProcessHistory())
    baseline = checked(plan, 0, 0)  # the last interval check: the hog idle, days old
    assert 999 not in {p.pid for p in baseline.processes or []}
    now = checked(plan, 300, 300)  # five minutes later it has used a core all along
    assert 999 in {p.pid for p in now.processes or []}
    [finding] = RunawayProcess().evaluate(RuleContext(now, baseline=baseline))
    assert finding.subject == "stuckd.service"
    assert "100% CPU for 300 s" in finding.summary


def test_a_reused_pid_is_not_measured_against_the_process_that_had_it(tmp_path: Path) -> None:
    plan = Plan(Settings(ai_name="hal", state_dir=tmp_path), JournalQuery(), True,
                history=ProcessHistory())
    baseline = checked(plan, 0, 0)
    now = checked(plan, 300, 300)
    # pid 999 is now a process 10 s old: its CPU seconds say nothing of the old one's
    assert baseline.cpu_seconds is not None and now.cpu_seconds is not None
    _, used = now.cpu_seconds[999]
    reborn = {**now.cpu_seconds, 999: (round(T0 + 290), used)}
    young = Snapshot("web1", now.taken_at, processes=[
        replace(p, elapsed_seconds=10, cpu_percent=5.0) if p.pid == 999 else p
        for p in now.processes or []], cpu_seconds=reborn)
    assert RunawayProcess().evaluate(RuleContext(young, baseline=baseline)) == []


def test_a_check_seconds_after_an_interval_check_measures_from_the_one_before(
        tmp_path: Path) -> None:
    """A fix's verification, an approval or a check the journal woke, 20 s after the interval
    check that found the hog: 20 s say nothing of "sustained", and the lifetime share of a
    daemon up for days is low. The interval check before is old enough to measure from."""
    plan = Plan(Settings(ai_name="hal", state_dir=tmp_path), JournalQuery(), True,
                history=ProcessHistory())
    before = checked(plan, 0, 0)  # the hog idle, days old
    last = checked(plan, 300, 300)  # the last interval check: it has spun since
    soon = checked(plan, 320, 320)
    ctx = RuleContext(soon, baseline=last, earlier_baselines=(before,))
    [finding] = RunawayProcess().evaluate(ctx)
    assert "100% CPU for 320 s" in finding.summary
    assert RunawayProcess().judges(ctx)
    # with no look that far back, no lifetime share says it stopped: the rule has not judged
    alone = RuleContext(soon, baseline=last)
    assert RunawayProcess().evaluate(alone) == []
    assert not RunawayProcess().judges(alone)
