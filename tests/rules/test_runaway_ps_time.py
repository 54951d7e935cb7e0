"""A process's CPU share is the CPU seconds it used between two process listings over the wall
time between the two reads of ps, not between the two collections' ``taken_at``: a check
runs ps after its slower commands (systemctl, a journal backlog), seconds later into one
check than into the next on a slow host, and the share was read too low (a hog missed) or
the process taken for a new one. The moment comes from ps itself: the host's boot time, PID 1's
start after boot (/proc/1/stat) and PID 1's age in the listing. Real parsers through the
collection table, over real output of ps, /proc/stat and /proc/1/stat of this machine, and over
the same output captured in its format."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from ai_sysadmin.config import Settings, Thresholds
from ai_sysadmin.hosts.transport import CommandResult, LocalTransport
from ai_sysadmin.monitor.rules import RuleContext
from ai_sysadmin.monitor.rules.runaway_process import RunawayProcess
from ai_sysadmin.monitor.sections import (
    SECTIONS_BY_NAME,
    JournalQuery,
    Plan,
    ProcessHistory,
    Reading,
    Source,
)
from ai_sysadmin.monitor.snapshot import Snapshot
from tests.rules.test_runaway_long_lived import T0, TEN_DAYS, line
from tests.support.polling import poll_until

BOOT = 1_794_000_000
#: /proc/stat as the kernel writes it, but for its boot time
PROC_STAT = ("cpu  10132153 290696 3084719 46828483 16683 0 25195 0 0 0\n"
             "cpu0 1393280 32966 572056 13343292 6130 0 17875 0 0 0\n"
             f"ctxt 1990473\nbtime {BOOT}\nprocesses 2661\nprocs_running 2\n"
             "procs_blocked 0\n")


def _plan(tmp_path: Path, thresholds: Thresholds | None = None) -> Plan:
    settings = Settings(ai_name="hal", state_dir=tmp_path,
                        thresholds=thresholds or Thresholds())
    return Plan(settings, JournalQuery(), True, history=ProcessHistory())


#: PID 1 started 5 s after boot (in clock ticks, as /proc/1/stat gives it)
INIT_STAT = ("1 (systemd) S 0 1 1 0 -1 4194560 71810 3203958 146 1567 2094 3140 22651 "
             "31204 20 0 1 0 500 23474176 3310 18446744073709551615 1 1 0 0 0 0 671173123 "
             "4096 1260 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n")


def _captured(plan: Plan, taken_at: float, uptime: float, hog_age: int, hog_cpu: int) -> Snapshot:
    """A check begun at ``taken_at`` whose ps ran at ``uptime`` (the host's), when the hog,
    up for ten days, was ``hog_age`` seconds old and had used ``hog_cpu`` CPU seconds."""
    snap = Snapshot("web1", taken_at)
    rows = [line(1, 0.0, int(uptime) - 5, 60, "init.scope", "/sbin/init"),
            line(999, 100.0 * hog_cpu / hog_age, hog_age, hog_cpu, "stuckd.service",
                 "/usr/sbin/stuckd -f")]
    for name, text in (("cpu", PROC_STAT), ("processes", "\n".join(rows) + "\n")):
        section = SECTIONS_BY_NAME[name]
        sources = section.sources(plan)
        # ps, /proc/self/mountinfo (no hidepid), and PID 1's /proc/1/stat
        outputs = [text, "", INIT_STAT] if name == "processes" else [text]
        section.take([CommandResult(s.argv, 0, out, "", 0.0)
                      for s, out in zip(sources, outputs, strict=False)], snap, plan)
    return snap


def test_a_hog_is_measured_between_the_two_ps_runs_not_the_two_checks(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    # the interval check before: a journal backlog held it 40 s before its ps ran
    before = _captured(plan, T0, 50_040.0, TEN_DAYS, 3600)
    # five minutes after that check began, the next ran ps 2 s in: 262 s after the last ps,
    # every one of them spun
    now = _captured(plan, T0 + 300, 50_302.0, TEN_DAYS + 262, 3600 + 262)
    assert before.errors == now.errors == {}
    [finding] = RunawayProcess().evaluate(RuleContext(now, baseline=before))
    assert finding.subject == "stuckd.service"
    assert finding.summary == "stuckd (pid 999) in stuckd.service has used 100% CPU for 262 s"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _read(transport: LocalTransport, source: Source) -> Reading:
    if source.path is None:
        return await transport.run(source.argv, 10)
    text = await transport.read_file(source.path, 10)
    return CommandResult(source.argv, 0 if text is not None else 1, text or "", "", 0.0)


def _checked(plan: Plan, taken_at: float) -> Snapshot:
    """This machine's cpu and processes rows, read as a check reads them."""
    snap = Snapshot("here", taken_at)
    transport = LocalTransport("here")
    for name in ("cpu", "processes"):
        section = SECTIONS_BY_NAME[name]
        readings = [asyncio.run(_read(transport, s)) for s in section.sources(plan)]
        section.take(readings, snap, plan)
    return snap


def test_this_machines_spinning_process_is_measured_between_its_ps_runs(
        tmp_path: Path) -> None:
    plan = _plan(tmp_path, Thresholds(runaway_min_seconds=1, runaway_cpu_percent=20))
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        # old enough that its lifetime (what a process not measured between the two
        # listings is judged by) is seconds longer than the time between them
        poll_until(lambda: _cpu_seconds(spinner.pid) >= 3, 60, "the spinner to spin")
        # this check began two minutes before its ps ran (a slow host's journal backlog)
        first = time.monotonic()
        before = _checked(plan, time.time() - 120)
        after_first = time.monotonic()
        used = _cpu_seconds(spinner.pid)
        poll_until(lambda: _cpu_seconds(spinner.pid) >= used + 3, 60,
                   "the spinner to use three more CPU seconds")
        second = time.monotonic()
        now = _checked(plan, time.time())
        after_second = time.monotonic()
    finally:
        spinner.kill()
        spinner.wait()
    assert "processes" not in now.errors and "cpu" not in now.errors
    ctx = RuleContext(now, plan.settings.thresholds, baseline=before)
    [finding] = [f for f in RunawayProcess().evaluate(ctx) if f"(pid {spinner.pid})" in f.summary]
    span = int(finding.summary.rsplit(" for ", 1)[1].removesuffix(" s"))
    # the seconds between the two ps runs, as this machine counted them around each (to
    # the second: ps gives PID 1's age in whole seconds), not the two checks' two minutes
    # more, nor the process's lifetime (seconds longer)
    shortest, longest = second - after_first, after_second - first
    assert shortest - 1.5 <= span <= longest + 1.5, (finding.summary, shortest, longest)
