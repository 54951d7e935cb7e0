"""A service whose unit file, or a drop-in of it, was edited on disk after systemd loaded it,
read by a real check of the fault lab's systemd (one remote script, as an SSH host is
checked, or command by command): a warning naming it until ``systemctl daemon-reload``."""

from __future__ import annotations

import asyncio

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.monitor.rules import RuleContext, evaluate

pytestmark = pytest.mark.lab

UNIT = "edited.service"
PATH = f"/etc/systemd/system/{UNIT}"
DROP_IN = f"/etc/systemd/system/{UNIT}.d"
TEXT = """\
[Unit]
Description=A service an admin edits

[Service]
ExecStart=/bin/sleep infinity
"""


class Scripted(SandboxTransport):
    def __init__(self, sandbox: Sandbox, one_round_trip: bool) -> None:
        super().__init__(sandbox)
        self.one_round_trip = one_round_trip


def _stale(collector: Collector, settings: Settings) -> list[Finding]:
    snapshot = asyncio.run(collector.collect())
    assert "restarts" not in snapshot.errors, snapshot.errors
    findings, judged = evaluate(RuleContext(snapshot, settings.thresholds))
    assert "unit_needs_reload" in judged  # nothing found is a verdict: an incident resolves
    return [f for f in findings if f.rule == "unit_needs_reload"]


def _reload(sandbox: Sandbox) -> None:
    sandbox.exec(["systemctl", "daemon-reload"], check=True)


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_a_service_edited_without_a_daemon_reload_is_a_warning_until_the_reload(
        sandbox: Sandbox, lab_settings: Settings, one_round_trip: bool) -> None:
    collector = Collector(Scripted(sandbox, one_round_trip), lab_settings)
    sandbox.write_file(PATH, TEXT)
    # a drop-in directory there when systemd loads the unit: one made later it does not see
    # until a reload (it caches where unit files are), so it says nothing of it either
    sandbox.exec(["mkdir", "-p", DROP_IN], check=True)
    sandbox.write_file(f"{DROP_IN}/override.conf", "[Service]\nNice=5\n")
    _reload(sandbox)
    sandbox.exec(["systemctl", "start", UNIT], check=True)
    try:
        assert _stale(collector, lab_settings) == []  # running what its file says
        sandbox.write_file(PATH, TEXT + "Environment=MODE=new\n")
        [found] = _stale(collector, lab_settings)
        assert (found.subject, found.severity) == (UNIT, Severity.WARNING)
        assert "`systemctl daemon-reload` loads the new one" in found.summary
        _reload(sandbox)
        assert _stale(collector, lab_settings) == []
        # an edited drop-in changes the definition as much as the file does
        sandbox.write_file(f"{DROP_IN}/override.conf", "[Service]\nNice=7\n")
        assert [f.subject for f in _stale(collector, lab_settings)] == [UNIT]
        _reload(sandbox)
        assert _stale(collector, lab_settings) == []
    finally:
        sandbox.exec(["systemctl", "stop", UNIT])
        sandbox.exec(["rm", "-rf", "--", PATH, DROP_IN])
        _reload(sandbox)
