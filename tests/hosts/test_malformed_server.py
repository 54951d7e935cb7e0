"""A server that speaks SSH badly is said to be at fault, not the user's settings."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

#: packet length 12, padding 10, then KEXINIT's type byte and none of its 16-byte cookie
TRUNCATED_KEXINIT = b"\x00\x00\x00\x0c\x0a\x14" + b"\x00" * 20


@pytest.fixture
def truncating_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that sends a valid SSH banner, then a truncated KEXINIT."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            with client:
                client.sendall(b"SSH-2.0-OpenSSH_9.0\r\n")
                client.recv(10000)
                client.sendall(TRUNCATED_KEXINIT)
                while client.recv(10000):
                    pass  # open until the client hangs up: a close of ours would be read first

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def test_a_malformed_packet_is_the_servers_fault_not_invalid_settings(
        cli: Callable[..., tuple[int, str, str]], truncating_server: int) -> None:
    # asyncssh's PacketDecodeError is a ValueError, which was taken for settings it refused:
    # the user was sent to their config for the server's bytes
    code, _, err = cli("systems", "add", "--name", "bad", f"127.0.0.1:{truncating_server}")
    assert code == 0
    assert err.splitlines()[0] == (
        f"warning: no command ran on bad: SSH to root@127.0.0.1:{truncating_server} failed: "
        "the server sent a malformed SSH packet (Incomplete packet)")
