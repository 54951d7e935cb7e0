"""The host-side collector, run into a lab exactly as into any host."""

from __future__ import annotations

import asyncio

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.rules import RULES_BY_NAME, RuleContext, evaluate

pytestmark = pytest.mark.lab

LONG_COMMAND = "while :; do sleep 1; done # " + "x" * 120


def test_every_section_collects_and_every_rule_judges(
    sandbox: Sandbox, lab_settings: Settings
) -> None:
    snapshot = asyncio.run(Collector(SandboxTransport(sandbox), lab_settings).collect())
    assert snapshot.errors == {}
    assert snapshot.host == "sdtest" and snapshot.systemd_running
    assert any(u.name == "systemd-journald.service" for u in snapshot.units or [])
    assert {m.target for m in snapshot.mounts or []} >= {"/", "/run", "/tmp"}
    _findings, judged = evaluate(RuleContext(snapshot, lab_settings.thresholds))
    assert judged == set(RULES_BY_NAME)


def test_command_lines_do_not_depend_on_the_callers_terminal(
    sandbox: Sandbox, lab_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.exec(["systemd-run", "--unit=long-cmdline.service", "sh", "-c", LONG_COMMAND],
                 check=True)
    monkeypatch.setenv("COLUMNS", "80")
    try:
        snapshot = asyncio.run(Collector(SandboxTransport(sandbox), lab_settings).collect())
    finally:
        sandbox.exec(["systemctl", "stop", "long-cmdline.service"])
    commands = [p.command for p in snapshot.processes or []]
    assert any(LONG_COMMAND in c for c in commands), commands
