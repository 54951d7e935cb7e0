"""A unit whose command is a shell given a script (``sh -c "systemctl poweroff"``), or another
interpreter given its program (``python3 -c "os.system('systemctl reboot')"``), is judged by
the script's words, on real systemd 252: its restart waits for a person, or is refused, as a
unit whose command is ``systemctl poweroff`` itself is, while a service merely started through
``sh -c 'exec ...'`` is still restarted on its own."""

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
HOST = "shell-lab"
SLEEPER = "ExecStart=/bin/sleep infinity\n"
#: unit -> (its [Service] lines, the script's words the refusal names)
POWERING = {
    "stop-sh.service": (f'{SLEEPER}ExecStop=/bin/sh -c "systemctl poweroff"\n',
                        "systemctl poweroff"),
    "stop-bash.service": (f"{SLEEPER}ExecStop=/bin/bash -c 'systemctl poweroff'\n",
                          "systemctl poweroff"),
    "pre-shec.service": (f'ExecStartPre=/bin/sh -ec "test -d /run && reboot"\n{SLEEPER}',
                         "reboot"),
    "stop-env.service": (f'{SLEEPER}ExecStop=/usr/bin/env sh -c "poweroff"\n', "poweroff"),
    "post-envbash.service": (f"{SLEEPER}ExecStopPost=/usr/bin/env bash -c 'sleep 1; reboot'\n",
                             "reboot"),
    # another interpreter given its program on the command line
    "stop-python.service": (f"{SLEEPER}ExecStop=/usr/bin/python3 -c \"import os; "
                            f"os.system('systemctl reboot')\"\n", "systemctl reboot"),
    "stop-perl.service": (f'{SLEEPER}ExecStop=/usr/bin/perl -e "system(q(halt))"\n', "halt"),
    # "@": the word after the program is the name it runs under, which systemctl show
    # prints as argv[0] ("stopper"); what runs is its path=, /bin/sh
    "stop-at-sh.service": (f'{SLEEPER}ExecStop=@/bin/sh stopper -c "systemctl poweroff"\n',
                           "systemctl poweroff"),
}
#: a power program run under another name: systemctl show prints "halter" as its argv[0]
RENAMED = "[Service]\nExecStart=/bin/sleep infinity\nExecStop=@/usr/bin/systemctl halter halt\n"
PLAIN = "[Service]\nExecStart=/bin/sh -c 'exec /bin/sleep infinity'\n"
#: an interpreter given a script file: the words after the file are the script's own
#: arguments, its -c one among them, never code the interpreter runs
SCRIPT_FILES = {
    "ups-watch.service": "ExecStart=/usr/bin/python3 /opt/ups/watch.py -c /etc/ups.conf "
                         "--on-low-battery poweroff\n",
    "maint.service": "ExecStart=/bin/sh /opt/maint/run.sh -c /etc/maint.conf --then reboot\n",
}


@pytest.fixture(scope="module")
def lab() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        for name, (lines, _) in POWERING.items():
            apply(sb, "install_unit", {"name": name, "text": f"[Service]\n{lines}"})
        apply(sb, "install_unit", {"name": "wrapped.service", "text": PLAIN})
        for name, lines in SCRIPT_FILES.items():
            apply(sb, "install_unit", {"name": name, "text": f"[Service]\n{lines}"})
        apply(sb, "install_unit", {"name": "renamed.service", "text": RENAMED})
        sb.exec(["systemctl", "daemon-reload"], check=True)
        apply(sb, "start_unit", {"name": "wrapped.service"})
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


def test_systemd_prints_a_shell_script_without_its_quotes(lab: Sandbox) -> None:
    shown = lab.exec(["systemctl", "show", "-p", "ExecStop", "--", "stop-sh.service"],
                     check=True).stdout
    assert "argv[]=/bin/sh -c systemctl poweroff ;" in shown


@pytest.mark.parametrize("unit", sorted(POWERING))
def test_a_unit_whose_shell_script_powers_off_is_never_restarted_on_its_own(
        executor, lab: Sandbox, unit: str) -> None:
    runs = POWERING[unit][1]
    for kind in ("restart_unit", "start_unit"):
        action = propose_about(executor, unit, kind, unit=unit)
        # old: the shell was the program and its script mere arguments: approved, low risk,
        # and the restart's stop (or its start) would have powered the host off
        assert action.state in ("refused", "pending") and action.risk == "high", action
        assert f"its script runs {runs}" in action.reason, action.reason
    assert lab.exec(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"


def test_a_service_started_through_sh_c_exec_is_still_restarted_on_its_own(executor) -> None:
    action = propose_about(executor, "wrapped.service", "restart_unit", unit="wrapped.service")
    assert (action.state, action.risk) == ("approved", "low"), action


@pytest.mark.parametrize("unit", sorted(SCRIPT_FILES))
def test_a_script_files_own_options_are_no_program_given_on_the_command_line(
        executor, unit: str) -> None:
    action = propose_about(executor, unit, "restart_unit", unit=unit)
    # old: the -c after the script file was read as the interpreter's, and the words after
    # it as a program that powers off: the restart was refused
    assert (action.state, action.risk) == ("approved", "low"), action


def test_a_power_program_run_under_another_name_is_never_restarted_on_its_own(
        executor, lab: Sandbox) -> None:
    shown = lab.exec(["systemctl", "show", "-p", "ExecStop", "--", "renamed.service"],
                     check=True).stdout
    assert "path=/usr/bin/systemctl ; argv[]=halter halt ;" in shown
    action = propose_about(executor, "renamed.service", "restart_unit", unit="renamed.service")
    # old: its argv[0], "halter", was judged as the program: approved, low risk, and the
    # restart's stop would have halted the host
    assert action.state in ("refused", "pending") and action.risk == "high", action
    assert "systemctl" in action.reason and "halt" in action.reason, action.reason
