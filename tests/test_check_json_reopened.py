"""`check --json` names the incidents the check reopened (a problem back after it was
resolved), beside those it opened and resolved."""

from __future__ import annotations

import json
from pathlib import Path


def test_check_json_names_the_incident_it_reopened(cli, tmp_path: Path, config_file) -> None:
    # a systemctl that lists one failed unit: the check has a finding on any machine
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(
        '#!/bin/sh\n'
        'if [ "$1" = list-units ]; then echo \'[{"unit": "stub-broken.service", '
        '"load": "loaded", "active": "failed", "sub": "failed", "description": "stub"}]\'; '
        'elif [ "$1" = show ]; then :; else echo "[]"; fi\n')
    systemctl.chmod(0o755)
    config_file(f'ai_name = "hal"\n[programs]\nsystemctl = "{systemctl}"\n')
    first = json.loads(cli("check", "--json")[1])
    [incident] = [i for i in json.loads(cli("issues", "list", "--json")[1])
                  if i["subject"] == "stub-broken.service"]
    assert incident["id"] in first["incidents_opened"]
    assert first["incidents_reopened"] == []
    # a person calls it fixed; the next check finds it again
    assert cli("issues", "resolve", str(incident["id"]))[0] == 0
    code, out, _ = cli("check", "--json")
    again = json.loads(out)
    assert code == 1
    assert again["incidents_reopened"] == [incident["id"]]
    assert incident["id"] not in again["incidents_opened"]
    [shown] = [i for i in json.loads(cli("issues", "list", "--json")[1])
               if i["id"] == incident["id"]]
    assert shown["state"] == "reopened"
