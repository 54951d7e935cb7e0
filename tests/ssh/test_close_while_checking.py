"""A transport closed while a check runs on it (the daemon renews a host added again, or lets
a removed one go, or shuts down) keeps no connection: the check in flight ends instead of
logging in again, as nothing would ever close that second login and the host's sshd would
hold it for as long as the daemon runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ai_sysadmin.errors import TransportError
from ai_sysadmin.hosts.ssh import SshTransport
from tests.support.polling import until

from .conftest import Hosts, SshHost

DONE = "@@closed-test-done@@"


def script(body: str) -> str:
    return f"{body}\nprintf '%s\\n' '{DONE}'; printf '%s\\n' '{DONE}' >&2\n"


@pytest.fixture
def host(ssh_hosts: Hosts) -> SshHost:
    """An sshd of its own: its session processes are this test's connections alone."""
    netlab = ssh_hosts.netlab
    netns, address = netlab.namespace()
    return netlab.sshd("closed-mid-check", netns, [address])


def test_a_check_running_as_its_transport_closes_leaves_no_connection(
        host: SshHost, known_hosts: Path, tmp_path: Path) -> None:
    ssh = SshTransport(host.target(host.write_known_hosts(known_hosts)), name="web3")
    logins = host.accepted_logins()

    async def scenario() -> None:
        await ssh.run_script(script("true"), DONE, 10)  # the shell a later check reuses
        started = tmp_path / "started"  # the host shares this file system
        check = asyncio.ensure_future(
            ssh.run_script(script(f"touch {started}; sleep 3"), DONE, 10))
        await until(started.exists, what="the check to run on the host")
        await ssh.close()
        ended = (await asyncio.gather(check, return_exceptions=True))[0]
        await until(lambda: not host.session_pids(), timeout=10,
                    what="the host's sshd to see every connection of ours end")
        assert isinstance(ended, TransportError), ended
        assert "web3: the SSH connection was closed" in str(ended)

    asyncio.run(scenario())
    assert host.accepted_logins() - logins == 1  # no login again after close()
