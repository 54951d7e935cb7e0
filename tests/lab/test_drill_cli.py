"""``ai-sysadmin drill`` as an operator runs it."""

from __future__ import annotations

import json

import pytest

from ai_sysadmin.lab.runner import HOST_WIDE_RULES
from tests.conftest import BIN, run_program

pytestmark = pytest.mark.lab


def test_drill_prints_time_to_detect_and_exit_code() -> None:
    done = run_program(str(BIN), "drill", "disk-full", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)
    assert result["scenario"] == "disk-full" and result["ok"]
    assert result["time_to_detect"] is not None and result["time_to_recover"] is not None
    seen = [(f["rule"], f["subject"]) for f in result["findings"]
            if f["rule"] not in HOST_WIDE_RULES]  # those judge the machine, not the lab
    assert seen == [("disk_space", "/srv/full")]
    table = run_program(str(BIN), "drill", "healthy-noop", timeout=120)
    assert table.returncode == 0 and "healthy-noop" in table.stdout and "ok" in table.stdout


def test_unknown_scenario_is_a_clear_error() -> None:
    done = run_program(str(BIN), "drill", "no-such-drill")
    assert done.returncode == 2 and "no-such-drill" in done.stderr
