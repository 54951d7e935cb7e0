"""A unit's command line that prints as properties, on real systemd 252: ``systemctl show``
prints an ``Exec*`` argument's line breaks as they are, so the lines after one read as the
unit's (or another unit's) properties. The policy never judges such output: the facts count
as unread, so a start waits for a person and a stop is refused."""

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
        assert "cannot be read unambiguously" in action.reason, action.reason


def test_a_plain_unit_is_still_restarted_on_its_own(executor) -> None:
    action = propose_about(executor, "plain.service", "restart_unit", unit="plain.service")
    assert (action.state, action.risk) == ("approved", "low"), action
