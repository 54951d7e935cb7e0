"""A command the host received runs at most once, even when the connection dies before the host's
answer that it started: over a real sshd, through a relay on 127.0.0.1 that cuts the connection
at that moment (a network that fails, an sshd killed). Sending it again on a fresh connection
would run a fix twice (two restarts, two kills of whatever holds a PID now)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.errors import NotStarted, TransportError
from ai_sysadmin.hosts.ssh import SshTransport
from tests.support.polling import poll_until

from .conftest import Hosts, SshHost


class CuttingRelay:
    """TCP from 127.0.0.1 to an sshd. Once :meth:`arm` ed, it passes the server's next chunk
    (the new channel's open confirmation) and, at the one after (the answer to the command's
    exec request, which the server sends only once it started the command), closes the
    client's side without passing it on. The host's side stays open, as across a network that
    failed: sshd notices nothing and its command runs to its end. Later connections pass."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.cut = threading.Event()
        self._seen = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self) -> None:
        self.armed.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self._sockets += [client, server]
            # only the connection open when armed is cut: the first one
            cuttable = len(self._sockets) == 2
            threading.Thread(target=self._to_server, args=(client, server), daemon=True).start()
            threading.Thread(target=self._to_client, args=(server, client, cuttable),
                             daemon=True).start()

    def _to_server(self, client: socket.socket, server: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                server.sendall(data)
        # a client that is gone says nothing more to the host, not even goodbye

    def _to_client(self, server: socket.socket, client: socket.socket, cuttable: bool) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                if cuttable and self.armed.is_set():
                    self._seen += 1
                    if self._seen == 2:
                        self.cut.set()
                        client.shutdown(socket.SHUT_RDWR)
                if not self.cut.is_set() or not cuttable:
                    client.sendall(data)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()
        for end in self._sockets:
            end.close()


@pytest.fixture
def relay(ssh_hosts: Hosts) -> Iterator[tuple[CuttingRelay, SshHost]]:
    host = ssh_hosts.alpha
    cutting = CuttingRelay((host.address, host.port))
    try:
        yield cutting, host
    finally:
        cutting.close()


def test_a_command_whose_connection_dies_before_the_answer_is_never_sent_again(
        relay: tuple[CuttingRelay, SshHost], known_hosts: Path, tmp_path: Path) -> None:
    cutting, host = relay
    alg, key = host.host_key_pub.read_text().split()[:2]
    known_hosts.write_text(f"[127.0.0.1]:{cutting.port} {alg} {key}\n")
    ssh = SshTransport(host.target(known_hosts, host="127.0.0.1", port=cutting.port),
                       name="web1")
    ran = tmp_path / "ran"  # the namespace host shares this file system

    async def scenario() -> str:
        try:
            assert (await ssh.run(["true"])).ok  # connected, logged in, at rest
            cutting.arm()
            try:
                done = await ssh.run(["sh", "-c", f"echo once >> {ran}"], timeout=10)
            except TransportError as exc:
                # sent, so not one that never started: a fix it ends ran, or may have
                assert not isinstance(exc, NotStarted)
                return str(exc)
            return f"it returned {done.returncode}"
        finally:
            await ssh.close()

    said = asyncio.run(scenario())
    assert cutting.cut.is_set(), "the relay never cut the connection"
    # the host got the command and ran it; then nothing sent it a second time
    poll_until(lambda: ran.exists() and ran.read_text(), what="the command ran on the host")
    assert ran.read_text() == "once\n", f"it ran {ran.read_text().count('once')} times"
    assert "may have run" in said and "not sent again" in said, said
