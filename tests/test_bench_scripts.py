"""The benchmarks run at their smallest sizes: a change of the code they drive (a signature,
a removed attribute) breaks them here, not at the next person's measurement. Rows only: no
timing is asserted."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.support.bench import bench_module, run_bench


@pytest.mark.slow
def test_queue_latency_below_twenty_requests(tmp_path: Path) -> None:
    out = run_bench("queue_latency.py", "--requests", "5", "--rounds", "1",
                    env={"TMPDIR": str(tmp_path)})
    assert "1a. queue overhead" in out
    assert "1b. the same, worker in another process: 1 requests" in out
    assert "2. one interactive request behind" in out
    assert out.count("   sqlite ") == 3, out
    assert not list(tmp_path.glob("queue-bench-*")), "its temporary directory was left behind"


def test_check_cost_baseline_is_what_a_check_read(tmp_path: Path) -> None:
    check_cost = bench_module("check_cost")
    _, _, reads, _ = check_cost.measure_checks(1, tmp_path)
    # the check's own current argv (not a list kept in the bench, which went stale)
    assert ["df", "-B1", "--output=source,fstype,size,used,avail,itotal,iused,target"] \
        in reads.commands
    assert any(argv[:2] == ["ps", "--cols=4608"] for argv in reads.commands), reads.commands
    assert {"/proc/meminfo", "/proc/loadavg", "/proc/self/mountinfo"} <= set(reads.files)
    assert len(reads.files) == len(set(reads.files))  # each once, as the check reads it


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to split")
def test_fleet_sweep_split_rows_pin_every_thread() -> None:
    fleet_sweep = bench_module("fleet_sweep")
    every = os.sched_getaffinity(0)
    own = {min(every)}
    release = threading.Event()

    def helper(seen: list[set[int]]) -> None:  # a thread of the process, as the executor's
        release.wait(30)
        seen.append(os.sched_getaffinity(0))

    before: list[set[int]] = []
    early = threading.Thread(target=helper, args=(before,))
    early.start()
    try:
        with fleet_sweep.pinned([], every - own, own):
            assert early.native_id is not None
            assert os.sched_getaffinity(early.native_id) == own
            during: list[set[int]] = []
            later = threading.Thread(target=lambda: during.append(os.sched_getaffinity(0)))
            later.start()
            later.join()
            assert during == [own]
        assert os.sched_getaffinity(early.native_id) == every
        assert os.sched_getaffinity(0) == every
    finally:
        release.set()
        early.join()
        os.sched_setaffinity(0, every)
    assert before == [every]
