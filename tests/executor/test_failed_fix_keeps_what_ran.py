"""A fix whose second command fails keeps what its commands said, the first's too: a
reset-failed ran, then the start failed, and ``approve show`` shows both, masked, as it shows
the commands of a fix that succeeded. The real CLI, in child processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import ActionStore, IncidentStore
from tests.conftest import BIN, run_program

#: systemctl on the test's host: app.service failed, enabled (a reset-failed of it starts it
#: again); its reset-failed works, its start fails saying a secret of the unit's
SYSTEMCTL = """#!/bin/sh
case "$1" in
show) printf 'Id=app.service\\nNames=app.service\\nLoadState=loaded\\nActiveState=failed\\n\
WantedBy=multi-user.target\\nUnitFileState=enabled\\n';;
list-units) echo '[{"unit":"app.service","load":"loaded","active":"failed","sub":"failed"}]';;
reset-failed) echo "reset $3";;
start) echo "Job for $3 failed: DB_PASSWORD=hunter2secret rejected" >&2; exit 1;;
esac
"""


def test_a_fix_whose_start_fails_after_its_reset_keeps_what_both_said(
        tmp_path: Path, config_file: Callable[[str], Path], settings: Settings,
        store: IncidentStore) -> None:
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(SYSTEMCTL)
    systemctl.chmod(0o755)
    config_file(f'[programs]\nsystemctl = "{systemctl}"\n'
                "[safety]\nverify_settle_seconds = 0\nverify_timeout = 1\n")
    settings = settings.model_copy(update={"programs": settings.programs.model_copy(
        update={"systemctl": str(systemctl)})})
    host = short_hostname()
    failed_unit = Finding(host, "failed_unit", "app.service", Severity.CRITICAL, "failed")
    incident_id = store.record_check(host, [failed_unit], {"failed_unit"}).opened[0]
    action = asyncio.run(Executor(settings, store, {host: LocalTransport(host)}).propose(
        host, "reset_failed_unit", {"unit": "app.service"}, incident_id=incident_id))
    assert action.state == "pending", action.reason
    assert action.plan["commands"] == [["systemctl", "reset-failed", "--", "app.service"],
                                       ["systemctl", "start", "--", "app.service"]]

    done = run_program(str(BIN), "approve", "approve", str(action.id))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "hunter2secret" not in done.stdout + done.stderr

    failed = ActionStore(store.db).get(action.id)
    assert failed.state == "failed"
    assert failed.result is not None
    assert failed.result["error"].startswith("systemctl start -- app.service exited 1: ")
    reset, start = failed.result["commands"]
    assert reset == {"argv": ["systemctl", "reset-failed", "--", "app.service"],
                     "returncode": 0, "stdout": "reset app.service\n", "stderr": ""}
    assert start["argv"] == ["systemctl", "start", "--", "app.service"]
    assert start["returncode"] == 1 and start["stdout"] == ""
    assert start["stderr"] == "Job for app.service failed: DB_PASSWORD=[redacted] rejected\n"

    shown = run_program(str(BIN), "approve", "show", str(action.id), "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["result"] == failed.result
    shown = run_program(str(BIN), "approve", "show", str(action.id))
    assert "result: " in shown.stdout and "reset app.service" in shown.stdout
    assert "hunter2secret" not in shown.stdout
