from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ai_sysadmin import logs as logfiles
from ai_sysadmin.cli.dispatch import TOOLS, dispatch
from ai_sysadmin.config import short_hostname
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import Database, IncidentStore
from tests.conftest import BIN, run_program


def test_name_dispatch_maps_tools_to_commands() -> None:
    assert dispatch("/usr/bin/hal-check", ["--json"]) == ("hal-check", ["check", "--json"])
    assert dispatch("/x/my-box-issues", ["show", "3"]) == ("my-box-issues", ["issues", "show", "3"])
    assert dispatch("ai-sysadmin", ["check"]) == ("ai-sysadmin", ["check"])


def a_failed_unit(tmp_path: Path, config_file) -> None:
    """The config of a host whose systemctl lists one failed unit, stub-broken.service: the
    check has a finding on any machine."""
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(
        '#!/bin/sh\n'
        'if [ "$1" = list-units ]; then echo \'[{"unit": "stub-broken.service", '
        '"load": "loaded", "active": "failed", "sub": "failed", "description": "stub"}]\'; '
        'elif [ "$1" = show ]; then :; else echo "[]"; fi\n')
    systemctl.chmod(0o755)
    config_file(f'ai_name = "hal"\n[programs]\nsystemctl = "{systemctl}"\n')


def test_check_json_reports_host_name_and_exit_code(cli, tmp_path: Path, config_file) -> None:
    a_failed_unit(tmp_path, config_file)
    code, out, _ = cli("check", "--json")
    report = json.loads(out)
    assert code == 1  # findings
    assert report["name"] == "hal"
    assert report["host"] == short_hostname()
    assert report["healthy"] is False
    [failed] = [f for f in report["findings"] if f["rule"] == "failed_unit"]
    assert (failed["host"], failed["rule"], failed["subject"], failed["severity"]) == (
        short_hostname(), "failed_unit", "stub-broken.service", "critical")
    assert failed["summary"] == "stub-broken.service has failed"
    assert "stub-broken.service: load=loaded active=failed sub=failed" in failed["evidence"]
    # stored (no --no-store): the failed unit is now an open issue
    code, out, _ = cli("issues", "list", "--json")
    assert code == 0
    [issue] = [i for i in json.loads(out) if i["subject"] == "stub-broken.service"]
    assert (issue["rule"], issue["state"]) == ("failed_unit", "open")
    assert issue["id"] in report["incidents_opened"]


def test_installed_name_links_run_the_same_program(tmp_path: Path, config_file) -> None:
    path = config_file('ai_name = "hal"\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {"AI_SYSADMIN_CONFIG": str(path), "AI_SYSADMIN_STATE_DIR": str(tmp_path / "st")}
    done = run_program(str(BIN), "commands", "install", "--bin-dir", str(bin_dir), env=env)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in bin_dir.iterdir()) == sorted(f"hal-{t}" for t in TOOLS)
    via_link = run_program(str(bin_dir / "hal-check"), "--json", env=env)
    direct = run_program(str(BIN), "check", "--json", "--no-store", env=env)
    linked, plain = json.loads(via_link.stdout), json.loads(direct.stdout)
    assert (linked["name"], linked["host"]) == ("hal", plain["host"])
    # each exits as its report says; not one code for both: two looks at this busy machine
    # a second apart may differ (its memory pressure, load), as any host's may
    for done, report in ((via_link, linked), (direct, plain)):
        said = 1 if report["findings"] else 0 if report["healthy"] else 2
        assert done.returncode == said, [(f["rule"], f["summary"]) for f in report["findings"]]
    banner = run_program(str(bin_dir / "hal-check"), env=env)
    assert banner.stdout.startswith("hal · health check of")
    help_text = run_program(str(bin_dir / "hal-issues"), "--help", env=env)
    assert "hal-issues" in help_text.stdout


def _seed(tmp_path: Path) -> int:
    store = IncidentStore(Database(tmp_path / "state" / "state.db"))
    finding = Finding("web1", "disk_space", "/var", Severity.CRITICAL, "/var is 97% full",
                      ("/var (ext4 on /dev/sda2): 97 of 100 bytes used",))
    return store.record_check("web1", [finding], {"disk_space"}).opened[0]


