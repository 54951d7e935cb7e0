"""What a remote shell said before it ended is quoted masked, however long it was."""

from __future__ import annotations

import base64

from ai_sysadmin.hosts.ssh import _Shell


def _key_body(size: int) -> list[str]:
    raw = base64.b64encode(bytes(range(256)) * (size // 256 + 1)).decode()[:size]
    return [raw[i:i + 64] for i in range(0, len(raw), 64)]


def test_a_long_private_key_a_dying_shell_printed_is_not_quoted() -> None:
    # an rc file that cats an 8192-bit key, and the connection drops before its end: the
    # header is kilobytes before the quoted end, which alone reads as plain base64
    body = _key_body(6400)
    shell = _Shell()
    shell.data_received("-----BEGIN RSA PRIVATE KEY-----\n", 1)
    for line in body:
        shell.data_received(line + "\n", 1)
    shell.connection_lost(ConnectionResetError("reset"))
    said = str(shell.ended)
    assert "the remote shell closed its output" in said
    assert "[redacted private key]" in said
    assert not any(line[:16] in said for line in body), said
