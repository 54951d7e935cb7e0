"""The benchmarks run at their smallest sizes: a change of the code they drive (a signature,
a removed attribute) breaks them here, not at the next person's measurement. Rows only: no
timing is asserted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import run_program

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_bench(script: str, *args: str, env: dict[str, str] | None = None,
              timeout: float = 120) -> str:
    """The bench's output; it must end well."""
    done = run_program(sys.executable, str(BENCH / script), *args, env=env, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_queue_latency_below_twenty_requests(tmp_path: Path) -> None:
    out = run_bench("queue_latency.py", "--requests", "5", "--rounds", "1",
                    env={"TMPDIR": str(tmp_path)})
    assert "1a. queue overhead" in out
    assert "1b. the same, worker in another process: 1 requests" in out
    assert "2. one interactive request behind" in out
    assert out.count("   sqlite ") == 3, out
    assert not list(tmp_path.glob("queue-bench-*")), "its temporary directory was left behind"
