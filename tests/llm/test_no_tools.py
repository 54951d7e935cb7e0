"""A server that refuses a request's tools (a model without tool support under Ollama, vLLM
without a tool-call parser, llama.cpp's llama-server without --jinja) is its own error, over
both protocols and across the queue: it says what to set, the model having never answered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.config import LLMSettings, Settings
from ai_sysadmin.llm.backends import ChatBackend
from ai_sysadmin.llm.types import (
    ChatResult,
    LLMBadResponse,
    LLMServerError,
    LLMToolsUnsupported,
    Message,
    Priority,
    ToolSpec,
)
from ai_sysadmin.orchestrator.session import llm_session
from tests.support.scripted_model import ScriptedModel, http_error, say

JOURNAL = ToolSpec(name="journal", description="Read a unit's journal.",
                   parameters={"type": "object", "properties": {"unit": {"type": "string"}}})
QUESTION = [Message("system", "You are hal."), Message("user", "Why did nginx fail?")]

#: each server's refusal, in its own words and status
REFUSALS = {
    "ollama": (400, {"error": "registry.ollama.ai/library/scripted:latest does not support "
                              "tools"}),
    "vllm": (400, {"object": "error", "message": '"auto" tool choice requires '
                   "--enable-auto-tool-choice and --tool-call-parser to be set",
                   "type": "BadRequestError", "param": None, "code": 400}),
    # a 500 in some versions: it was waited out as an outage, for ever
    "llama.cpp": (500, {"error": {"code": 500, "message": "tools param requires --jinja flag",
                                  "type": "server_error"}}),
}


@pytest.mark.parametrize("server", list(REFUSALS))
def test_a_server_that_refuses_the_tools_says_what_to_set(
        llm_settings: Callable[..., LLMSettings], with_backend: Any, server: str) -> None:
    status, body = REFUSALS[server]
    with ScriptedModel([http_error(status, json.dumps(body))]) as model:
        async def use(backend: ChatBackend) -> ChatResult:
            return await backend.chat(QUESTION, [JOURNAL])

        with pytest.raises(LLMToolsUnsupported) as raised:
            with_backend(llm_settings(model.url), use)
    said = str(raised.value)
    assert f"HTTP {status}" in said and "agent.mode = \"evidence\"" in said
    assert not isinstance(raised.value, LLMServerError)  # no outage to wait out


def test_a_long_model_name_does_not_hide_the_refusal(
        llm_settings: Callable[..., LLMSettings], with_backend: Any) -> None:
    # the error's excerpt is cut at 200 characters; the words were past its end
    name = "registry.example.org/" + "team/" * 60 + "model:latest"
    with ScriptedModel([http_error(400, json.dumps({"error": f"{name} does not support "
                                                             "tools"}))]) as model:
        async def use(backend: ChatBackend) -> ChatResult:
            return await backend.chat(QUESTION, [JOURNAL])

        with pytest.raises(LLMToolsUnsupported):
            with_backend(llm_settings(model.url), use)


def test_an_error_that_only_mentions_tools_is_no_refusal_of_them(
        llm_settings: Callable[..., LLMSettings], with_backend: Any) -> None:
    with ScriptedModel([http_error(400, '{"error": "invalid tools schema"}'),
                        say("ok")]) as model:
        async def use(backend: ChatBackend) -> ChatResult:
            return await backend.chat(QUESTION, [JOURNAL])

        with pytest.raises(LLMBadResponse) as raised:
            with_backend(llm_settings(model.url), use)
    assert type(raised.value) is LLMBadResponse


def test_the_refusal_keeps_its_type_across_the_queue(tmp_path: Path) -> None:
    status, body = REFUSALS["ollama"]
    with ScriptedModel([http_error(status, json.dumps(body))]) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path, llm={
            "backend": "ollama", "url": model.url, "model": "scripted", "timeout": 5})

        async def go() -> None:
            async with llm_session(settings, Priority.INTERACTIVE) as llm:
                await llm(QUESTION, [JOURNAL])

        with pytest.raises(LLMToolsUnsupported, match="does not support tools"):
            asyncio.run(go())


def test_a_request_without_tools_is_never_told_it_refused_them(
        llm_settings: Callable[..., LLMSettings], with_backend: Any) -> None:
    # the evidence mode offers none: llama.cpp names --jinja for more than tools, and the
    # advice to go without tool calls would be no advice there
    with ScriptedModel([http_error(400, '{"error": {"message": "chat_template_kwargs requires '
                                        '--jinja"}}')]) as model:
        async def use(backend: ChatBackend) -> ChatResult:
            return await backend.chat(QUESTION, [])

        with pytest.raises(LLMBadResponse) as raised:
            with_backend(llm_settings(model.url), use)
    assert type(raised.value) is LLMBadResponse
