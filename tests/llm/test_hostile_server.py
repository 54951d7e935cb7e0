"""A server that answers without end: the worker reads a bounded answer, whatever it sends."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Self

import pytest

from ai_sysadmin.config import LLMSettings
from ai_sysadmin.llm.backends import ChatBackend, probe
from ai_sysadmin.llm.types import LLMBadResponse, Message
from tests.support.scripted_model import ScriptedModel, say

#: the most of one answer a backend reads (``_common.MAX_ANSWER_BYTES``)
MAX_ANSWER_BYTES = 16 * 2**20
#: one line of an Ollama stream that says it is not done (the server ignored "stream": false)
LINE = json.dumps({"model": "m", "created_at": "2024-01-01T00:00:00Z",
                   "message": {"role": "assistant", "content": "x" * 4000},
                   "done": False}).encode() + b"\n"


class _Loopback:
    """A server of raw sockets on 127.0.0.1, serving connections in a thread of its own
    (:meth:`_connection`, one at a time) until the ``with`` block ends."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            with conn:
                self._connection(conn)

    def _connection(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._server.close()


class Endless(_Loopback):
    """Answers 200 and streams ``done: false`` lines, chunked, up to ``limit`` bytes, then
    holds the connection open without ending the body: a stream that never ends."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.sent = 0
        #: the client closed the connection before the server stopped sending
        self.dropped = threading.Event()

    def _connection(self, conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = LINE * 16
        framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        try:
            while self.sent < self.limit and not self._stop.is_set():
                conn.sendall(framed)
                self.sent += len(chunk)
        except OSError:
            self.dropped.set()
            return
        self._stop.wait(30)  # the body never ends


@pytest.fixture
def endless() -> Iterator[Endless]:
    with Endless(3 * MAX_ANSWER_BYTES) as server:
        yield server


def test_an_answer_that_never_ends_is_refused_once_too_long_not_read_to_the_timeout(
        endless: Endless, llm_settings: Callable[..., LLMSettings],
        with_backend: Callable[..., Any]) -> None:
    settings = llm_settings(endless.url, timeout=20.0)

    async def ask(backend: ChatBackend) -> None:
        await backend.chat([Message("user", "hi")], [])

    started = time.monotonic()
    with pytest.raises(LLMBadResponse, match=r"more than 16 MiB"):
        with_backend(settings, ask)
    # refused as it grew past the bound: neither read whole (memory) nor waited out
    assert time.monotonic() - started < settings.timeout
    assert endless.sent < 3 * MAX_ANSWER_BYTES


@pytest.fixture
def gzip_bomb() -> Iterator[str]:
    """A 200 whose body is 200 KB of gzip that unpacks to 200 MB of spaces."""
    body = gzip.compress(b" " * 200_000_000, compresslevel=9)
    server = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            with contextlib.suppress(OSError):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
            done.wait(10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        done.set()
        thread.join(10)
        server.close()


def test_a_small_compressed_answer_that_unpacks_to_hundreds_of_mb_is_not_unpacked(
        gzip_bomb: str, llm_settings: Callable[..., LLMSettings],
        with_backend: Callable[..., Any]) -> None:
    async def ask(backend: ChatBackend) -> None:
        await backend.chat([Message("user", "hi")], [])

    with pytest.raises(LLMBadResponse, match=r"more than 16 MiB, .*: read no further$"):
        with_backend(llm_settings(gzip_bomb), ask)


class _Recording(_Loopback):
    """An HTTP server on 127.0.0.1 that answers every request with ``status`` (and
    ``headers``) and keeps each request's first line."""

    def __init__(self, status: str, headers: str = "") -> None:
        super().__init__()
        self.requests: list[str] = []
        self._answer = f"HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\n\r\n".encode()

    def _connection(self, conn: socket.socket) -> None:
        head = conn.recv(65536).split(b"\r\n", 1)[0]
        self.requests.append(head.decode("latin-1"))
        with contextlib.suppress(OSError):
            conn.sendall(self._answer)


@pytest.mark.parametrize("status", ["307 Temporary Redirect", "308 Permanent Redirect",
                                    "302 Found"])
def test_a_redirect_is_said_and_the_conversation_goes_nowhere_else(
        status: str, llm_settings: Callable[..., LLMSettings],
        with_backend: Callable[..., Any]) -> None:
    # the configured server (or a proxy before it) points elsewhere: the conversation, host
    # text among it, went there with the next request; now only llm.url ever gets it
    with _Recording("200 OK") as elsewhere, \
            _Recording(status, f"Location: {elsewhere.url}/v1/moved\r\n") as server:
        async def ask(backend: ChatBackend) -> None:
            await backend.chat([Message("user", "journal: secret-looking line")], [])

        with pytest.raises(LLMBadResponse, match=(
                rf"redirected \S+ to {elsewhere.url}/v1/moved \(HTTP {status[:3]}\): not "
                r"followed, what is sent goes to llm.url alone; set llm.url to where it "
                r"points if that is meant")):
            with_backend(llm_settings(server.url), ask)
        assert len(server.requests) == 1 and server.requests[0].startswith("POST ")
    assert elsewhere.requests == []


class _DropsKeptAlive(_Loopback):
    """A proxy before a scripted model that ends each client connection, kept alive after its
    first answer, when the next request comes on it, answering nothing: a server that closes
    idle connections as it likes, met just as a request goes out."""

    def __init__(self, upstream: str) -> None:
        super().__init__()
        host, port = upstream.removeprefix("http://").split(":")
        self._upstream = (host, int(port))
        self.dropped = 0

    @staticmethod
    def _one(conn: socket.socket) -> bytes:
        """One HTTP message (headers, then Content-Length bytes) from ``conn``."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            body += conn.recv(65536)
        return head + b"\r\n\r\n" + body

    def _connection(self, conn: socket.socket) -> None:
        with socket.create_connection(self._upstream) as up:
            conn.settimeout(10)
            up.settimeout(10)
            up.sendall(self._one(conn))
            conn.sendall(self._one(up))
            if self._one(conn):  # the next request on the kept-alive connection
                self.dropped += 1


def test_a_kept_alive_connection_the_server_closed_as_a_request_went_out_is_asked_again(
        llm_settings: Callable[..., LLMSettings], with_backend: Callable[..., Any]) -> None:
    # an investigation failed (LLMUnavailable: "Server disconnected without sending a
    # response") where asking again on a fresh connection gets the answer
    with ScriptedModel([say("first"), say("second")]) as model, \
            _DropsKeptAlive(model.url) as proxy:
        async def twice(backend: ChatBackend) -> list[str]:
            return [(await backend.chat([Message("user", text)], [])).message.content
                    for text in ("one", "two")]

        answers = with_backend(llm_settings(proxy.url), twice)
    assert answers == ["first", "second"]
    assert proxy.dropped == 1 and len(model.requests) == 2


class _Silent(_Loopback):
    """Takes the request and never answers it (a server stuck loading a model, a firewall
    that swallows packets after the handshake)."""

    heard = False

    def _connection(self, conn: socket.socket) -> None:
        conn.recv(65536)
        self.heard = True
        self._stop.wait()


def test_a_probe_of_a_server_that_never_answers_says_so_within_its_own_time(
        llm_settings: Callable[..., LLMSettings]) -> None:
    # the probe while incidents wait for an outage, and a worker's readiness at its start:
    # not the chat's timeout (minutes on a real server) for a status call
    with _Silent() as server:
        url = server.url.replace("http://", "http://user:hunter2@")
        started = time.monotonic()
        found = asyncio.run(probe(llm_settings(url, timeout=60.0), 0.5))
        took = time.monotonic() - started
        assert server.heard
    assert (found.reachable, found.model_present) == (False, False)
    assert found.detail == "no answer within 0.5 s"
    assert found.model == "scripted" and "127.0.0.1" in found.url
    assert "hunter2" not in found.url
    assert took < 5


def test_a_probe_says_what_the_server_said(llm_settings: Callable[..., LLMSettings]) -> None:
    with ScriptedModel([]) as model:
        found = asyncio.run(probe(llm_settings(model.url), 5))
    assert (found.reachable, found.model_present) == (True, True)
