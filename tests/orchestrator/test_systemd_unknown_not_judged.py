"""A check that could not ask systemd judges nothing of its units: only a fact says that
systemd does not run (no /run/systemd/system, systemctl's own words, no systemctl at all).
A systemctl that could not start for another reason (this machine out of processes, a
program that may not be run, a host that refused the login with whatever words) leaves the
host's failed units unknown, and an open failed-unit incident stays open.

Real checks of this machine, on either path (command by command, and one script as for an
SSH host), with a stand-in systemctl that lists a failed web.service; where systemd marks
that it is PID 1 (/run/systemd/system) is a directory of the test's."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from ai_sysadmin.config import Programs, Settings
from ai_sysadmin.errors import CommandRefused
from ai_sysadmin.hosts import transport as transport_module
from ai_sysadmin.hosts.transport import CommandResult, LocalTransport
from ai_sysadmin.orchestrator.checker import CheckReport, HostChecker
from ai_sysadmin.store import Database, IncidentStore

SYSTEMD_DIR = "/run/systemd/system"
#: systemd's answers on a host whose web.service failed
SYSTEMCTL = """#!/bin/sh
case "$1" in
list-units) echo '[{"unit":"web.service","load":"loaded","active":"failed","sub":"failed",\
"description":"web"}]';;
list-unit-files) echo '[{"unit_file":"web.service","state":"enabled","preset":null}]';;
show) printf 'Id=web.service\\nNRestarts=0\\nResult=exit-code\\nExecMainCode=1\\n\
ExecMainStatus=1\\nExecMainPID=0\\nRestart=no\\nNeedDaemonReload=no\\n\\n';;
esac
"""


class Booted(LocalTransport):
    """This machine as web1, where systemd is PID 1 while the directory ``booted`` exists
    (it stands for /run/systemd/system, in a command and in a check's script alike); its
    login refuses every script while ``refusal`` holds the words it says."""

    def __init__(self, booted: Path, one_round_trip: bool) -> None:
        super().__init__("web1")
        self.booted = booted
        self.one_round_trip = one_round_trip
        self.refusal_said: str | None = None

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(self.booted) if arg == SYSTEMD_DIR else arg for arg in argv)

    async def run_script(self, script: str, done: str, timeout: float,
                         answer_within: float | None = None) -> CommandResult:
        said = self.refusal_said
        if said is not None:
            # as SshTransport words a login shell that runs nothing
            raise CommandRefused(f"{self.host}: the login shell of monitor refuses to run "
                                 f"commands: it ended with exit 1 before running any, "
                                 f"saying: {said}", 1, said)
        return await self.run(["sh", "-c", script.replace(SYSTEMD_DIR, str(self.booted))],
                              timeout)


class Host:
    """web1's checker, its store and its stand-in systemctl."""

    def __init__(self, tmp_path: Path, one_round_trip: bool) -> None:
        self.systemctl = tmp_path / "systemctl"
        self.systemctl.write_text(SYSTEMCTL)
        self.systemctl.chmod(0o755)
        self.booted = tmp_path / "run-systemd-system"
        self.booted.mkdir()
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                            programs=Programs(systemctl=str(self.systemctl)))
        self.store = IncidentStore(Database(settings.db_path))
        self.transport = Booted(self.booted, one_round_trip)
        self.checker = HostChecker(self.transport, settings, self.store)

    def check(self) -> CheckReport:
        return asyncio.run(self.checker.check("interval"))

    def web_failed(self) -> str:
        (incident,) = [i for i in self.store.incidents(None) if i.rule == "failed_unit"]
        return incident.state

    def open_incident(self) -> None:
        report = self.check()
        assert report.snapshot.systemd_running is True and "failed_unit" in report.judged_rules
        assert self.web_failed() == "open"


@pytest.fixture
def fork_fails(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Programs whose start fails here as on a machine out of processes (fork's EAGAIN: the
    very trouble a check is for)."""
    failing: set[str] = set()
    real = asyncio.create_subprocess_exec

    async def spawn(program: str, *args: str, **kwargs: object) -> object:
        if program in failing:
            raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        return await real(program, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(transport_module.asyncio, "create_subprocess_exec", spawn)
    return failing


def _unknown(report: CheckReport, said: Sequence[str]) -> None:
    """The units were not collected, for the reason said, and none of their rules judged."""
    assert report.snapshot.systemd_running is None
    assert all(words in report.errors["units"] for words in said), report.errors
    for rule in ("failed_unit", "crash_loop", "unit_load_error", "unit_needs_reload"):
        assert rule not in report.judged_rules, rule


def test_a_systemctl_this_machine_cannot_fork_leaves_a_failed_unit_open(
        tmp_path: Path, fork_fails: set[str]) -> None:
    host = Host(tmp_path, one_round_trip=False)
    host.open_incident()
    fork_fails.add(str(host.systemctl))
    _unknown(host.check(), ["cannot start", "Resource temporarily unavailable"])
    assert host.web_failed() == "open"
    fork_fails.clear()
    host.check()
    assert host.web_failed() == "open"  # still failed, and known again


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "script"])
def test_a_systemctl_that_may_not_be_run_leaves_a_failed_unit_open(
        tmp_path: Path, one_round_trip: bool) -> None:
    """Not executable: EACCES here, exit 126 "Permission denied" in a script, where the
    script's guard has shown systemd running."""
    host = Host(tmp_path, one_round_trip)
    host.open_incident()
    host.systemctl.chmod(0o644)
    _unknown(host.check(), ["cannot start", "Permission denied"])
    assert host.web_failed() == "open"


@pytest.mark.parametrize("said", [
    "cannot start a session: this account is locked for maintenance",
    "This account is currently not available.",
])
def test_a_login_that_refuses_leaves_a_failed_unit_open_whatever_it_says(
        tmp_path: Path, said: str) -> None:
    host = Host(tmp_path, one_round_trip=True)
    host.open_incident()
    host.transport.refusal_said = said
    report = host.check()
    _unknown(report, [said])
    assert report.snapshot.refused is not None
    assert host.web_failed() == "open"


def test_a_systemctl_that_cannot_start_where_systemd_is_not_pid_1_is_no_systemd(
        tmp_path: Path, fork_fails: set[str]) -> None:
    """Command by command, a systemctl that could not start is asked about as the script's
    guard asks: where /run/systemd/system is gone, systemd does not run, a fact."""
    host = Host(tmp_path, one_round_trip=False)
    host.open_incident()
    fork_fails.add(str(host.systemctl))
    host.booted.rmdir()
    report = host.check()
    assert report.snapshot.systemd_running is False and "units" not in report.errors
    assert "systemd does not run here" in report.notes["units"]
    assert host.web_failed() == "resolved"


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "script"])
def test_no_systemctl_at_all_is_no_systemd(tmp_path: Path, one_round_trip: bool) -> None:
    host = Host(tmp_path, one_round_trip)
    host.open_incident()
    host.systemctl.unlink()
    report = host.check()
    assert report.snapshot.systemd_running is False and "units" not in report.errors
    assert host.web_failed() == "resolved"
