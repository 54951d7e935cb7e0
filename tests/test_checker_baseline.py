"""Rates are measured from the last interval check: a check that verifies a fix (or answers an
approval) between two interval checks does not change what the runaway rule sees."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.orchestrator.checker import CheckReport, HostChecker

#: ps for one long-lived, mostly idle process (0.5% over its life) that spins on four cores
#: from the second written in SPIN on; its columns are the collector's (parsers.PS_CGROUP_COLUMNS)
PS = """\
#!/bin/sh
cpu=1000
if [ -r {spin} ]; then cpu=$((1000 + 4 * ($(date +%s) - $(cat {spin})))); fi
echo "4242 1 S alice 0.5 0.1 20000 200000 $cpu - /usr/bin/node server.js"
"""
SUSTAINED = 2.0


def runaway(report: CheckReport) -> list[str]:
    return [f.summary for f in report.findings if f.rule == "runaway_process"]


async def clock_past(moment: float) -> None:
    """Wait until the wall clock passes ``moment``: a rate needs time to pass, nothing else."""
    deadline = time.monotonic() + moment - time.time() + 5
    while time.time() < moment:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("between", ["verify", "approval"])
def test_a_check_between_two_interval_checks_leaves_the_rate_to_the_interval(
    tmp_path: Path, between: str
) -> None:
    spin, ps = tmp_path / "spin-since", tmp_path / "ps"
    ps.write_text(PS.format(spin=spin))
    ps.chmod(0o755)
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", programs={"ps": str(ps)},
                        thresholds={"runaway_min_seconds": SUSTAINED})
    checker = HostChecker(LocalTransport("here"), settings, store=None)

    async def checks() -> list[CheckReport]:
        first = await checker.check("interval")
        spin.write_text(f"{int(first.snapshot.taken_at)}\n")  # it starts spinning now
        await clock_past(first.snapshot.taken_at + SUSTAINED + 0.2)
        middle = await checker.check(between)
        second = await checker.check("interval")
        third = await checker.check("interval")  # at once: too soon to measure a rate
        return [first, middle, second, third]

    first, middle, second, third = asyncio.run(checks())
    assert runaway(first) == []
    span = second.snapshot.taken_at - first.snapshot.taken_at
    assert span >= SUSTAINED
    [summary] = runaway(second)
    # measured over the whole interval, not over the moment since the check in between
    assert summary.startswith("node (pid 4242) has used ")
    assert summary.endswith(f"% CPU for {span:.0f} s")
    assert runaway(middle) != []  # the check in between saw it too, from the same baseline
    # an interval check does move the baseline: the next one, a moment later, has no rate
    # to go by, and the process's lifetime share is low
    assert runaway(third) == []


def test_only_checks_woken_by_the_journal_keep_the_unit_files(tmp_path: Path) -> None:
    """The unit files (costly to systemd) are read by every check but those the journal wakes,
    which may come every few seconds: those keep a reading younger than unit_files_every."""
    calls = tmp_path / "calls"
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(f'#!/bin/sh\necho "$1" >> {calls}\necho "[]"\n')
    systemctl.chmod(0o755)
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                        programs={"systemctl": str(systemctl)}, unit_files_every=3600)
    checker = HostChecker(LocalTransport("here"), settings, store=None)

    async def checks() -> None:
        for reason in ("interval", "journal", "journal", "verify", "journal", "approval"):
            report = await checker.check(reason)
            assert "unit_files" not in report.errors and "unit_load_error" in report.judged_rules

    asyncio.run(checks())
    listed = calls.read_text().split()
    # interval, verify and approval read them; the journal's checks kept the last reading
    assert listed.count("list-units") == 6 and listed.count("list-unit-files") == 3
