"""Fixtures of the LLM backend tests: settings pointed at a scripted model, a dead port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
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
