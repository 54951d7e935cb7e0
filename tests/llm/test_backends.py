"""Both backends against the scripted model over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ai_sysadmin.config import LLMSettings
from ai_sysadmin.errors import ConfigError
from ai_sysadmin.llm.backends import ChatBackend, make_backend
from ai_sysadmin.llm.types import (
    BackendStatus,
    ChatResult,
    LLMBadResponse,
    LLMModelMissing,
    LLMUnavailable,
    Message,
    ToolCall,
    ToolSpec,
)
from tests.support.scripted_model import (
    ScriptedModel,
    call,
    calls,
    delay,
    garbage,
    http_error,
    raw_call,
    respond,
    say,
    tool_results,
)

Settings = Callable[..., LLMSettings]
Run = Callable[..., Any]

JOURNAL = ToolSpec(
    name="read_journal",
    description="Read the last lines of a unit's journal.",
    parameters={"type": "object",
                "properties": {"unit": {"type": "string"}, "lines": {"type": "integer"}},
                "required": ["unit"]},
)
QUESTION = (Message("system", "You are hal."), Message("user", "Why did nginx fail?"))


def chat(run: Run, settings: LLMSettings, messages: tuple[Message, ...] = QUESTION,
         tools: tuple[ToolSpec, ...] = (JOURNAL,), **kwargs: Any) -> ChatResult:
    async def use(backend: ChatBackend) -> ChatResult:
        return await backend.chat(messages, tools, **kwargs)

    return run(settings, use)


def status(run: Run, settings: LLMSettings) -> BackendStatus:
    async def use(backend: ChatBackend) -> BackendStatus:
        return await backend.status()

    return run(settings, use)


def test_plain_answer(llm_settings: Settings, with_backend: Run) -> None:
    with ScriptedModel([say("nginx is fine")]) as model:
        result = chat(with_backend, llm_settings(model.url))
    assert result.message == Message("assistant", "nginx is fine")
    assert result.model == "scripted"
    assert result.prompt_tokens and result.completion_tokens
    sent = model.requests[0]
    assert sent["model"] == "scripted"
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert sent["messages"][1]["content"] == "Why did nginx fail?"
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "read_journal", "description": JOURNAL.description,
        "parameters": JOURNAL.parameters}}]
    assert model.remaining == 0


def test_tool_call_round_trip(llm_settings: Settings, with_backend: Run,
                              backend_name: str) -> None:
    script = [call("read_journal", unit="nginx.service", lines=20),
              lambda request: say("the journal says: " + tool_results(request)[0])]
    with ScriptedModel(script) as model:
        settings = llm_settings(model.url)
        first = chat(with_backend, settings)
        [asked] = first.message.tool_calls
        assert asked.name == "read_journal"
        assert asked.arguments == {"unit": "nginx.service", "lines": 20}
        assert asked.id
        conversation = (*QUESTION, first.message,
                        Message("tool", "port 80 already in use", tool_call_id=asked.id,
                                name="read_journal"))
        second = chat(with_backend, settings, conversation)

    assert second.message == Message("assistant", "the journal says: port 80 already in use")
    assistant, tool = model.requests[1]["messages"][2:]
    if backend_name == "openai":
        assert assistant["content"] == ""  # llama.cpp refuses null here
        assert assistant["tool_calls"] == [{
            "id": asked.id, "type": "function",
            "function": {"name": "read_journal", "arguments": asked.raw_arguments}}]
        assert tool == {"role": "tool", "tool_call_id": asked.id,
                        "content": "port 80 already in use"}
        assert model.requests[0]["tool_choice"] == "auto"
        assert model.requests[0]["temperature"] == settings.temperature
    else:
        assert assistant["tool_calls"] == [{"function": {
            "name": "read_journal", "arguments": {"unit": "nginx.service", "lines": 20}}}]
        assert tool == {"role": "tool", "content": "port 80 already in use",
                        "tool_name": "read_journal"}
        assert model.requests[0]["options"]["temperature"] == settings.temperature
        assert model.requests[0]["options"]["num_ctx"] == settings.context_size
        assert model.requests[0]["stream"] is False


def test_temperature_and_max_tokens_per_call(llm_settings: Settings, with_backend: Run,
                                             backend_name: str) -> None:
    with ScriptedModel([say("ok")]) as model:
        chat(with_backend, llm_settings(model.url), temperature=0.7, max_tokens=64)
    sent = model.requests[0]
    if backend_name == "openai":
        assert (sent["temperature"], sent["max_tokens"]) == (0.7, 64)
    else:
        assert (sent["options"]["temperature"], sent["options"]["num_predict"]) == (0.7, 64)


def test_no_tools_sends_no_tools(llm_settings: Settings, with_backend: Run) -> None:
    with ScriptedModel([say("hello")]) as model:
        result = chat(with_backend, llm_settings(model.url), tools=())
    assert result.message.content == "hello"
    assert "tools" not in model.requests[0]
    assert "tool_choice" not in model.requests[0]


def test_several_calls_and_malformed_arguments(llm_settings: Settings,
                                               with_backend: Run) -> None:
    step = calls([call("read_journal", unit="a.service"), raw_call("read_journal", '{"unit": '),
                  raw_call("read_journal", '["not", "an", "object"]')])
    with ScriptedModel([step]) as model:
        result = chat(with_backend, llm_settings(model.url))
    good, broken, not_object = result.message.tool_calls
    assert good.arguments == {"unit": "a.service"}
    assert broken == ToolCall(broken.id, "read_journal", '{"unit": ', None)
    assert not_object.arguments is None
    assert not_object.raw_arguments == '["not", "an", "object"]'
    assert len({good.id, broken.id, not_object.id}) == 3


def test_malformed_call_sent_back_as_empty_object(llm_settings: Settings, with_backend: Run,
                                                  backend_name: str) -> None:
    with ScriptedModel([raw_call("read_journal", "{oops"), say("sorry")]) as model:
        settings = llm_settings(model.url)
        first = chat(with_backend, settings)
        [broken] = first.message.tool_calls
        chat(with_backend, settings, (*QUESTION, first.message,
                                      Message("tool", "error: arguments are not JSON",
                                              tool_call_id=broken.id, name=broken.name)))
    [sent] = model.requests[1]["messages"][2]["tool_calls"]
    assert sent["function"]["arguments"] == ("{}" if backend_name == "openai" else {})


@pytest.mark.parametrize("backend_name", ["openai"])
def test_openai_legacy_function_call_is_kept(llm_settings: Settings, with_backend: Run) -> None:
    legacy = {"choices": [{"index": 0, "finish_reason": "function_call", "message": {
        "role": "assistant", "content": None,
        "function_call": {"name": "read_journal", "arguments": '{"unit": "x"}'}}}]}
    with ScriptedModel([respond(legacy)]) as model:
        result = chat(with_backend, llm_settings(model.url))
    [legacy_call] = result.message.tool_calls
    assert (legacy_call.name, legacy_call.arguments) == ("read_journal", {"unit": "x"})


@pytest.mark.parametrize("backend_name", ["openai"])
def test_openai_tool_calls_win_over_legacy_function_call(llm_settings: Settings,
                                                         with_backend: Run) -> None:
    both = {"choices": [{"index": 0, "message": {
        "role": "assistant", "content": None,
        "function_call": {"name": "legacy", "arguments": "{}"},
        "tool_calls": [{"id": "c1", "type": "function",
                        "function": {"name": "read_journal", "arguments": "{}"}}]}}]}
    with ScriptedModel([respond(both)]) as model:
        result = chat(with_backend, llm_settings(model.url))
    assert [c.name for c in result.message.tool_calls] == ["read_journal"]
    assert result.message.tool_calls[0].id == "c1"


def test_server_down_is_unavailable_quickly(llm_settings: Settings, with_backend: Run,
                                            dead_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(LLMUnavailable, match=dead_url):
        chat(with_backend, llm_settings(dead_url))
    assert time.monotonic() - started < 2


def test_slow_server_is_unavailable(llm_settings: Settings, with_backend: Run) -> None:
    with ScriptedModel([delay(30, then=say("too late"))]) as model:
        started = time.monotonic()
        with pytest.raises(LLMUnavailable, match="within 0.3s"):
            chat(with_backend, llm_settings(model.url, timeout=0.3))
        assert time.monotonic() - started < 3


@pytest.mark.parametrize("step", [http_error(500), http_error(404, "model not found")])
def test_http_error_is_bad_response(llm_settings: Settings, with_backend: Run,
                                    step: Any) -> None:
    with ScriptedModel([step]) as model:
        with pytest.raises(LLMBadResponse, match=f"HTTP {step.status}") as raised:
            chat(with_backend, llm_settings(model.url))
    assert ("scripted failure" in str(raised.value)) or ("model not found" in str(raised.value))


@pytest.mark.parametrize("step", [
    http_error(502, "null"),
    http_error(500, '"a JSON string"'),
    garbage(),
    garbage(b"<html>bad gateway</html>", content_type="text/html"),
    respond(["a", "list"]),
    respond({"object": "error"}),
    respond({"choices": []}),
    respond({"message": {"content": 42}, "choices": [{"message": {"content": 42}}]}),
    respond({"message": {"tool_calls": ["x"]}, "choices": [{"message": {"tool_calls": ["x"]}}]}),
    # JSON as Python reads it but the standard does not, and nesting past Python's stack
    garbage(b'{"message": {"content": NaN}, "choices": [{"message": {"content": NaN}}]}'),
    garbage(b'{"x": ' * 100_000),
])
def test_unusable_body_is_bad_response(llm_settings: Settings, with_backend: Run,
                                       step: Any) -> None:
    with ScriptedModel([step]) as model, pytest.raises(LLMBadResponse):
        chat(with_backend, llm_settings(model.url))


def test_status_reachable_and_model_present(llm_settings: Settings, with_backend: Run) -> None:
    with ScriptedModel(models=["scripted", "other:7b"]) as model:
        found = status(with_backend, llm_settings(model.url))
    assert (found.reachable, found.model_present) == (True, True)
    assert found.url == model.url and found.model == "scripted"
    assert "other:7b" in found.models


def test_status_model_missing(llm_settings: Settings, with_backend: Run) -> None:
    # two models: an OpenAI-compatible server of one answers any name (llama.cpp's)
    with ScriptedModel(models=["other:7b", "another:3b"]) as model:
        found = status(with_backend, llm_settings(model.url))
    assert (found.reachable, found.model_present) == (True, False)
    assert "scripted" in found.detail


def test_status_server_down_never_raises(llm_settings: Settings, with_backend: Run,
                                         dead_url: str) -> None:
    found = status(with_backend, llm_settings(dead_url))
    assert (found.reachable, found.model_present) == (False, False)
    assert dead_url in found.detail


@pytest.mark.parametrize("backend_name", ["ollama"])
def test_ollama_status_matches_latest_tag(llm_settings: Settings, with_backend: Run) -> None:
    with ScriptedModel(models=["qwen2.5:latest"]) as model:
        bare = status(with_backend, llm_settings(model.url, model="qwen2.5"))
        tagged = status(with_backend,
                        llm_settings(model.url, model="qwen2.5:latest"))
        other = status(with_backend,
                       llm_settings(model.url, model="qwen2.5:7b"))
    assert (bare.model_present, tagged.model_present, other.model_present) == (True, True, False)


@pytest.mark.parametrize("backend_name", ["openai"])
def test_openai_status_matches_model_path_basename(llm_settings: Settings,
                                                   with_backend: Run) -> None:
    with ScriptedModel(models=["/models/qwen2.5-7b-q4.gguf"]) as model:
        for name in ("/models/qwen2.5-7b-q4.gguf", "qwen2.5-7b-q4.gguf", "qwen2.5-7b-q4"):
            found = status(with_backend, llm_settings(model.url, model=name))
            assert found.model_present, name


@pytest.mark.parametrize("backend_name", ["openai"])
def test_openai_url_with_v1_suffix(llm_settings: Settings, with_backend: Run) -> None:
    with ScriptedModel([say("ok")]) as model:
        result = chat(with_backend, llm_settings(model.url + "/v1/"))
    assert result.message.content == "ok"
    assert [h.path for h in model.hits] == ["/v1/chat/completions"]


def test_api_key_read_from_file_and_never_logged(llm_settings: Settings, with_backend: Run,
                                                 tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("s3cret-key\n")
    caplog.set_level(logging.DEBUG)
    with ScriptedModel([say("ok")]) as model:
        chat(with_backend, llm_settings(model.url, api_key_file=key_file))
    assert model.hits[0].headers["authorization"] == "Bearer s3cret-key"
    assert "s3cret-key" not in caplog.text


def test_unreadable_api_key_file_is_a_config_error(llm_settings: Settings,
                                                   tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="api_key_file"):
        make_backend(llm_settings("http://127.0.0.1:1", api_key_file=tmp_path / "missing"))


@pytest.mark.parametrize(("text", "why"), [
    ("s3cret-key\n# the key for llama-server\n", "a second line or a space"),
    ("s3cret-k\u00e9y\n", "not visible ASCII"),
])
def test_an_api_key_file_holding_more_than_the_key_is_a_config_error_that_never_quotes_it(
        llm_settings: Settings, tmp_path: Path, text: str, why: str) -> None:
    # in a header it made the HTTP library's error quote the header, key and all
    key_file = tmp_path / "key"
    key_file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        make_backend(llm_settings("http://127.0.0.1:1", api_key_file=key_file))
    assert str(refused.value).startswith(f"{key_file}: llm.api_key_file: ")
    assert why in str(refused.value) and "s3cret" not in str(refused.value)


def test_unknown_backend_raises(llm_settings: Settings) -> None:
    settings = llm_settings("http://127.0.0.1:1").model_copy(update={"backend": "carrier-pigeon"})
    with pytest.raises(ValueError, match="carrier-pigeon"):
        make_backend(settings)


def test_exhausted_script_answers_instead_of_hanging(llm_settings: Settings,
                                                     with_backend: Run) -> None:
    with ScriptedModel() as model:
        result = chat(with_backend, llm_settings(model.url))
    assert result.message.content == "(script exhausted)"


def test_scripted_model_serves_concurrent_requests(llm_settings: Settings,
                                                   with_backend: Run) -> None:
    """The queue benchmark relies on this: a fixed latency per request, served in parallel."""
    with ScriptedModel([say(f"answer {n}") for n in range(10)], latency=0.2) as model:
        async def use(backend: ChatBackend) -> list[ChatResult]:
            return await asyncio.gather(*(backend.chat(QUESTION) for _ in range(10)))

        started = time.monotonic()
        results = with_backend(llm_settings(model.url), use)
        elapsed = time.monotonic() - started
    assert sorted(r.message.content for r in results) == sorted(f"answer {n}" for n in range(10))
    assert 0.2 <= elapsed < 1.9  # ten in sequence would take 2 s; a busy machine adds some
    assert model.remaining == 0


@pytest.mark.parametrize("step", [
    http_error(404, '{"error": "model \'scripted\' not found, try pulling it first"}'),
    http_error(404, '{"error": {"message": "The model `scripted` does not exist.", '
                    '"type": "NotFoundError", "code": "model_not_found"}}'),
])
def test_missing_model_is_its_own_error_in_the_servers_words(
        llm_settings: Settings, with_backend: Run, step: Any) -> None:
    with ScriptedModel([step]) as model, pytest.raises(LLMModelMissing) as raised:
        chat(with_backend, llm_settings(model.url))
    assert "HTTP 404" in str(raised.value) and "scripted" in str(raised.value)
    assert "{" not in str(raised.value)  # the server's message, not its JSON


def test_connection_closed_without_answer_is_unavailable(llm_settings: Settings,
                                                         with_backend: Run,
                                                         hangup_url: str) -> None:
    with pytest.raises(LLMUnavailable, match="lost the connection"):
        chat(with_backend, llm_settings(hangup_url))
    found = status(with_backend, llm_settings(hangup_url))
    assert (found.reachable, found.model_present) == (False, False)


def test_no_key_file_sends_no_authorization(llm_settings: Settings, with_backend: Run) -> None:
    with ScriptedModel([say("ok")]) as model:
        chat(with_backend, llm_settings(model.url))
    assert "authorization" not in model.hits[0].headers


def test_password_in_url_never_in_a_message(llm_settings: Settings, with_backend: Run,
                                            dead_url: str) -> None:
    url = dead_url.replace("http://", "http://user:hunter2@")
    with pytest.raises(LLMUnavailable) as raised:
        chat(with_backend, llm_settings(url))
    found = status(with_backend, llm_settings(url))
    assert "127.0.0.1" in str(raised.value)
    assert "hunter2" not in str(raised.value) + found.detail + found.url


@pytest.mark.parametrize("backend_name", ["ollama"])
def test_ollama_url_as_bare_host_and_port(llm_settings: Settings, with_backend: Run) -> None:
    """As ``OLLAMA_HOST`` allows, and as the ``ollama`` client accepted."""
    with ScriptedModel([say("ok")]) as model:
        result = chat(with_backend, llm_settings(model.url.removeprefix("http://")))
    assert result.message.content == "ok"


def test_url_of_another_scheme_is_a_config_error(llm_settings: Settings) -> None:
    with pytest.raises(ValidationError, match="must be an http:// or https:// URL"):
        llm_settings("ftp://127.0.0.1:1")
    # settings copied past validation still never reach the network, nor echo a password
    unchecked = llm_settings("http://127.0.0.1:1").model_copy(
        update={"url": "ftp://u:hunter2@127.0.0.1:1"})
    with pytest.raises(ConfigError, match="llm.url") as refused:
        make_backend(unchecked)
    assert "hunter2" not in str(refused.value) and "u:****@" in str(refused.value)


def test_choosing_a_backend_costs_no_http_import() -> None:
    """Commands that never talk to the model must not pay for httpx at start."""
    code = ("import sys, ai_sysadmin.llm.backends, ai_sysadmin.llm.handlers; "
            "print(sorted({'httpx', 'ollama', 'openai'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
