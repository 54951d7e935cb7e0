"""A new user's first remote host over real SSH: when it cannot be reached for a reason of the
user's own making (no key, the wrong key, the public half of a key, a host key not yet known),
`systems refresh` and `check` say what went wrong and where to put it right."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import BIN

from .conftest import Hosts, SshHost


def _config(tmp_path: Path, known_hosts: Path, keys: list[Path]) -> Path:
    path = tmp_path / "config.toml"
    names = ", ".join(f'"{k}"' for k in keys)
    path.write_text(
        f'ai_name = "hal"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[ssh]\nknown_hosts = "{known_hosts}"\nkey_files = [{names}]\n'
        'connect_timeout = 3\n')
    return path


def _hal(config: Path, home: Path, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    # a home of its own: no ~/.ssh/id_* nor agent of whoever runs the tests is offered
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env.update(AI_SYSADMIN_CONFIG=str(config), HOME=str(home))
    return subprocess.run([str(BIN), tool, *args], capture_output=True, text=True, env=env,
                          timeout=120)


def _refresh_line(config: Path, home: Path, alpha: SshHost) -> str:
    added = _hal(config, home, "systems", "add", "--no-probe", f"root@{alpha.address}",
                 "--name", "alpha")
    assert added.returncode == 0, added.stderr
    refreshed = _hal(config, home, "systems", "refresh", "alpha")
    assert refreshed.returncode == 1, refreshed.stdout + refreshed.stderr
    return " ".join(refreshed.stdout.split())


def test_refresh_says_no_key_was_offered_and_where_to_name_one(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    alpha = ssh_hosts.alpha
    alpha.write_known_hosts(known_hosts)
    config = _config(tmp_path, known_hosts, [])
    line = _refresh_line(config, tmp_path, alpha)
    assert line.startswith("alpha: unreachable: authentication as 'root' failed"), line
    assert "no key was offered" in line and "[ssh] key_files" in line


def test_a_refused_key_is_named_with_where_its_public_half_goes(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    alpha = ssh_hosts.alpha
    alpha.write_known_hosts(known_hosts)
    other = tmp_path / "id_other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True, capture_output=True, timeout=10)
    line = _refresh_line(_config(tmp_path, known_hosts, [other]), tmp_path, alpha)
    assert f"1 key(s) offered (from {other}) and refused" in line, line
    assert "~root/.ssh/authorized_keys" in line


def test_the_public_half_named_as_the_key_file_is_said_so(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    alpha = ssh_hosts.alpha
    alpha.write_known_hosts(known_hosts)
    public = Path(f"{alpha.client.private}.pub")
    config = _config(tmp_path, known_hosts, [public])
    line = _refresh_line(config, tmp_path, alpha)
    assert f"the SSH key file {public} cannot be used" in line, line
    assert "that is the public half" in line
    checked = _hal(config, tmp_path, "check", "alpha")
    assert f"the SSH key file {public} cannot be used" in " ".join(checked.stdout.split())


def test_an_unknown_host_key_names_the_setting_that_trusts_it(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    alpha = ssh_hosts.alpha
    known_hosts.write_text("")
    config = _config(tmp_path, known_hosts, [alpha.client.private])
    added = _hal(config, tmp_path, "systems", "add", f"root@{alpha.address}", "--name", "alpha")
    assert added.returncode == 0, added.stderr
    said = " ".join(added.stderr.split())
    assert f"unknown host key for {alpha.address}" in said, said
    assert "`trust_on_first_use = true` under [ssh]" in said
    line = " ".join(_hal(config, tmp_path, "systems", "refresh", "alpha").stdout.split())
    assert line.startswith("alpha: unreachable: unknown host key for"), line
    assert line.endswith("to record it on the next connection."), line  # not cut short


def test_a_changed_host_key_says_the_command_that_forgets_the_old_one(
    ssh_hosts: Hosts, tmp_path: Path
) -> None:
    # the remedy came last and every command cut the line before it: a person saw the warning
    # and not what to run. A known_hosts where a service keeps it (a path of some length).
    alpha, beta = ssh_hosts.alpha, ssh_hosts.beta
    known_hosts = tmp_path / "var/lib/ai-sysadmin/home/.ssh/known_hosts"
    known_hosts.parent.mkdir(parents=True)
    known_hosts.write_text(beta.known_hosts_line.replace(beta.address, alpha.address, 1))
    config = _config(tmp_path, known_hosts, [alpha.client.private])
    remedy = f"`ssh-keygen -R '{alpha.address}' -f {known_hosts}`"
    line = _refresh_line(config, tmp_path, alpha)
    assert "HOST KEY MISMATCH" in line and remedy in line, line
    checked = " ".join(_hal(config, tmp_path, "check", "alpha").stdout.split())
    assert "HOST KEY MISMATCH" in checked and remedy in checked, checked
    listed = " ".join(_hal(config, tmp_path, "systems", "list").stdout.split())
    assert "HOST KEY MISMATCH" in listed and remedy in listed, listed
