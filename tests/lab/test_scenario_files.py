"""Scenario files are checked when loaded: no lab (and no root) needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_sysadmin.config import Thresholds
from ai_sysadmin.errors import LabError, NotFoundError
from ai_sysadmin.lab import injectors
from ai_sysadmin.lab.scenario import Expectation, list_scenarios, load_scenario, parse_scenario
from ai_sysadmin.monitor.findings import Finding, Severity

GOOD = """
name = "sample"
description = "d"
[thresholds]
runaway_min_seconds = 2
[[inject]]
action = "mount_tmpfs"
path = "/srv/x"
nr_inodes = 100
[[expect]]
rule = "disk_space"
subject = "/srv/x"
"""


def test_every_shipped_scenario_loads() -> None:
    scenarios = list_scenarios()
    assert len(scenarios) >= 8
    for scenario in scenarios:
        assert load_scenario(scenario.name) == scenario
        assert scenario.description


def test_steps_take_flat_or_nested_parameters() -> None:
    flat = parse_scenario(GOOD, "sample.toml")
    table = 'params = {path = "/srv/x", nr_inodes = 100}'
    nested = parse_scenario(GOOD.replace('path = "/srv/x"\nnr_inodes = 100', table), "sample.toml")
    assert flat.inject == nested.inject
    assert flat.inject[0].params == {"path": "/srv/x", "nr_inodes": 100}


def test_threshold_overrides_apply_over_the_base() -> None:
    scenario = parse_scenario(GOOD, "sample.toml")
    merged = scenario.thresholds_over(Thresholds(disk_warn_percent=50))
    assert (merged.runaway_min_seconds, merged.disk_warn_percent) == (2, 50)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("nr_inodes = 100", "nr_inode = 100"), "unknown key 'nr_inode'"),
        (("nr_inodes = 100", 'nr_inodes = "many"'), "nr_inodes"),
        (('action = "mount_tmpfs"', 'action = "format_disk"'), "unknown action 'format_disk'"),
        (('rule = "disk_space"', 'rule = "disk_spcae"'), "unknown rule 'disk_spcae'"),
        (("runaway_min_seconds = 2", "runaway_min_secs = 2"), "runaway_min_secs"),
        (("runaway_min_seconds = 2", "runaway_min_seconds = -1"), "runaway_min_seconds"),
        (('subject = "/srv/x"', 'subject_prefix = "/srv"\nsubject = "/srv/x"'), "exactly one"),
        (('description = "d"', 'descripton = "d"'), "unknown key 'descripton'"),
        (('name = "sample"', 'name = "sample'), "TOML syntax error"),
        # a drill that would wait for ever: nan passes no deadline, inf is none
        (('description = "d"', 'description = "d"\ndetect_timeout = inf'),
         "key 'detect_timeout': Input should be a finite number"),
        (('description = "d"', 'description = "d"\nobserve_seconds = nan'),
         "key 'observe_seconds': Input should be a finite number"),
        (("[[expect]]", '[[inject]]\naction = "wait_unit"\nname = "x.service"\n'
                        'value = "active"\ntimeout = nan\n[[expect]]'),
         "action 'wait_unit': key 'timeout': Input should be a finite number"),
        (("[[expect]]", '[[inject]]\naction = "wait_listening"\nport = 80\ntimeout = inf\n'
                        "[[expect]]"),
         "action 'wait_listening': key 'timeout': Input should be a finite number"),
    ],
)
def test_a_bad_file_is_refused_with_file_and_key(change: tuple[str, str], message: str) -> None:
    with pytest.raises(LabError, match="sample.toml") as caught:
        parse_scenario(GOOD.replace(*change), "sample.toml")
    assert message in str(caught.value)
    assert "Value error" not in str(caught.value)  # pydantic's words before ours


def test_file_name_and_scenario_name_must_agree(tmp_path: Path) -> None:
    (tmp_path / "other.toml").write_text(GOOD)
    with pytest.raises(LabError, match="differs from the file name"):
        load_scenario(tmp_path / "other.toml")
    (tmp_path / "sample.toml").write_text(GOOD)
    assert load_scenario(str(tmp_path / "sample.toml")).name == "sample"


def test_unknown_scenario_name() -> None:
    with pytest.raises(NotFoundError, match="healthy-noop"):
        load_scenario("no-such-drill")


def test_expectation_by_prefix_and_evidence() -> None:
    expected = Expectation(rule="runaway_process", subject_prefix="pid:",
                           evidence_contains="while :; do :; done")
    spin = Finding("h", "runaway_process", "pid:52", Severity.WARNING, "s",
                   ("pid 52 cpu 99%: sh -c while :; do :; done",))
    other = Finding("h", "runaway_process", "pid:7", Severity.WARNING, "s", ("pid 7: java",))
    assert expected.matches(spin) and not expected.matches(other)
    assert str(expected) == "runaway_process pid:*"


def test_two_injectors_cannot_share_a_name() -> None:
    with pytest.raises(ValueError, match="two lab injectors"):
        injectors.injector("write_file")(lambda sb: None)
