"""``approve approve N`` for an action on a remote host runs it there, over real SSH; a host that
cannot be reached costs nothing: the action stays approvable, with the reason in its history."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from ai_sysadmin.config import load_settings
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import ActionStore, Database, IncidentStore
from tests.conftest import BIN
from tests.lab.test_remediation_lab import TRANSIENT

from .conftest import Hosts, LabHost

pytestmark = pytest.mark.lab


def _config(tmp_path: Path, lab_host: LabHost, known_hosts: Path, dead: str) -> Path:
    host = lab_host.ssh
    host.write_known_hosts(known_hosts)
    config = tmp_path / "config.toml"
    config.write_text(
        'ai_name = "hal"\nautonomy_level = "suggest"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        f'remote_systems = [{{host = "{host.address}", name = "sshlab", user = "root", '
        f'port = {host.port}, key_file = "{host.client.private}"}}, '
        f'{{host = "{dead}", name = "gone", user = "root", key_file = "{host.client.private}"}}]\n'
        '[safety]\nverify_settle_seconds = 1\nverify_timeout = 20\n'
        f'[ssh]\nknown_hosts = "{known_hosts}"\nuse_ssh_config = false\nconnect_timeout = 3\n')
    return config


def _propose(config: Path, host: str, unit: str) -> int:
    settings = load_settings(config, {}).settings
    store = IncidentStore(Database(settings.db_path))
    runtime = Runtime(settings, store, consumer="executor")

    async def go() -> int:
        try:
            action = await runtime.executor.propose(host, "restart_unit", {"unit": unit})
            return action.id
        finally:
            await runtime.close()

    return asyncio.run(go())


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config)}
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_approving_a_remote_action_runs_it_on_that_host(
    lab_host: LabHost, ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    sb = lab_host.sandbox
    sb.exec(["rm", "-f", "/var/tmp/ran-once"])
    apply(sb, "install_unit", {"name": "remote-app.service", "text": TRANSIENT})
    apply(sb, "start_unit", {"name": "remote-app.service"})
    config = _config(tmp_path, lab_host, known_hosts, ssh_hosts.refused)
    # a line that is no entry, skipped as ssh skips it
    known_hosts.write_text("oldhost.example.com\n" + known_hosts.read_text())
    action_id = _propose(config, "sshlab", "remote-app.service")
    assert ActionStore(Database(tmp_path / "state" / "state.db")).get(action_id).state == \
        "pending"
    done = _cli(config, "approve", "approve", str(action_id), "--json")
    action = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr + done.stdout
    assert (action["host"], action["state"]) == ("sshlab", "succeeded")
    # the log files this command writes (`logs actions`) have it, and so does the person,
    # step by step as it runs
    assert done.stderr.splitlines() == [
        f"warning: {known_hosts}: skipped line(s) 1: not a known_hosts entry",
        f"action {action_id} on sshlab: running systemctl restart -- remote-app.service",
        f"action {action_id} on sshlab: ran systemctl restart -- remote-app.service: exit "
        "status 0",
        f"action {action_id} on sshlab: verifying the fix: checking the host again for up to "
        "20 s (the finding must stay gone 1 s)"]
    assert sb.exec(["systemctl", "is-active", "remote-app.service"]).stdout.strip() == "active"


def test_an_unreachable_host_leaves_the_action_approvable(
    lab_host: LabHost, ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    config = _config(tmp_path, lab_host, known_hosts, ssh_hosts.refused)
    action_id = _propose(config, "gone", "app.service")
    done = _cli(config, "approve", "approve", str(action_id), "--json")
    action = json.loads(done.stdout)
    assert done.returncode == 2
    assert action["state"] == "pending" and action["started_at"] is None
    # why, in one line: the host did not answer; nothing ran
    assert done.stderr.startswith(f"error: action {action_id} did not run and waits for "
                                  "approval again: needs a person: not run, nothing ran: ")
    assert len(done.stderr.splitlines()) == 1
    store = IncidentStore(Database(tmp_path / "state" / "state.db"))
    history = [e for e in store.audit_log(50) if e["subject"] == f"action:{action_id}"]
    assert [e["action"] for e in history][-2:] == ["action.approved", "action.pending"]
    assert "nothing ran" in history[-1]["detail"] and "approved again" in history[-1]["detail"]


def _sudo_config(tmp_path: Path, lab_host: LabHost, known_hosts: Path) -> Path:
    """The lab as a host whose fixes run as ops under sudo (``sudo = true``), ops made a login
    of it: "*", no password, yet not a locked account (sshd refuses those without PAM); in
    systemd-journal so that the check reads the system's journal."""
    sb, host = lab_host.sandbox, lab_host.ssh
    sb.exec(["sh", "-c", "id ops >/dev/null 2>&1 || useradd --create-home --password '*' "
             "--groups systemd-journal ops"], check=True)
    host.write_known_hosts(known_hosts)
    config = tmp_path / "config.toml"
    config.write_text(
        'ai_name = "hal"\nautonomy_level = "suggest"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        f'remote_systems = [{{host = "{host.address}", name = "sshlab", user = "ops", '
        f'port = {host.port}, key_file = "{host.client.private}", sudo = true}}]\n'
        '[safety]\nverify_settle_seconds = 1\nverify_timeout = 20\n'
        f'[ssh]\nknown_hosts = "{known_hosts}"\nuse_ssh_config = false\nconnect_timeout = 3\n')
    return config


def test_a_sudo_host_is_checked_and_fixed_with_exactly_the_printed_drop_in(
    lab_host: LabHost, known_hosts: Path, tmp_path: Path
) -> None:
    """``sudo = true`` with the drop-in `policy sudoers --user ops` prints (the fixes, never
    a shell): the check runs as ops without sudo, and an approved restart runs under it."""
    sb = lab_host.sandbox
    sb.exec(["rm", "-f", "/var/tmp/ran-once"])
    apply(sb, "install_unit", {"name": "sudo-app.service", "text": TRANSIENT})
    apply(sb, "start_unit", {"name": "sudo-app.service"})
    config = _sudo_config(tmp_path, lab_host, known_hosts)
    drop_in = _cli(config, "policy", "sudoers", "--user", "ops")
    assert drop_in.returncode == 0, drop_in.stderr
    assert "ALL\n" not in drop_in.stdout and "/bin/sh -c {" in drop_in.stdout
    sb.write_file("/etc/sudoers.d/ops", drop_in.stdout, 0o440)
    assert sb.exec(["visudo", "-c", "-f", "/etc/sudoers.d/ops"]).returncode == 0

    checked = _cli(config, "check", "sshlab", "--json")
    report = json.loads(checked.stdout)
    assert report["reachable"] is True and report["refused"] is None, report
    assert report["errors"] == {}, report["errors"]
    assert any(f["rule"] == "failed_unit" and f["subject"] == "sudo-app.service"
               for f in report["findings"]), report["findings"]

    action_id = _propose(config, "sshlab", "sudo-app.service")
    done = _cli(config, "approve", "approve", str(action_id), "--json")
    action = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr + done.stdout
    assert (action["host"], action["state"]) == ("sshlab", "succeeded")
    assert sb.exec(["systemctl", "is-active", "sudo-app.service"]).stdout.strip() == "active"


#: a unit whose start fails every time, each start leaving a line behind
FAILING = """[Service]
Type=oneshot
ExecStart=/bin/sh -c 'date >> /var/tmp/failing-ran; echo "<3>cannot start" >&2; exit 3'
"""


def test_a_fix_that_ran_under_sudo_and_failed_says_its_own_error_past_sudos_warning(
    lab_host: LabHost, known_hosts: Path, tmp_path: Path
) -> None:
    """The host's own name does not resolve (a common slip): sudo warns "unable to resolve
    host" before it runs each command. A restart that ran and failed under sudo ends failed
    with systemctl's own error, never as sudo's refusal ("nothing ran")."""
    sb = lab_host.sandbox
    config = _sudo_config(tmp_path, lab_host, known_hosts)
    sb.write_file("/etc/sudoers.d/ops", _cli(config, "policy", "sudoers", "--user",
                                             "ops").stdout, 0o440)
    sb.exec(["rm", "-f", "/var/tmp/failing-ran"])
    apply(sb, "install_unit", {"name": "failing.service", "text": FAILING})
    action_id = _propose(config, "sshlab", "failing.service")
    done = _cli(config, "approve", "approve", str(action_id), "--json")
    action = json.loads(done.stdout)
    assert done.returncode == 1, done.stderr
    # sudo's warning came first, then the command ran: its exit and error are the fix's
    assert action["state"] == "failed"
    assert action["reason"] == action["result"]["error"]
    assert action["reason"].startswith("systemctl restart -- failing.service exited 1: sudo: "
                                       "unable to resolve host sshlab")
    assert "\nJob for failing.service failed" in action["reason"]
    assert "refused" not in action["reason"] and "nothing ran" not in action["reason"]
    assert sb.exec(["cat", "/var/tmp/failing-ran"]).stdout.count("\n") == 1


def test_a_fix_outside_the_drop_in_waits_for_a_person_though_sudo_l_says_yes(
    lab_host: LabHost, known_hosts: Path, tmp_path: Path
) -> None:
    """ops is also in a password rule (as a member of %sudo or %wheel is), beside the printed
    drop-in: `sudo -n -l` lists a SIGKILL (the password rule matches it, and one NOPASSWD
    rule of ops's is enough to list without a password), but the run wants the password.
    sudo refuses `sudo -n` before the kill runs: the fix waits for a person with that
    reason, as the docs promise, approvable again; the process lives."""
    sb = lab_host.sandbox
    config = _sudo_config(tmp_path, lab_host, known_hosts)
    drop_in = _cli(config, "policy", "sudoers", "--user", "ops").stdout
    sb.write_file("/etc/sudoers.d/ops", "ops ALL=(ALL:ALL) ALL\n" + drop_in, 0o440)
    assert sb.exec(["visudo", "-c", "-f", "/etc/sudoers.d/ops"]).returncode == 0
    sb.exec(["systemctl", "stop", "hog.service"])
    sb.exec(["systemd-run", "--unit=hog.service", "sleep", "1000"], check=True)
    pid = int(sb.exec(["systemctl", "show", "-p", "MainPID", "--value", "hog.service"]).stdout)
    settings = load_settings(config, {}).settings
    runtime = Runtime(settings, IncidentStore(Database(settings.db_path)), consumer="executor")

    async def propose() -> int:
        try:
            action = await runtime.executor.propose("sshlab", "kill_process",
                                                    {"pid": pid, "signal": "KILL"})
            return action.id
        finally:
            await runtime.close()

    action_id = asyncio.run(propose())
    for _ in range(2):
        done = _cli(config, "approve", "approve", str(action_id), "--json")
        action = json.loads(done.stdout)
        assert done.returncode == 2, done.stderr
        assert action["state"] == "pending" and action["started_at"] is None, action
        assert done.stderr.splitlines()[-1] == (
            f"error: action {action_id} did not run and waits for approval again: needs a "
            f"person: not run, nothing ran: kill -KILL {pid}: sudo on sshlab needs a password: "
            "`sudo -n` failed: a password is required; it can be approved again")
    assert sb.exec(["systemctl", "is-active", "hog.service"]).stdout.strip() == "active"
    sb.exec(["systemctl", "stop", "hog.service"])
