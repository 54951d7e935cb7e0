"""``llm.timeout`` bounds a whole answer: a server that sends it a byte at a time (each byte
well within the limit) does not hold the worker for as long as it likes."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from ai_sysadmin.config import LLMSettings
from ai_sysadmin.llm.backends import make_backend
from ai_sysadmin.llm.types import LLMUnavailable, Message

BODY = b'{"model":"m","message":{"role":"assistant","content":"late"},"done":true}'
GAP = 0.05  # seconds between two bytes: the answer takes 3.6 s, each read far less


@pytest.fixture
def dripping() -> Iterator[str]:
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(BODY))
            for i in range(len(BODY)):
                if stop.wait(GAP):
                    return
                try:
                    conn.sendall(BODY[i:i + 1])
                except OSError:
                    return  # the client gave up: what is tested

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(10)
        server.close()


def test_an_answer_that_trickles_in_ends_at_the_timeout(dripping: str) -> None:
    settings = LLMSettings(backend="ollama", url=dripping, model="m", timeout=1.0,
                           connect_timeout=1.0)

    async def ask() -> None:
        backend = make_backend(settings)
        try:
            await backend.chat([Message("user", "hi")], [])
        finally:
            await backend.aclose()

    started = time.monotonic()
    with pytest.raises(LLMUnavailable, match="did not finish answering /api/chat within 1s"):
        asyncio.run(ask())
    assert time.monotonic() - started < len(BODY) * GAP  # it did not wait for the end
