"""Text from the LLM server that UTF-8 cannot hold (a lone surrogate, JSON ``"\\ud800"``)
crosses the queue readable, in an answer and in an error, with SQLite and a real redis-server:
a worker that could not store it lost the answer, and the request went round its attempts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.llm.client import QueuedLLM
from ai_sysadmin.llm.handlers import build_handler
from ai_sysadmin.llm.queue import RequestQueue
from ai_sysadmin.llm.types import ChatResult, LLMBadResponse, Message, Priority
from tests.support.scripted_model import ScriptedModel, Step, http_error, say

from .conftest import serving

MakeQueue = Callable[..., RequestQueue]


def ask_through(queue: RequestQueue, llm: QueuedLLM, step: Step, tmp_path: Path) -> ChatResult:
    """One question by ``llm`` through ``queue``, served by a worker of this process."""
    with ScriptedModel([step]) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path, llm={
            "backend": "ollama", "url": model.url, "model": "scripted", "timeout": 5})

        async def go() -> ChatResult:
            async with serving(queue, build_handler(settings)):
                return await llm([Message("user", "how full is /var?")], [])

        return asyncio.run(go())


def test_an_answer_with_a_lone_surrogate_crosses_the_queue_readable(
        make_queue: MakeQueue, tmp_path: Path) -> None:
    queue = make_queue()
    llm = QueuedLLM(queue, Priority.INTERACTIVE, timeout=15)
    result = ask_through(queue, llm, say("/var is \ud800 full"), tmp_path)
    assert result.message.content == "/var is \ufffd full"
    assert queue.get(llm.request_ids[0]).result["message"]["content"] == "/var is \ufffd full"


def test_an_error_with_a_lone_surrogate_fails_the_request_once(
        make_queue: MakeQueue, tmp_path: Path) -> None:
    queue = make_queue()
    llm = QueuedLLM(queue, Priority.INTERACTIVE, timeout=15)
    failure = http_error(500, '{"error": "cannot load \\ud800 model"}')
    with pytest.raises(LLMBadResponse, match="cannot load \ufffd model"):
        ask_through(queue, llm, failure, tmp_path)
    request = queue.get(llm.request_ids[0])
    assert (request.state, request.attempts) == ("failed", 1)  # the LLM was asked once
