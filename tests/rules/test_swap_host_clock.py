"""A swap rate is the pages moved between two reads of /proc/vmstat over the time between
those reads on the host's clock (its boot time plus the uptime read in the same ``tail`` at
the check script's start), not between the two checks' ``taken_at``: a remote check's
``taken_at`` is when its reply came back, after its slower commands (a journal backlog), so
a steady rate looked faster or slower by the difference. Real parsers through the collection
table, over /proc/stat, /proc/vmstat and /proc/uptime captured in their format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import CommandResult
from ai_sysadmin.monitor.rules import RuleContext
from ai_sysadmin.monitor.rules.swap_thrash import SwapThrash
from ai_sysadmin.monitor.sections import SECTIONS_BY_NAME, JournalQuery, Plan
from ai_sysadmin.monitor.snapshot import CpuTimes, Snapshot, SwapCounters
from tests.rules.test_runaway_ps_time import PROC_STAT

FIXTURES = Path(__file__).parents[1] / "fixtures" / "parsers"
#: a swapping host's /proc/vmstat, its swap counters set per check
VMSTAT = json.loads((FIXTURES / "vmstat_swapping.json").read_text())["raw"]
T0 = 1_800_000_000.0


def _captured(taken_at: float, uptime: float | None, swapped: int,
              stat: str = PROC_STAT) -> Snapshot:
    """A check whose reply came back at ``taken_at`` (this machine's clock) and whose script
    read /proc/vmstat, with ``swapped`` pages in and as many out, at ``uptime`` (None: the
    uptime row failed)."""
    plan = Plan(Settings(ai_name="hal"), JournalQuery(), True)
    snap = Snapshot("web1", taken_at)
    vmstat = VMSTAT.replace("pswpin 18273645", f"pswpin {swapped}").replace(
        "pswpout 22938471", f"pswpout {swapped}")
    files = {"cpu": stat, "swap": vmstat,
             "uptime_seconds": f"{uptime:.2f} {uptime * 1.9:.2f}\n" if uptime else None}
    for name, text in files.items():
        if text is None:
            snap.errors[name] = "cannot read /proc/uptime"  # as the collector records it
            continue
        section = SECTIONS_BY_NAME[name]
        section.take([CommandResult(s.argv, 0, text, "", 0.0) for s in section.sources(plan)],
                     snap, plan)
    return snap


@pytest.mark.parametrize(("backlog_before", "backlog_now"), [
    # the check before waited 40 s on its journal: 262 s between the replies would read a
    # steady 490 pages/s as 561, over the threshold
    (40.0, 2.0),
    # this check waited 40 s: 338 s between the replies would read 533 pages/s as 473, missed
    (2.0, 40.0),
])
def test_a_swap_rate_is_measured_between_the_two_reads_on_the_hosts_clock(
        backlog_before: float, backlog_now: float) -> None:
    steady = 500.0 if backlog_now > backlog_before else 490.0
    moved = int(steady * 300) // 2 * 2  # as many pages in as out
    before = _captured(T0 + backlog_before, 50_000.0, 5_000_000)
    now = _captured(T0 + 300 + backlog_now, 50_300.0, 5_000_000 + moved // 2)
    assert before.errors == now.errors == {}
    found = SwapThrash().evaluate(RuleContext(now, baseline=before))
    if steady >= 500:
        [finding] = found
        assert finding.summary == "swap thrashing: 500 pages/s"
        assert finding.evidence == (f"pswpin+pswpout rose by {moved} pages in 300 s",)
    else:
        assert found == []


def test_without_the_hosts_clock_the_rate_is_measured_between_the_checks() -> None:
    # the uptime row failed in one of them: taken_at is all both have
    before = _captured(T0, None, 5_000_000)
    now = _captured(T0 + 200, 50_300.0, 5_000_000 + 60_000)
    assert before.uptime_seconds is None and now.errors == {}
    [finding] = SwapThrash().evaluate(RuleContext(now, baseline=before))
    assert finding.evidence == ("pswpin+pswpout rose by 120000 pages in 200 s",)


def test_a_clock_the_host_steps_between_two_looks_is_no_swap_rate() -> None:
    """The host's clock set back 290 s between two looks 300 s apart (chrony correcting a
    clock that ran ahead moves the boot time /proc/stat gives): 30000 pages moved in 300 s
    of uptime are 100 pages/s, no thrashing; measured on the clock, 3000 pages/s over 10 s."""
    boot = 1_700_000_000

    def looked(uptime: float, boot_time: int, moved: int) -> Snapshot:
        return Snapshot("web1", boot + uptime, cpu=CpuTimes(1, 2, 4, boot_time=boot_time),
                        uptime_seconds=uptime, swap=SwapCounters(10_000 + moved, 10_000))

    before = looked(10_000.0, boot, 0)
    after = looked(10_300.0, boot - 290, 30_000)
    assert SwapThrash().evaluate(RuleContext(after, baseline=before, previous=before)) == []
    faster = looked(10_300.0, boot - 290, 300_000)  # 1000 pages/s over those 300 s: thrashing
    (finding,) = SwapThrash().evaluate(RuleContext(faster, baseline=before, previous=before))
    assert finding.summary == "swap thrashing: 1000 pages/s"
