"""Command lines are any user's to choose, up to 128 KiB a process: a host whose processes carry
long ones (a local user's, or Java's class paths) is checked over SSH all the same, each
process with the beginning of its command line, which is all a check keeps of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.ssh import SshTransport

from .conftest import LabHost, wait_until
from .test_remote_collect import collect

#: long processes, each with one argument of nearly the most Linux takes (MAX_ARG_STRLEN)
PROCESSES = 24
ARGUMENT = "-Dclass.path=" + "x" * 130_000


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(ai_name="sshtest", state_dir=tmp_path / "state")


@pytest.mark.lab
def test_long_command_lines_cost_no_section_of_a_check(
        lab_host: LabHost, known_hosts: Path, settings: Settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ai_sysadmin.hosts import ssh as ssh_module

    # the reply's bound made small, as 512 such processes pass the real one (64 MiB)
    monkeypatch.setattr(ssh_module, "MAX_REPLY", 1024 * 1024)
    sb, host = lab_host.sandbox, lab_host.ssh
    # and one of them spins, as a runaway would: a check keeps the busiest processes
    sb.exec(["systemd-run", "--unit=long-args.service", "sh", "-c",
             f'for i in $(seq {PROCESSES - 1}); do sh -c "sleep 600; :" "$0" & done; '
             'nice -n 19 sh -c "while :; do :; done" "$0" & wait', ARGUMENT], check=True)
    try:
        def listed() -> int:
            out = sb.exec(["pgrep", "-c", "-f", "class.path"]).stdout.strip()
            return int(out or 0)

        wait_until(lambda: listed() >= PROCESSES, "the long processes")
        ssh = SshTransport(host.target(host.write_known_hosts(known_hosts)), name="sshlab")
        snapshot = collect(ssh, settings)
    finally:
        sb.exec(["systemctl", "stop", "long-args.service"])
    assert snapshot.errors == {}
    (spinner,) = [p for p in snapshot.processes or [] if p.command.startswith("sh -c while")]
    assert spinner.unit == "long-args.service"
    assert spinner.command.startswith("sh -c while :; do :; done -Dclass.path=xxxxxxxx")
