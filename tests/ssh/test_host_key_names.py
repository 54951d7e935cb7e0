"""The name a host's key is filed under in known_hosts is the one ssh files it under: the host
name in lowercase (ssh lowercases it before it reads or writes the file), or the HostKeyAlias
of ~/.ssh/config without the port. An sshd on this machine's loopback, for a name that
resolves with any case (LOCALHOST), checked with ssh-keygen as the operator would."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ai_sysadmin.hosts.ssh import HostKeyError, SshTarget, SshTransport

from .conftest import ClientKey, NetLab, SshHost


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory, client_key: ClientKey) -> Iterator[SshHost]:
    netlab = NetLab(tmp_path_factory.mktemp("loopback"), client_key)
    try:
        yield netlab.sshd("loopback", None, ["127.0.0.1"], port=_free_port())
    finally:
        netlab.close()


@pytest.fixture
def other_key(tmp_path: Path) -> tuple[str, str]:
    """Another host's key: the one a known_hosts file pins when the server's has changed."""
    path = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True, capture_output=True, timeout=10)
    alg, b64 = path.with_suffix(".pub").read_text().split()[:2]
    return alg, b64


def _key(host: SshHost) -> str:
    return " ".join(host.host_key_pub.read_text().split()[:2])


def _run(host: SshHost, name: str, known_hosts: Path, tofu: bool, ran: Path | None = None,
         **more: object) -> str:
    target = SshTarget(host=name, port=host.port, user="root",
                       key_files=(str(host.client.private),), known_hosts=known_hosts,
                       global_known_hosts=None, trust_on_first_use=tofu, connect_timeout=5.0)
    target = replace(target, **more)  # type: ignore[arg-type]
    ssh = SshTransport(target, name=name)

    async def go() -> str:
        try:
            argv = ["touch", str(ran)] if ran else ["id", "-un"]
            return (await ssh.run(argv, timeout=10)).stdout
        finally:
            await ssh.close()

    return asyncio.run(go())


def _ssh_keygen_finds(pattern: str, known_hosts: Path) -> bool:
    """Whether OpenSSH's own lookup finds an entry for ``pattern`` in the file."""
    found = subprocess.run(["ssh-keygen", "-F", pattern, "-f", str(known_hosts)],
                           capture_output=True, text=True, timeout=10)
    return found.returncode == 0 and bool(found.stdout.strip())


@pytest.mark.parametrize("name", ["LOCALHOST", "LocalHost"])
@pytest.mark.parametrize("tofu", [False, True])
def test_a_capitalised_name_is_held_to_the_key_ssh_pinned_for_it(
    loopback: SshHost, tmp_path: Path, other_key: tuple[str, str], name: str, tofu: bool
) -> None:
    """The lowercase entry ssh wrote pins another key: the changed key is refused, by name
    and fingerprint, even with trust on first use, and no second entry is added."""
    known_hosts = tmp_path / "known_hosts"
    pinned = f"[localhost]:{loopback.port} {' '.join(other_key)}\n"
    known_hosts.write_text(pinned)
    ran = tmp_path / "ran"
    with pytest.raises(HostKeyError) as caught:
        _run(loopback, name, known_hosts, tofu, ran)
    message = str(caught.value)
    assert message.startswith(f"{name}: HOST KEY MISMATCH for [localhost]:{loopback.port},")
    assert loopback.fingerprint in message
    assert f"ssh-keygen -R '[localhost]:{loopback.port}' -f {known_hosts}" in message
    assert known_hosts.read_text() == pinned
    assert not ran.exists()


def test_a_capitalised_name_uses_the_lowercase_entry_and_records_one(
    loopback: SshHost, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    # trusted on first use under a capitalised name: filed in lowercase, where ssh looks
    assert _run(loopback, "LOCALHOST", known_hosts, tofu=True) == "root\n"
    line = f"[localhost]:{loopback.port} {_key(loopback)}\n"
    assert known_hosts.read_text() == line
    assert _ssh_keygen_finds(f"[localhost]:{loopback.port}", known_hosts)
    # and found again, strictly, under any case
    for name in ("LOCALHOST", "Localhost", "localhost"):
        assert _run(loopback, name, known_hosts, tofu=False) == "root\n"
    assert known_hosts.read_text() == line

    # an entry written with capitals (by hand) is one ssh matches whatever the case: so here
    known_hosts.write_text(f"[LocalHost]:{loopback.port} {_key(loopback)}\n")
    assert _run(loopback, "localhost", known_hosts, tofu=False) == "root\n"


def test_a_host_key_alias_is_what_the_key_is_checked_and_filed_under(
    loopback: SshHost, tmp_path: Path, other_key: tuple[str, str]
) -> None:
    """ssh files the key of a host with a HostKeyAlias under the alias, without the port:
    the fix the refusal names must remove that entry, and the key trusted then is filed there."""
    config = tmp_path / "ssh_config"
    config.write_text(f"Host web1\n  Hostname 127.0.0.1\n  Port {loopback.port}\n"
                      "  HostKeyAlias Web1-Key\n")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"web1-key {' '.join(other_key)}\n")
    ran = tmp_path / "ran"
    with pytest.raises(HostKeyError) as caught:
        _run(loopback, "web1", known_hosts, True, ran, ssh_config=str(config), port=None)
    message = str(caught.value)
    assert message.startswith("web1: HOST KEY MISMATCH for web1-key,")
    assert not ran.exists()
    fix = f"ssh-keygen -R 'web1-key' -f {known_hosts}"
    assert fix in message
    # the command it names really removes the entry
    subprocess.run(["ssh-keygen", "-R", "web1-key", "-f", str(known_hosts)],
                   check=True, capture_output=True, timeout=10)
    assert not _ssh_keygen_finds("web1-key", known_hosts)

    assert _run(loopback, "web1", known_hosts, True, ssh_config=str(config),
                port=None) == "root\n"
    assert known_hosts.read_text() == f"web1-key {_key(loopback)}\n"
