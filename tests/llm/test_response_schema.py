"""A JSON schema for the answer reaches the server in its protocol's own form: Ollama's
``format``, OpenAI's ``response_format``; through the backend directly and through the durable
queue and its worker. A request without one is sent, and stored, exactly as before."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.config import LLMSettings, Settings
from ai_sysadmin.llm.backends import ChatBackend
from ai_sysadmin.llm.client import DirectLLM, QueuedLLM
from ai_sysadmin.llm.handlers import build_handler, chat_payload
from ai_sysadmin.llm.queue.sqlite import SqliteQueue
from ai_sysadmin.llm.types import ChatResult, LLMBadResponse, Message, Priority, ResponseSchema
from tests.queue.conftest import serving
from tests.support.scripted_model import ScriptedModel, http_error, response_schema, say

SCHEMA = {"type": "object", "properties": {"diagnosis": {"type": "string"}},
          "required": ["diagnosis"], "additionalProperties": False}
WANTED = ResponseSchema("diagnosis", SCHEMA)
QUESTION = [Message("system", "Answer in JSON."), Message("user", "Why did nginx fail?")]
ANSWER = json.dumps({"diagnosis": "its config is missing"})

Run = Callable[..., Any]


def _chat(with_backend: Run, settings: LLMSettings, **kwargs: Any) -> ChatResult:
    async def use(backend: ChatBackend) -> ChatResult:
        return await backend.chat(QUESTION, [], **kwargs)

    return with_backend(settings, use)


def test_the_schema_travels_in_the_protocols_own_form(llm_settings, with_backend,
                                                      backend_name) -> None:
    with ScriptedModel([say(ANSWER)]) as model:
        result = _chat(with_backend, llm_settings(model.url), response_schema=WANTED,
                       max_tokens=300)
        (sent,) = model.requests
    assert json.loads(result.message.content) == {"diagnosis": "its config is missing"}
    assert response_schema(sent) == SCHEMA
    if backend_name == "ollama":
        assert sent["format"] == SCHEMA and "response_format" not in sent
        assert sent["options"]["num_predict"] == 300
    else:
        assert sent["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "diagnosis", "schema": SCHEMA, "strict": True}}
        assert "format" not in sent and sent["max_tokens"] == 300


def test_llama_cpp_pythons_older_form_when_configured(llm_settings, with_backend) -> None:
    with ScriptedModel([say(ANSWER)]) as model:
        settings = llm_settings(model.url, backend="openai", response_format="json_object")
        _chat(with_backend, settings, response_schema=WANTED)
        (sent,) = model.requests
    assert sent["response_format"] == {"type": "json_object", "schema": SCHEMA}


def test_a_server_refusing_the_form_names_the_setting_to_change(llm_settings,
                                                               with_backend) -> None:
    """llama-cpp-python's server answers OpenAI's form with a validation error (HTTP 500)."""
    refusal = json.dumps({"error": {"message": "1 validation error: ('body', "
                                               "'response_format', 'type') Input should be "
                                               "'text' or 'json_object'"}})
    with ScriptedModel([http_error(500, refusal), http_error(500, refusal)]) as model:
        settings = llm_settings(model.url, backend="openai")
        with pytest.raises(LLMBadResponse) as caught:
            _chat(with_backend, settings, response_schema=WANTED)
        # without a schema the same error is the server's alone
        with pytest.raises(LLMBadResponse) as plain:
            _chat(with_backend, settings)
    assert "HTTP 500" in str(caught.value)
    assert str(caught.value).endswith('set llm.response_format = "json_object"')
    assert "llm.response_format" not in str(plain.value)


def test_llm_max_tokens_caps_every_answer_unless_the_call_sets_one(
        llm_settings, with_backend, backend_name) -> None:
    with ScriptedModel([say("a"), say("b"), say("c")]) as model:
        capped = llm_settings(model.url, max_tokens=96)
        _chat(with_backend, capped)
        _chat(with_backend, capped, max_tokens=300)
        _chat(with_backend, llm_settings(model.url))
        sent = list(model.requests)

    def limit(request: dict[str, Any]) -> int | None:
        if backend_name == "ollama":
            return request["options"].get("num_predict")
        return request.get("max_tokens")

    assert [limit(r) for r in sent] == [96, 300, None]


def test_no_schema_asks_for_none(llm_settings, with_backend) -> None:
    with ScriptedModel([say("free text")]) as model:
        _chat(with_backend, llm_settings(model.url))
        (sent,) = model.requests
    assert response_schema(sent) is None
    assert "format" not in sent and "response_format" not in sent


def test_direct_llm_passes_schema_and_limit(llm_settings, backend_name) -> None:
    from ai_sysadmin.llm.backends import make_backend

    with ScriptedModel([say(ANSWER)]) as model:
        async def go() -> ChatResult:
            backend = make_backend(llm_settings(model.url))
            try:
                return await DirectLLM(backend, temperature=0)(QUESTION, [], schema=WANTED,
                                                                 max_tokens=64)
            finally:
                await backend.aclose()

        asyncio.run(go())
        (sent,) = model.requests
    assert response_schema(sent) == SCHEMA
    limit = sent["options"]["num_predict"] if backend_name == "ollama" else sent["max_tokens"]
    assert limit == 64


def test_the_queue_carries_the_schema_to_the_server(tmp_path: Path, backend_name) -> None:
    queue = SqliteQueue(tmp_path / "queue.db")
    with ScriptedModel([say(ANSWER), say("plain")]) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state", llm={
            "backend": backend_name, "url": model.url, "model": "scripted", "timeout": 10})

        async def go() -> tuple[list[ChatResult], list[str]]:
            async with serving(queue, build_handler(settings)):
                llm = QueuedLLM(queue, Priority.AUTONOMOUS, timeout=10)
                held = await llm(QUESTION, [], schema=WANTED, max_tokens=200)
                free = await llm(QUESTION, [])
                return [held, free], llm.request_ids

        (held, free), ids = asyncio.run(go())
        sent = list(model.requests)
    assert json.loads(held.message.content)["diagnosis"] == "its config is missing"
    assert free.message.content == "plain"
    assert response_schema(sent[0]) == SCHEMA and response_schema(sent[1]) is None
    # stored with the request: a worker elsewhere, or after a restart, asks the same
    stored = queue.get(ids[0]).payload
    assert stored["response_schema"] == {"name": "diagnosis", "schema": SCHEMA, "strict": True}
    assert stored["max_tokens"] == 200
    # a request without a schema is stored as it always was: older payloads read the same,
    # and equal requests still coalesce across the upgrade
    assert set(queue.get(ids[1]).payload) == {"messages", "tools", "temperature"}
    queue.close()


def test_a_stored_request_of_the_older_form_is_still_served(tmp_path: Path) -> None:
    """A payload written before schemas existed (no such keys) is answered as before."""
    queue = SqliteQueue(tmp_path / "queue.db")
    old = {"messages": [m.to_dict() for m in QUESTION], "tools": [], "temperature": None}
    assert chat_payload(QUESTION, []) == old
    submitted = queue.submit("chat", old, Priority.BATCH)
    with ScriptedModel([say("answered")]) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state", llm={
            "backend": "openai", "url": model.url, "model": "scripted", "timeout": 10})

        async def go() -> Any:
            async with serving(queue, build_handler(settings)):
                return await queue.wait(submitted.request_id, 10)

        request = asyncio.run(go())
        (sent,) = model.requests
    assert request.state == "done" and request.result["message"]["content"] == "answered"
    assert "response_format" not in sent and "max_tokens" not in sent
    queue.close()


@pytest.mark.parametrize("stored", [{"schema": SCHEMA}, {"name": "x", "schema": "not a dict"}])
def test_an_unusable_stored_schema_fails_the_request_clearly(tmp_path: Path, stored) -> None:
    queue = SqliteQueue(tmp_path / "queue.db")
    payload = chat_payload(QUESTION, []) | {"response_schema": stored}
    submitted = queue.submit("chat", payload, Priority.BATCH)
    with ScriptedModel([say("never asked")]) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state", llm={
            "backend": "ollama", "url": model.url, "model": "scripted", "timeout": 10})

        async def go() -> Any:
            async with serving(queue, build_handler(settings)):
                return await queue.wait(submitted.request_id, 10)

        request = asyncio.run(go())
        asked = len(model.requests)
    assert request.state == "failed"
    assert request.error.startswith("LLMBadResponse: the request's response schema is unusable")
    assert asked == 0
    queue.close()
