"""A host behind a bastion that is itself behind a bastion, as an ssh config file says it
(each with a ProxyJump of its own): reached as ssh reaches it, the first jump host through
its own jump hosts. A ProxyJump loop is refused in words, connecting nowhere."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ai_sysadmin.errors import TransportError
from ai_sysadmin.hosts.ssh import SshTarget, SshTransport

from .conftest import NS_PREFIX, Hosts, SshHost, _ip


def _run(ssh: SshTransport, argv: list[str]) -> str:
    async def go() -> str:
        try:
            return (await ssh.run(argv)).stdout
        finally:
            await ssh.close()

    return asyncio.run(go())


@pytest.fixture
def deep(ssh_hosts: Hosts) -> SshHost:
    """An sshd reachable only from the inner host's namespace (itself reachable only from
    the jump host's)."""
    netlab = ssh_hosts.netlab
    netns = f"{NS_PREFIX}-{os.getpid()}-deep"
    _ip("netns", "add", netns)
    netlab.namespaces.append(netns)
    _ip("-n", netns, "link", "set", "lo", "up")
    assert ssh_hosts.inner.netns is not None
    _, address = netlab.link_namespaces(ssh_hosts.inner.netns, netns)
    return netlab.sshd("deep", netns, [address])


def _config(path: Path, hosts: dict[str, tuple[SshHost, str | None]], *more: str) -> Path:
    """An ssh config naming each host by alias, with the ProxyJump given."""
    text = "".join(
        f"Host {alias}\n  Hostname {host.address}\n  User root\n"
        f"  IdentityFile {host.client.private}\n" + (f"  ProxyJump {jump}\n" if jump else "")
        for alias, (host, jump) in hosts.items())
    path.write_text(text + "".join(more))
    return path


def test_a_bastion_behind_a_bastion_is_reached_as_ssh_reaches_it(
        ssh_hosts: Hosts, deep: SshHost, known_hosts: Path, tmp_path: Path) -> None:
    jump, inner = ssh_hosts.jump, ssh_hosts.inner
    config = _config(tmp_path / "ssh_config", {"deep-box": (deep, "inner-box"),
                                               "inner-box": (inner, "jumpbox"),
                                               "jumpbox": (jump, None)})
    kh = deep.write_known_hosts(known_hosts, inner, jump)
    ssh = SshTransport(SshTarget(host="deep-box", ssh_config=config, known_hosts=kh,
                                 connect_timeout=5.0), name="deep-box")
    addresses = _run(ssh, ["ip", "-o", "-4", "addr", "show"])
    # only the deep host's namespace has its address: this ran there
    assert deep.address in addresses and inner.address not in addresses


def test_a_proxyjump_for_every_host_takes_the_bastion_itself_directly(
        ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path) -> None:
    # "Host *" matches the bastion too: it names itself as its own jump host
    jump, inner = ssh_hosts.jump, ssh_hosts.inner
    config = _config(tmp_path / "ssh_config", {"inner-box": (inner, None),
                                               "jumpbox": (jump, None)},
                     "Host *\n  ProxyJump jumpbox\n")
    kh = inner.write_known_hosts(known_hosts, jump)
    ssh = SshTransport(SshTarget(host="inner-box", ssh_config=config, known_hosts=kh,
                                 connect_timeout=5.0), name="inner-box")
    assert inner.address in _run(ssh, ["ip", "-o", "-4", "addr", "show"])


def test_a_proxyjump_loop_is_refused_in_words(
        ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path) -> None:
    jump, inner = ssh_hosts.jump, ssh_hosts.inner
    config = _config(tmp_path / "ssh_config", {"inner-box": (inner, "jumpbox"),
                                               "jumpbox": (jump, "relay"),
                                               "relay": (inner, "jumpbox")})
    kh = inner.write_known_hosts(known_hosts, jump)
    logins = jump.accepted_logins()
    ssh = SshTransport(SshTarget(host="inner-box", ssh_config=config, known_hosts=kh,
                                 connect_timeout=5.0), name="inner-box")
    with pytest.raises(TransportError, match="^inner-box: the jump hosts go round in a loop"
                       ".*: inner-box -> jumpbox -> relay -> jumpbox"):
        _run(ssh, ["true"])
    assert jump.accepted_logins() == logins  # connecting nowhere
