"""One sshd on 127.0.0.1, reached as the operator's ~/.ssh/config names it and as a directory's
login (``jane.doe@corp.example``, SSSD/AD): a machine is where the config sends it, so an alias
of a listed machine is checked once; and such a login, longer than 32 characters and holding
an '@', is a host's user as it is ``[ssh] user``."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.config import load_settings, short_hostname
from ai_sysadmin.store import HostStore
from ai_sysadmin.store.db import Database
from tests.conftest import BIN

from .conftest import Account, ClientKey, NetLab, SshHost, accounts

#: a fully qualified login as realmd/SSSD makes it: an '@', past 32 characters
LOGIN = "jane.doe-smith@eu.corp-directory.example"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def loopback(client_key: ClientKey) -> Iterator[SshHost]:
    """An sshd on 127.0.0.1 (at a port of its own: not this machine's sshd) whose host has
    the account :data:`LOGIN`. Its directory is one every user may enter: sshd reads
    authorized_keys as the user logging in."""
    top = Path(tempfile.mkdtemp(prefix="aisa-alias-"))
    top.chmod(0o755)
    netlab = NetLab(top, client_key)
    try:
        homes = top / "home"
        homes.mkdir()
        yield netlab.sshd("loopback", None, ["127.0.0.1"], port=_free_port(),
                          setup=accounts(homes, [Account(LOGIN, 3411)]))
    finally:
        netlab.close()
        shutil.rmtree(top, ignore_errors=True)


def _hal(tmp_path: Path, host: SshHost, settings: str, ssh_config: str = ""):
    """The CLI with a config of ``settings`` and a home of its own, whose ~/.ssh/config is
    ``ssh_config``; the config file's path."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    (home / ".ssh" / "config").write_text(ssh_config)
    known_hosts = host.write_known_hosts(tmp_path / "known_hosts")
    config = tmp_path / "config.toml"
    config.write_text(
        f'ai_name = "hal"\nstate_dir = "{tmp_path / "state"}"\n{settings}'
        f'[ssh]\nknown_hosts = "{known_hosts}"\nkey_files = ["{host.client.private}"]\n'
        "connect_timeout = 5\ndiscover_ssh_config = true\n")
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env.update(AI_SYSADMIN_CONFIG=str(config), HOME=str(home))

    def hal(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env,
                              timeout=120)
    return hal, config


def test_an_alias_of_a_listed_machine_is_checked_once(loopback: SshHost, tmp_path: Path) -> None:
    """remote_systems lists the sshd; ~/.ssh/config's ``web-alias`` is it too. Accepting the
    alias, or adding it under a name, was taken, and `systems refresh` then logged in three
    times to one sshd, which had every incident three times. Hosts an older version let in
    are not checked: the config's entry is, once."""
    port = loopback.port
    hal, config = _hal(tmp_path, loopback, f'remote_systems = ["root@127.0.0.1:{port}"]\n',
                       f"Host web-alias\n  Hostname 127.0.0.1\n  Port {port}\n")
    listed = hal("systems", "list", "--all", "--json")
    assert {r["name"]: r["status"] for r in json.loads(listed.stdout)}["web-alias"] == \
        "discovered", listed.stderr
    for args in (["accept", "web-alias"], ["add", f"web-alias:{port}", "--name", "web2"]):
        done = hal("systems", *args)
        assert done.returncode == 2, done.stdout + done.stderr
        assert (f"is already managed as 127.0.0.1 (root@127.0.0.1:{port}) in remote_systems "
                f"of {config}: ~/.ssh/config sends both to 127.0.0.1:{port}") in done.stderr
    # what an older version stored, as it compared the names as written
    hosts = HostStore(Database(load_settings(config, environ={}).settings.db_path))
    hosts.accept("web-alias", "a test")
    hosts.add("web2", target=f"web-alias:{port}", source="added")
    before = loopback.accepted_logins()
    refreshed = hal("systems", "refresh", "--json")
    results = {r["name"]: r for r in json.loads(refreshed.stdout)}
    assert set(results) == {short_hostname(), "127.0.0.1"}, refreshed.stderr
    assert results["127.0.0.1"]["reachable"] is True, results
    assert loopback.accepted_logins() - before == 1
    listed = hal("systems", "list")
    assert ("warning: web2 is not checked: it is the machine of 127.0.0.1 in remote_systems "
            f"(~/.ssh/config sends both to 127.0.0.1:{port}), checked as 127.0.0.1; `systems "
            "remove web2` lets it go") in listed.stderr, listed.stderr


def test_a_directory_login_is_a_hosts_user(loopback: SshHost, tmp_path: Path) -> None:
    """``jane.doe-smith@eu.corp-directory.example`` was refused as a host's user (in
    `systems add USER@HOST`, and in a table), while `[ssh] user` took it: ssh splits at the
    last '@', and sshd logs the account in."""
    port = loopback.port
    hal, _ = _hal(tmp_path, loopback, "")
    added = hal("systems", "add", f"{LOGIN}@127.0.0.1:{port}", "--name", "jane")
    assert added.returncode == 0, added.stderr
    assert f"jane ({LOGIN}@127.0.0.1:{port}) is managed now" in added.stdout
    assert "jane answered and ran a command" in added.stdout, added.stdout + added.stderr
    assert hal("systems", "remove", "jane").returncode == 0
    logins = (loopback.log or Path()).read_text().count(f"Accepted publickey for {LOGIN} ")
    hal, _ = _hal(tmp_path, loopback, f'remote_systems = [{{host = "127.0.0.1", port = {port}, '
                  f'user = "{LOGIN}", name = "jane-dir"}}]\n')
    refreshed = hal("systems", "refresh", "--json")
    assert {r["name"]: r["reachable"] for r in json.loads(refreshed.stdout)}["jane-dir"] is \
        True, refreshed.stdout + refreshed.stderr
    assert (loopback.log or Path()).read_text().count(
        f"Accepted publickey for {LOGIN} ") == logins + 1
