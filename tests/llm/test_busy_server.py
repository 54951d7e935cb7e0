"""A server that answers busy (HTTP 429 rate-limited, 503 loading the model or overloaded) is
asked again, as its Retry-After says, within the request's time limit; still busy after that
it is unavailable, like a server that is down, never a bad answer. Over real HTTP on
127.0.0.1, both wire protocols."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.config import LLMSettings, Settings
from ai_sysadmin.llm.backends import ChatBackend
from ai_sysadmin.llm.types import (
    BackendStatus,
    ChatResult,
    LLMBadResponse,
    LLMUnavailable,
    Message,
    Priority,
)
from ai_sysadmin.orchestrator.session import llm_session
from tests.support.scripted_model import ScriptedModel, http_error, say

Make = Callable[..., LLMSettings]
Run = Callable[..., Any]
QUESTION = (Message("user", "Why did nginx fail?"),)


def chat(run: Run, settings: LLMSettings) -> ChatResult:
    async def use(backend: ChatBackend) -> ChatResult:
        return await backend.chat(QUESTION)

    return run(settings, use)


def chat_hits(model: ScriptedModel) -> list[float]:
    """When each chat request arrived (server side)."""
    return [hit.at for hit in model.hits if hit.method == "POST"]


def test_busy_twice_then_the_answer(llm_settings: Make, with_backend: Run) -> None:
    busy = [http_error(503), http_error(429, retry_after="0")]
    with ScriptedModel([*busy, say("nginx is fine")]) as model:
        result = chat(with_backend, llm_settings(model.url))
    assert result.message.content == "nginx is fine"
    assert len(chat_hits(model)) == 3


def test_busy_for_good_is_unavailable_within_the_time_limit(llm_settings: Make,
                                                            with_backend: Run) -> None:
    busy = '{"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}'
    with ScriptedModel(then=http_error(429, busy)) as model:
        settings = llm_settings(model.url, timeout=1.5, connect_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(LLMUnavailable) as raised:
            chat(with_backend, settings)
        elapsed = time.monotonic() - started
    assert not isinstance(raised.value, LLMBadResponse)
    said = str(raised.value)
    assert "HTTP 429" in said and "Rate limit reached" in said and "busy" in said
    assert len(chat_hits(model)) >= 2  # it asked again before giving up
    assert elapsed < 3.0  # connect_timeout + timeout, and the last answer's round trip


def test_retry_after_in_seconds_is_waited_for(llm_settings: Make, with_backend: Run) -> None:
    with ScriptedModel([http_error(503, retry_after="1"), say("loaded")]) as model:
        result = chat(with_backend, llm_settings(model.url))
    first, second = chat_hits(model)
    assert result.message.content == "loaded"
    assert second - first >= 1.0  # without the header, the first pause is at most 0.625 s


def test_retry_after_as_an_http_date_is_waited_for(llm_settings: Make,
                                                   with_backend: Run) -> None:
    # HTTP dates have whole seconds: this one is between 3 and 4 s away as it is written,
    # well past the at most 0.625 s of a first pause without the header, however long a busy
    # machine takes to ask first
    date = int(time.time()) + 4
    when = email.utils.formatdate(date, usegmt=True)
    with ScriptedModel([http_error(503, retry_after=when), say("loaded")]) as model:
        result = chat(with_backend, llm_settings(model.url))
    first, second = chat_hits(model)
    assert result.message.content == "loaded"
    # asked again once the date came (the hits are on the monotonic clock)
    assert time.time() - (time.monotonic() - second) >= date - 0.05, (first, second)


def test_retry_after_past_the_time_limit_is_unavailable_at_once(llm_settings: Make,
                                                                with_backend: Run) -> None:
    loading = '{"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}'
    with ScriptedModel(then=http_error(503, loading, retry_after="3600")) as model:
        started = time.monotonic()
        with pytest.raises(LLMUnavailable, match="Loading model") as raised:
            chat(with_backend, llm_settings(model.url, timeout=20.0))
        # waiting as long as the time limit allows took 20 s
        assert time.monotonic() - started < 5.0
    assert "HTTP 503" in str(raised.value) and "3600" in str(raised.value)
    assert len(chat_hits(model)) == 1


def test_status_of_a_busy_server_says_so_at_once(llm_settings: Make,
                                                 with_backend: Run) -> None:
    """``llm status`` is a probe: one answer, and busy is an answer (reachable)."""
    with ScriptedModel() as model:
        model.listing_error = http_error(503, '{"error": "loading"}', retry_after="1")

        async def probe(backend: ChatBackend) -> BackendStatus:
            return await backend.status()

        started = time.monotonic()
        found = with_backend(llm_settings(model.url), probe)
        # asked once (its hits): no second try, nor the second its Retry-After asks
        assert time.monotonic() - started < 2.0
    assert found.reachable and not found.model_present
    assert "busy" in found.detail and "HTTP 503" in found.detail and "loading" in found.detail
    assert len(model.hits) == 1


def test_busy_crosses_the_queue_as_unavailable(tmp_path: Path) -> None:
    """The daemon and `ask` see what a down server gives, through the queue and a worker."""
    with ScriptedModel(then=http_error(503, '{"error": "server busy, please try again"}')) \
            as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path, llm={
            "backend": "ollama", "url": model.url, "model": "scripted", "timeout": 1.0,
            "connect_timeout": 0.5})

        async def ask() -> None:
            async with llm_session(settings, Priority.INTERACTIVE) as llm:
                await llm(list(QUESTION), [])

        with pytest.raises(LLMUnavailable, match="HTTP 503") as raised:
            asyncio.run(ask())
    assert "server busy, please try again" in str(raised.value)


def test_a_retry_after_that_is_no_date_is_a_busy_answer_without_a_wait(
        llm_settings: Make, with_backend: Run) -> None:
    # a date whose zone offset no clock can hold: the header says nothing usable
    odd = "Mon, 01 Jan 2024 00:00:00 +99999999999999999999"
    with ScriptedModel([http_error(503, retry_after=odd), say("loaded")]) as model:
        result = chat(with_backend, llm_settings(model.url))
    assert result.message.content == "loaded"
    assert len(chat_hits(model)) == 2
