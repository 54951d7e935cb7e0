"""Agent fixtures: a tool context on this machine, and an LLMCall served by the scripted model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.agent.context import ToolContext
from ai_sysadmin.config import LLMSettings, Settings
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.llm.backends import make_backend
from tests.support.dirs import enterable_tmp
from tests.support.terminal import chat_env


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    with enterable_tmp("ai-sysadmin-agent-") as path:
        yield path


@pytest.fixture
def ctx(settings: Settings, store) -> ToolContext:
    return ToolContext(settings, {"testhost": LocalTransport("testhost")}, "testhost", store)


@pytest.fixture(params=["ollama", "openai"])
def backend_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def run_with_model(backend_name: str) -> Callable[..., Any]:
    """``run_with_model(model, use)``: ``use(llm_call)`` in a fresh loop with a real backend."""

    def run(model: Any, use: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
        settings = LLMSettings(backend=backend_name, url=model.url, model="scripted",
                               timeout=10, connect_timeout=2)

        async def go() -> Any:
            backend = make_backend(settings)
            try:
                return await use(lambda messages, tools: backend.chat(messages, tools))
            finally:
                await backend.aclose()

        return asyncio.run(go())

    return run


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of a ``chat``/``ask`` the tests run: its config, state and history
    under ``tmp_path``."""
    return chat_env(tmp_path)
