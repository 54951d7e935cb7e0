"""Fixtures of the LLM backend tests: settings pointed at a scripted model, a dead port."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from ai_sysadmin.config import LLMSettings
from ai_sysadmin.llm.backends import ChatBackend, make_backend

T = TypeVar("T")


@pytest.fixture(params=["ollama", "openai"])
def backend_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def llm_settings(backend_name: str) -> Callable[..., LLMSettings]:
    """Settings for the backend under test, pointed at ``url``; short timeouts for tests."""

    def make(url: str, **overrides: Any) -> LLMSettings:
        fields: dict[str, Any] = {"backend": backend_name, "url": url, "model": "scripted",
                                  "timeout": 5.0, "connect_timeout": 2.0}
        return LLMSettings(**(fields | overrides))

    return make


@pytest.fixture
def with_backend() -> Callable[..., Any]:
    """Run ``use(backend)`` on a fresh backend in its own event loop, closing it afterwards."""

    def run(settings: LLMSettings, use: Callable[[ChatBackend], Coroutine[Any, Any, T]]) -> T:
        async def go() -> T:
            backend = make_backend(settings)
            try:
                return await use(backend)
            finally:
                await backend.aclose()

        return asyncio.run(go())

    return run


@pytest.fixture
def dead_url() -> str:
    """A URL on a port nothing listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def hangup_url() -> Iterator[str]:
    """A server on 127.0.0.1 that reads each request and closes the connection unanswered."""
    stop = threading.Event()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.05)  # so the loop sees ``stop``: closing does not wake accept()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                conn.recv(65536)

    thread = threading.Thread(target=serve, daemon=True, name="hangup-server")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        server.close()
