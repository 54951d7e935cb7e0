"""The benchmarks that need the fault lab, at their smallest sizes (see
tests/test_bench_scripts.py)."""

from __future__ import annotations

import pytest

from tests.support.bench import run_bench

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def test_llm_calls_per_day_counts_the_one_investigation() -> None:
    out = run_bench("llm_calls_per_day.py", "--checks", "2")
    assert "healthy day: 2 checks" in out and "0 LLM calls" in out
    # the unit failing at the second check: one investigation, ended before the day's end
    assert "in 1 investigation(s)" in out, out
    assert "a design asking the model at every check" in out
