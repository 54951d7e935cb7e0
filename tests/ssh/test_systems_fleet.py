"""``hal-systems`` over real SSH: add hosts, check them all at once, see who is reachable."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from ai_sysadmin.cli.identity import actor
from tests.conftest import BIN

from .conftest import Hosts

SRC = Path(__file__).resolve().parents[2] / "src"


def test_added_hosts_are_checked_at_once_and_listed_with_reachability(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    alpha = ssh_hosts.alpha
    alpha.write_known_hosts(known_hosts)
    config = tmp_path / "config.toml"
    config.write_text(
        'ai_name = "hal"\n'
        f'[ssh]\nknown_hosts = "{known_hosts}"\nkey_files = ["{alpha.client.private}"]\n'
        'user = "root"\nuse_ssh_config = false\nconnect_timeout = 3\n')
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config),
           "AI_SYSADMIN_STATE_DIR": str(tmp_path / "state")}

    def hal(*args: str, tool: str = "systems") -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN), tool, *args], capture_output=True, text=True,
                              env=env, timeout=60)

    assert hal("add", alpha.address, "--name", "alpha").returncode == 0
    assert hal("add", "--no-probe", f"root@{ssh_hosts.blackhole}", "--name", "gone").returncode == 0
    started = time.monotonic()
    refreshed = hal("refresh", "--json")
    took = time.monotonic() - started
    assert refreshed.returncode == 1, refreshed.stderr  # a host is unreachable
    by_name = {r["name"]: r for r in json.loads(refreshed.stdout)}
    assert by_name["alpha"]["reachable"] is True and not by_name["alpha"]["errors"]
    assert by_name["gone"]["reachable"] is False
    assert "no SSH connection" in json.dumps(by_name["gone"]["errors"])
    assert took < 20  # the dead host costs its connect timeout once, not once per command

    listed = {r["name"]: r for r in json.loads(hal("list", "--json").stdout)}
    assert listed["alpha"]["reachable"] is True and listed["alpha"]["os"]
    assert listed["alpha"]["last_check"] is not None
    assert listed["gone"]["reachable"] is False and listed["gone"]["open_incidents"] == 1
    assert "no SSH connection" in (listed["gone"]["last_error"] or "")

    # one managed host checked on its own, as `hal-check alpha` would
    alpha_check = hal("alpha", "--json", tool="check")
    assert alpha_check.returncode in (0, 1), alpha_check.stderr
    checked = json.loads(alpha_check.stdout)
    assert checked["host"] == "alpha" and checked["errors"] == {}
    gone_check = hal("gone", "--json", tool="check")
    assert gone_check.returncode == 1
    assert [f["rule"] for f in json.loads(gone_check.stdout)["findings"]] == ["host_unreachable"]
    unknown = hal("nope", tool="check")
    assert unknown.returncode == 2 and "nope is not a managed host" in unknown.stderr


def test_a_stray_line_in_known_hosts_leaves_every_command_working(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    """A host name alone on a line and a Latin-1 comment, in the file every host's key is
    looked up in: ssh skips them; `systems add`, `check` and `refresh` answer as ever."""
    alpha = ssh_hosts.alpha
    known_hosts.write_bytes(b"oldhost.example.com\n# caf\xe9\n" + alpha.known_hosts_line.encode())
    config = tmp_path / "config.toml"
    config.write_text(
        'ai_name = "hal"\n'
        f'[ssh]\nknown_hosts = "{known_hosts}"\nkey_files = ["{alpha.client.private}"]\n'
        'user = "root"\nuse_ssh_config = false\nconnect_timeout = 3\n')
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config), "PYTHONPATH": str(SRC),
           "AI_SYSADMIN_STATE_DIR": str(tmp_path / "state")}

    def hal(*args: str, tool: str = "systems") -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN), tool, *args], capture_output=True, text=True,
                              env=env, timeout=60)

    added = hal("add", alpha.address, "--name", "alpha")
    assert added.returncode == 0 and "Traceback" not in added.stderr, added.stderr
    # the person is told, once, which lines check no host: the daemon's log said it alone
    skipped = f"warning: {known_hosts}: skipped line(s) 1: not a known_hosts entry\n"
    assert added.stderr.count(skipped) == 1, added.stderr
    checked = hal("alpha", "--json", tool="check")
    assert checked.returncode in (0, 1), checked.stderr
    assert checked.stderr == skipped  # stdout is JSON all the same
    assert json.loads(checked.stdout)["errors"] == {}
    refreshed = hal("refresh", "--json")
    assert refreshed.returncode == 0, refreshed.stderr
    by_name = {r["name"]: r for r in json.loads(refreshed.stdout)}
    assert by_name["alpha"]["reachable"] is True and not by_name["alpha"]["errors"]


def test_a_host_key_trusted_on_first_use_is_said_as_ssh_says_it(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    """With trust_on_first_use, the first command to reach a host records its key: from then
    on it is the key the host must show, so the person who added it is told which one."""
    alpha = ssh_hosts.alpha
    config = tmp_path / "config.toml"
    config.write_text(
        'ai_name = "hal"\n'
        f'[ssh]\nknown_hosts = "{known_hosts}"\nkey_files = ["{alpha.client.private}"]\n'
        'user = "root"\nuse_ssh_config = false\nconnect_timeout = 3\n'
        'trust_on_first_use = true\n')
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config), "PYTHONPATH": str(SRC),
           "AI_SYSADMIN_STATE_DIR": str(tmp_path / "state")}
    added = subprocess.run([str(BIN), "systems", "add", alpha.address, "--name", "alpha"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert added.returncode == 0, added.stderr
    assert added.stderr.splitlines() == [
        f"warning: alpha: trusted the host key {alpha.fingerprint} on first use; "
        f"recorded in {known_hosts}"]
    assert alpha.known_hosts_line.strip() in known_hosts.read_text()
    again = subprocess.run([str(BIN), "check", "alpha", "--json"], capture_output=True,
                           text=True, env=env, timeout=60)
    assert again.returncode in (0, 1) and again.stderr == ""  # known now: nothing to say


def test_a_host_key_trusted_on_first_use_is_in_the_audit_log(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    """A key trusted on first use is a security decision: `logs audit` names who took it
    (the person whose command met the host), for which host, and the key by type and
    fingerprint; a host known already adds nothing."""
    beta = ssh_hosts.beta
    config = tmp_path / "config.toml"
    config.write_text(
        'ai_name = "hal"\n'
        f'[ssh]\nknown_hosts = "{known_hosts}"\nkey_files = ["{beta.client.private}"]\n'
        'user = "root"\nuse_ssh_config = false\nconnect_timeout = 3\n'
        'trust_on_first_use = true\n')
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config), "PYTHONPATH": str(SRC),
           "AI_SYSADMIN_STATE_DIR": str(tmp_path / "state")}

    def hal(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env,
                              timeout=60)

    def trusted() -> list[str]:
        shown = hal("logs", "audit", "--json")
        assert shown.returncode == 0, shown.stderr
        return [r["msg"] for r in json.loads(shown.stdout) if "key_trusted" in r["msg"]]

    added = hal("systems", "add", beta.address, "--name", "beta")
    assert added.returncode == 0 and "beta answered" in added.stdout, added.stderr
    alg = beta.host_key_pub.read_text().split()[0]
    assert trusted() == [f"{actor()} host.key_trusted host:beta: {alg} {beta.fingerprint} "
                         f"trusted on first use, recorded in {known_hosts}"]
    again = hal("check", "beta", "--json")
    assert again.returncode in (0, 1), again.stderr
    assert len(trusted()) == 1
