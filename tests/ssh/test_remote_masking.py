"""What a remote host says of itself reaches a person's terminal masked as ``--json`` masks it:
its os-release's name and a full disk's mount point, over real SSH into the fault lab, in
``check``, ``systems`` and ``issues``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import LabHost
from .test_remote_approve import _cli

pytestmark = pytest.mark.lab

SECRET = "hunter2"
#: any root of the host writes it; the name it gives is shown as the host's OS
OS_RELEASE = f'NAME="Lab"\nID=lab\nPRETTY_NAME="Lab Linux password={SECRET}"\n'
SHOWN = "Lab Linux password=[redacted]"
#: a mount point any root of the host names, a space in it like any other character
MOUNT = f"/mnt/db password={SECRET}"
MOUNT_SHOWN = "/mnt/db password=[redacted]"


@pytest.fixture
def full_disk(lab_host: LabHost) -> Iterator[None]:
    """A small file system under MOUNT, 98% full."""
    lab = lab_host.sandbox
    lab.exec(["mkdir", "-p", MOUNT], check=True)
    lab.exec(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", MOUNT], check=True)
    try:
        lab.exec(["dd", "if=/dev/zero", f"of={MOUNT}/fill", "bs=1k", "count=1000"])
        yield
    finally:
        lab.exec(["umount", MOUNT])


def test_what_a_host_names_is_shown_masked(
        lab_host: LabHost, known_hosts: Path, tmp_path: Path, full_disk: None) -> None:
    host = lab_host.ssh
    host.write_known_hosts(known_hosts)
    config = tmp_path / "config.toml"
    config.write_text(
        f'ai_name = "hal"\nstate_dir = "{tmp_path / "state"}"\n'
        f'remote_systems = [{{host = "{host.address}", name = "sshlab", user = "root", '
        f'port = {host.port}, key_file = "{host.client.private}"}}]\n'
        f'[ssh]\nknown_hosts = "{known_hosts}"\nuse_ssh_config = false\nconnect_timeout = 3\n')
    lab_host.sandbox.write_file("/etc/os-release", OS_RELEASE)
    checked = _cli(config, "check", "sshlab")
    assert checked.returncode in (0, 1, 2), checked.stderr
    listed = _cli(config, "systems")
    as_json = _cli(config, "systems", "--json")
    issues = _cli(config, "issues", "--json")
    [incident] = [i for i in json.loads(issues.stdout) if i["rule"] == "disk_space"]
    said = {"check": checked, "systems": listed, "systems --json": as_json,
            "issues --json": issues, "issues": _cli(config, "issues"),
            "issues show": _cli(config, "issues", "show", str(incident["id"]))}
    assert [c for c, done in said.items() if SECRET in done.stdout + done.stderr] == []
    assert SHOWN in checked.stdout  # the facts line under the banner
    [row] = [r for r in json.loads(as_json.stdout) if r["name"] == "sshlab"]
    assert row["os"] == SHOWN
    assert SHOWN in listed.stdout  # the table's os column
    assert incident["subject"] == MOUNT_SHOWN
    for command in ("check", "issues", "issues show"):
        assert MOUNT_SHOWN in said[command].stdout, command
