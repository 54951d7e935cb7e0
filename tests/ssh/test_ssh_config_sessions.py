"""What ~/.ssh/config may and may not decide, over real SSH: where a host is and as whom, yes,
but not the port a person wrote; how a session runs, no. An operator's ``ForwardAgent yes``
(for their own logins) never hands their ssh-agent to a managed host, and ``RequestTTY
force`` never turns a check's two streams into one terminal."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.ssh import SshTarget, SshTransport
from ai_sysadmin.monitor.collector import Collector
from tests.conftest import BIN

from .conftest import Hosts, SshHost, wait_until

T = TypeVar("T")


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An ssh-agent of the operator's, holding the client key, named by SSH_AUTH_SOCK."""
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(sock.exists, "ssh-agent listening")
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        yield sock
    finally:
        proc.kill()
        proc.wait(5)


def _transport(host: SshHost, known_hosts: Path, tmp_path: Path, *lines: str) -> SshTransport:
    """web1, routed and named by a config file that also holds ``lines`` for every host."""
    config = tmp_path / "ssh_config"
    config.write_text(f"Host web1\n  Hostname {host.address}\n  User root\n"
                      f"  IdentityFile {host.client.private}\n"
                      "Host *\n" + "".join(f"  {line}\n" for line in lines))
    return SshTransport(SshTarget(host="web1", ssh_config=config,
                                  known_hosts=host.write_known_hosts(known_hosts),
                                  connect_timeout=5.0), name="web1")


def test_the_operators_agent_never_reaches_a_managed_host(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path, agent: Path
) -> None:
    host = ssh_hosts.alpha
    subprocess.run(["ssh-add", "-q", str(host.client.private)], check=True, timeout=10,
                   capture_output=True)
    ssh = _transport(host, known_hosts, tmp_path, "ForwardAgent yes")

    async def go() -> str:
        try:
            seen = await ssh.run(["sh", "-c", 'echo "agent=${SSH_AUTH_SOCK-}"; hostname -I'])
            return seen.stdout
        finally:
            await ssh.close()

    out = asyncio.run(go())
    assert out.startswith("agent=\n"), out
    # the config's Hostname was used: this ran on alpha
    assert host.address in out.split()


def test_a_check_runs_where_the_config_asks_for_a_tty(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    ssh = _transport(ssh_hosts.alpha, known_hosts, tmp_path, "RequestTTY force")
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state")

    async def run(step: Awaitable[T]) -> T:
        try:
            return await step
        finally:
            await ssh.close()

    both = asyncio.run(run(ssh.run(["sh", "-c", "echo out; echo err >&2; tty || :"])))
    # two streams, lines as the host wrote them, no terminal
    assert (both.stdout, both.stderr) == ("out\nnot a tty\n", "err\n")
    snapshot = asyncio.run(run(asyncio.wait_for(Collector(ssh, settings).collect(), 40)))
    assert snapshot.refused is None and snapshot.errors == {}, snapshot.errors
    assert snapshot.os is not None and snapshot.memory is not None


def test_a_port_written_as_22_wins_over_the_ssh_configs_port(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    """The operator's ~/.ssh/config sends their own logins to these hosts' port 2200 (where
    nothing answers here). A host written with :22 (`systems add`) or ``port = 22``
    (remote_systems) is reached at 22, as written; only a host written without a port goes
    where the config says."""
    alpha, beta, jump = ssh_hosts.alpha, ssh_hosts.beta, ssh_hosts.jump
    alpha.write_known_hosts(known_hosts, beta, jump)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host {alpha.address} {beta.address} {jump.address}\n  Port 2200\n")
    config = tmp_path / "config.toml"
    config.write_text(
        f'ai_name = "hal"\nstate_dir = "{tmp_path / "state"}"\n'
        f'remote_systems = [{{host = "{beta.address}", port = 22, name = "beta"}}, '
        f'"{jump.address}"]\n'
        f'[ssh]\nknown_hosts = "{known_hosts}"\nkey_files = ["{alpha.client.private}"]\n'
        'user = "root"\nconnect_timeout = 3\n')
    # a home of its own: its ~/.ssh/config is the test's, never the real one
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env.update(AI_SYSADMIN_CONFIG=str(config), HOME=str(home))

    def hal(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env,
                              timeout=120)

    added = hal("systems", "add", f"root@{alpha.address}:22", "--name", "alpha")
    assert added.returncode == 0, added.stderr
    assert "alpha answered and ran a command" in added.stdout, added.stdout + added.stderr
    refreshed = hal("systems", "refresh", "--json")
    by_name = {r["name"]: r for r in json.loads(refreshed.stdout)}
    assert by_name["alpha"]["reachable"] is True, by_name["alpha"]
    assert by_name["beta"]["reachable"] is True, by_name["beta"]
    # no port written: the config's, where nothing listens
    assert by_name[jump.address]["reachable"] is False, by_name[jump.address]
    assert ":2200" in json.dumps(by_name[jump.address]["errors"]), by_name[jump.address]
    assert refreshed.returncode == 1, refreshed.stderr
