"""A unit's command line that prints as properties, on real systemd 252: ``systemctl show``
prints an ``Exec*`` argument's line breaks as they are, so the lines after one read as the
unit's (or another unit's) properties. The policy reads a unit's plain properties apart from
its command lines, so a forged line can add commands to judge and hide nothing; and a unit
whose command holds a line break (a ``python3 -c`` script) is judged by what it is."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.executor import Executor
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import Action, Database, IncidentStore

pytestmark = pytest.mark.lab
HOST = "showlab"
#: ExecStart's argument (C escapes, which systemd unescapes) ends its own block of properties
#: and opens one that says the unit does nothing on success; the last forged line takes the
#: rest of the real command line, so that every line still looks whole
FORGED = ('ExecStart=/bin/echo "x\\n\\nId=forged.service\\nSuccessAction=none\\n'
          'ExecStartPre={ path=/bin/true ; argv[]=/bin/true"\n')


@pytest.fixture(scope="module")
def lab() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        apply(sb, "install_unit", {"name": "forged.service", "text": (
            "[Unit]\nSuccessAction=reboot\n[Service]\nType=oneshot\n" + FORGED)})
        apply(sb, "install_unit", {"name": "plain.service", "text": (
            "[Service]\nExecStart=/bin/sleep infinity\n")})
        sb.exec(["systemctl", "daemon-reload"], check=True)
        yield sb


@pytest.fixture
def executor(lab: Sandbox, tmp_path: Path) -> Executor:
    settings = Settings(ai_name="labtest", state_dir=tmp_path, autonomy_level="auto-full")
    return Executor(settings, IncidentStore(Database(settings.db_path)),
                    {HOST: SandboxTransport(lab)})


def propose_about(executor: Executor, about: str, kind: str, **params: object) -> Action:
    finding = Finding(HOST, "failed_unit", about, Severity.CRITICAL, f"{about} failed")
    executor.store.record_check(HOST, [finding], {"failed_unit"})
    incident_id = next(i.id for i in executor.store.incidents(None) if i.subject == about)
    return asyncio.run(executor.propose(HOST, kind, params, incident_id=incident_id))


def test_systemd_prints_the_line_break_of_a_command_as_it_is(lab: Sandbox) -> None:
    shown = lab.exec(["systemctl", "show", "-p", "Id,SuccessAction,ExecStart", "--",
                      "forged.service"], check=True).stdout
    assert "\nId=forged.service\nSuccessAction=none\n" in shown
    assert "SuccessAction=reboot" in shown


def test_a_unit_that_reboots_is_not_restarted_on_forged_properties(executor) -> None:
    for kind in ("start_unit", "restart_unit"):
        action = propose_about(executor, "forged.service", kind, unit="forged.service")
        # old: the forged block's SuccessAction=none came first: approved, low risk, and
        # its start would have rebooted the host
        assert action.state != "approved" and action.risk == "high", action
        assert "ends in reboot (SuccessAction=reboot)" in action.reason, action.reason


def test_a_unit_whose_command_holds_a_line_break_is_judged_by_its_commands(
        lab: Sandbox, executor) -> None:
    apply(lab, "install_unit", {"name": "script.service", "text": (
        "[Service]\nExecStart=/usr/bin/python3 -c 'import time\\ntime.sleep(1e9)'\n"
        "ExecStopPost=/bin/systemctl \"x\\nExecStart={ path=/bin/true ; argv[]=/bin/true\" "
        "reboot\n")})
    lab.exec(["systemctl", "daemon-reload"], check=True)
    action = propose_about(executor, "script.service", "restart_unit", unit="script.service")
    # the reboot after the forged line is still read as the stop's: a person decides
    assert action.state != "approved" and action.risk == "high", action
    assert "reboot" in action.reason, action.reason
    apply(lab, "install_unit", {"name": "script2.service", "text": (
        "[Service]\nExecStart=/usr/bin/python3 -c 'import time\\ntime.sleep(1e9)'\n")})
    lab.exec(["systemctl", "daemon-reload"], check=True)
    action = propose_about(executor, "script2.service", "restart_unit", unit="script2.service")
    assert (action.state, action.risk) == ("approved", "low"), action


def test_a_plain_unit_is_still_restarted_on_its_own(executor) -> None:
    action = propose_about(executor, "plain.service", "restart_unit", unit="plain.service")
    assert (action.state, action.risk) == ("approved", "low"), action
