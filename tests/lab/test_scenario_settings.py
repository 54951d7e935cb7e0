"""A drill's own settings (``[settings]``): checked when the file loads, applied to its checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import LabError
from ai_sysadmin.lab.scenario import load_scenario, parse_scenario

HEAD = 'name = "tls"\ndescription = "d"\n'


def test_a_drill_watches_the_certificates_it_names(tmp_path: Path) -> None:
    base = Settings(ai_name="labtest", state_dir=tmp_path, certificates=["/etc/other.pem"])
    drill = load_scenario("expired-tls-cert")

    settings = drill.settings_over(base)

    assert settings.certificates == ["/etc/lab-tls/shop.pem"]
    # everything else is the caller's
    assert (settings.ai_name, settings.state_dir) == ("labtest", tmp_path)
    assert base.certificates == ["/etc/other.pem"]


def test_a_drill_without_settings_keeps_the_callers(tmp_path: Path) -> None:
    base = Settings(ai_name="labtest", state_dir=tmp_path)
    assert load_scenario("core-dump").settings_over(base) is base


@pytest.mark.parametrize(("table", "problem"), [
    ('certificates = ["relative.pem"]', "must be an absolute path"),
    ("no_such_setting = 1", "no_such_setting"),
    ("check_interval = -5", "check_interval"),
    ("thresholds = {zombie_processes = 3}", "own \\[thresholds\\] table"),
])
def test_a_bad_setting_is_refused_when_the_file_loads(table: str, problem: str) -> None:
    with pytest.raises(LabError, match=problem):
        parse_scenario(f"{HEAD}[settings]\n{table}\n", "tls.toml")
