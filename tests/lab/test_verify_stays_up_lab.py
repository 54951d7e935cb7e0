"""A restart is verified by the unit staying up, not by its being active at each look: a
service that crashes 1.5 s after each start, which systemd restarts 100 ms later
(Restart=on-failure), is active at almost every look a second apart. Its verification counted
those looks as up and passed the fix as done while systemd restarted it again and again (and
the knowledge base learned a fix that fixed nothing). Real systemd in the fault lab."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.executor import Executor
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import Database, IncidentStore
from tests.lab.daemon_runner import QUIET_HOST_WIDE

pytestmark = pytest.mark.lab
HOST = "sdtest"
#: no start limit: it never ends failed, it only keeps crashing
CRASHING = """\
[Unit]
StartLimitIntervalSec=0

[Service]
ExecStart=/bin/sh -c 'sleep 1.5; exit 1'
Restart=on-failure
"""


def test_a_restart_of_a_unit_systemd_keeps_restarting_is_no_fix(tmp_path: Path) -> None:
    with Sandbox() as sb:
        apply(sb, "install_unit", {"name": "app.service", "text": CRASHING})
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                            autonomy_level="auto-safe", thresholds=QUIET_HOST_WIDE,
                            safety={"verify_settle_seconds": 3, "verify_timeout": 8})
        store = IncidentStore(Database(settings.db_path))
        finding = Finding(HOST, "failed_unit", "app.service", Severity.CRITICAL, "failed")
        (incident,) = store.record_check(HOST, [finding], {"failed_unit"}).opened
        executor = Executor(settings, store, {HOST: SandboxTransport(sb)})
        action = asyncio.run(executor.propose(HOST, "restart_unit", {"unit": "app.service"},
                                              incident_id=incident))
        assert action.state == "approved", action.reason
        done = asyncio.run(executor.run(action.id))
        assert done.state == "failed", done.reason
        # said as what the last look saw: a restart between looks, or systemd restarting it
        # then (which look comes last is the machine's timing)
        assert ("app.service did not stay up" in done.reason
                and "systemd restarted it: NRestarts" in done.reason) or \
            "app.service is not active (activating/auto-restart)" in done.reason, done.reason
        # the finding was gone at each look: no check resolves the incident behind a person
        assert store.get(incident, history=0).state != "resolved"