def test_issues_list_show_resolve_close(cli, tmp_path: Path) -> None:
    incident_id = _seed(tmp_path)
    code, out, _ = cli("issues", "list", "--json")
    assert code == 0
    (listed,) = json.loads(out)
    assert (listed["id"], listed["rule"], listed["subject"], listed["state"]) == (
        incident_id, "disk_space", "/var", "open")
    code, out, _ = cli("issues", "show", str(incident_id))
    assert code == 0 and "/var is 97% full" in out and "> /var (ext4" in out
    code, out, _ = cli("issues", "resolve", str(incident_id), "--json")
    assert code == 0 and json.loads(out)["state"] == "resolved"
    code, out, _ = cli("issues", "close", str(incident_id), "--reason", "disk replaced")
    assert code == 0 and "closed" in out
    code, out, _ = cli("issues", "list", "--json")
    assert json.loads(out) == []
    code, out, _ = cli("issues", "list", "--all", "--json")
    assert json.loads(out)[0]["events"] == [] and json.loads(out)[0]["state"] == "closed"


def test_unknown_incident_is_a_clear_error(cli, tmp_path: Path) -> None:
    _seed(tmp_path)
    code, _, err = cli("issues", "show", "999")
    assert code == 2 and "no incident 999" in err
    code, _, err = cli("issues", "resolve", "1")
    code, _, err = cli("issues", "resolve", "1")
    assert code == 0


def test_logs_reads_structured_records_with_the_name(cli, tmp_path: Path) -> None:
    log_dir = tmp_path / "state" / "logs"
    logfiles.configure(log_dir, "hal")
    logging.getLogger("ai_sysadmin.decisions").info(
        "incident %d opened", 7, extra={"host": "web1"})
    assert oct(os.stat(log_dir / "decisions.jsonl").st_mode & 0o777) == "0o640"
    code, out, _ = cli("logs", "decisions", "--json")
    (record,) = json.loads(out)
    assert (record["name"], record["msg"], record["host"]) == ("hal", "incident 7 opened", "web1")
    code, out, _ = cli("logs", "decisions")
    assert "[hal] info: incident 7 opened host=web1" in out
    code, _, err = cli("logs", "nonsense")
    assert code == 2 and "orchestrator" in err and err.rstrip().endswith("audit")
    # a cut or hand-edited file: each odd line is shown as it is, the others as records
    with (log_dir / "decisions.jsonl").open("a") as log_file:
        log_file.write('[1, 2]\n"text"\nnull\n{"ts": "yesterday", "msg": "odd time"}\n'
                       '{"ts": 1e300, "msg": "far time"}\n{"msg": "cut\n')
    code, out, err = cli("logs", "decisions")
    assert code == 0, err
    lines = out.splitlines()
    assert "[hal] info: incident 7 opened host=web1" in lines[0]
    assert [line.split(": ", 1)[1] for line in lines[1:]] == [
        "[1, 2]", '"text"', "null", "odd time", "far time", '{"msg": "cut']
    assert all(line.startswith("? [") for line in lines[1:])
    # NaN and Infinity are no JSON: such a line is shown as it is, and --json stays JSON
    with (log_dir / "decisions.jsonl").open("a") as log_file:
        log_file.write('{"ts": Infinity, "msg": "never"}\n')
    code, out, err = cli("logs", "decisions", "--json", "-n", "1")
    assert code == 0, err
    (raw,) = json.loads(out, parse_constant=lambda name: {"not json": name})
    assert raw["msg"] == '{"ts": Infinity, "msg": "never"}' and raw["ts"] is None


def test_check_json_names_the_incident_it_reopened(cli, tmp_path: Path, config_file) -> None:
    """`check --json` names the incidents the check reopened (a problem back after it was
    resolved), beside those it opened and resolved."""
    a_failed_unit(tmp_path, config_file)
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
