"""``ai-sysadmin drill`` as an operator runs it."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_a_drill_judges_the_lab_not_the_operators_certificates_and_thresholds(
        tmp_path: Path) -> None:
    """A config watching a certificate the lab has not got (it has its own /run) and a disk
    threshold the lab's file systems pass: the drills check the lab as their scenarios say,
    with the defaults and their own settings, and pass."""
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\nstate_dir = "{tmp_path / "state"}"\n'
                      'certificates = ["/run/operator-tls/site.pem"]\n'
                      "[thresholds]\ndisk_warn_percent = 1\ndisk_critical_percent = 2\n"
                      "clear_margin_percent = 0\n")
    done = run_program(str(BIN), "--config", str(config), "drill", "healthy-noop", "--json",
                       timeout=120)
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)
    assert result["ok"], result
    assert [f for f in result["findings"] if f["rule"] not in HOST_WIDE_RULES] == []


def test_the_operators_journal_first_lines_does_not_hide_a_drills_journal(
        tmp_path: Path) -> None:
    """``journal_first_lines`` says how much of a host's journal its very first check reads;
    a drill's checks read the lab's journal from before the fault instead, as a daemon reads
    on from its position, so the journal's rules see the fault whatever it is set to (0:
    none of it; any other value hid what came before its last entries)."""
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\nstate_dir = "{tmp_path / "state"}"\n'
                      "journal_first_lines = 0\n")
    for drill in ("journal-error-burst", "broken-unit-file-unreferenced", "journal-flood"):
        done = run_program(str(BIN), "--config", str(config), "drill", drill, "--json",
                           timeout=120)
        (result,) = json.loads(done.stdout)
        assert result["scenario"] == drill and result["ok"], result
        assert done.returncode == 0, done.stderr
