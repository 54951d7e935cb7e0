"""A failure keeps its type across the queue: a caller can tell a server that is down from one
that answered nonsense, whether a worker served the request or the caller did."""

from __future__ import annotations

import asyncio
import socket

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.llm.types import (
    LLMBadResponse,
    LLMServerError,
    LLMUnavailable,
    Message,
    Priority,
)
from ai_sysadmin.orchestrator.session import llm_session
from tests.support.scripted_model import ScriptedModel, http_error


def _ask(settings: Settings) -> None:
    async def go() -> None:
        async with llm_session(settings, Priority.INTERACTIVE) as llm:
            await llm([Message("user", "hello")], [])

    asyncio.run(go())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_server_that_is_down_is_unavailable(tmp_path) -> None:
    settings = Settings(ai_name="hal", state_dir=tmp_path, llm={
        "backend": "openai", "url": f"http://127.0.0.1:{_closed_port()}", "timeout": 5})
    # the type says what happened; the message is for a person: no class name, no queue id
    with pytest.raises(LLMUnavailable, match=r"^cannot connect to OpenAI-compatible server at "):
        _ask(settings)


def test_a_server_error_is_a_bad_response_not_unavailable(tmp_path) -> None:
    with ScriptedModel([http_error(500)]) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path, llm={
            "backend": "ollama", "url": model.url, "model": "scripted", "timeout": 5})
        with pytest.raises(LLMBadResponse) as caught:
            _ask(settings)
    assert not isinstance(caught.value, LLMUnavailable) and "500" in str(caught.value)
    # the server's own error, not an unusable answer: an investigation waits it out
    assert isinstance(caught.value, LLMServerError)
