"""OpenAI-compatible ``/v1/chat/completions`` (llama.cpp server, vLLM, …) through the official
``openai`` client.

We ask the client for the raw response (``with_raw_response``) and read the JSON ourselves: the
client does not validate bodies, and compatible servers differ in the details. Quirks handled:

- an assistant message carrying tool calls is sent with ``content: ""``, never null (llama.cpp
  rejects null there);
- tool calls are read from ``message.tool_calls``; the legacy ``function_call`` is used only when
  no ``tool_calls`` came, as one call, so it is not lost;
- ``arguments`` is a JSON string; one that does not parse to an object gives ``arguments=None``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

import httpx
import openai

from ...config import LLMSettings
from ..types import (
    BackendStatus,
    ChatResult,
    LLMBadResponse,
    LLMError,
    LLMUnavailable,
    Message,
    ToolCall,
    ToolSpec,
)
from ._common import decode_object, excerpt, optional_int, read_api_key, tool_call
from .base import ChatBackend


class OpenAIBackend(ChatBackend):
    name = "openai"

    def __init__(self, settings: LLMSettings) -> None:
        self.url = settings.url.rstrip("/")
        self.model = settings.model
        self._settings = settings
        base_url = self.url if self.url.endswith("/v1") else self.url + "/v1"
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=read_api_key(settings.api_key_file) or "none",
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            max_retries=0,  # retrying is the queue's decision, not the client's
        )

    async def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> ChatResult:
        extra: dict[str, Any] = {}
        if tools:
            extra["tools"] = [
                {"type": "function",
                 "function": {"name": t.name, "description": t.description,
                              "parameters": t.parameters}}
                for t in tools
            ]
            extra["tool_choice"] = "auto"
        if max_tokens is not None:
            extra["max_tokens"] = max_tokens
        body = await self._call(
            "/v1/chat/completions",
            self._client.chat.completions.with_raw_response.create(
                model=self.model,
                messages=[_to_wire(m) for m in messages],
                temperature=self._settings.temperature if temperature is None else temperature,
                **extra,
            ),
        )
        return self._parse_chat(body)

    async def status(self) -> BackendStatus:
        def result(reachable: bool, present: bool = False, detail: str = "",
                   models: Sequence[str] = ()) -> BackendStatus:
            return BackendStatus(self.name, self.url, self.model, reachable, present, detail,
                                 tuple(models))

        try:
            body = await self._call("/v1/models", self._client.models.with_raw_response.list())
        except LLMUnavailable as exc:
            return result(False, detail=str(exc))
        except LLMError as exc:
            return result(True, detail=str(exc))
        except Exception as exc:  # a status probe reports, it never raises
            return result(False, detail=f"unexpected error: {type(exc).__name__}: {exc}")
        entries = body.get("data")
        if not isinstance(entries, list):
            return result(True, detail="/v1/models answered without a list of models")
        ids = sorted({str(e["id"]) for e in entries if isinstance(e, dict) and e.get("id")})
        present = _model_in(self.model, ids)
        detail = "" if present else f"model {self.model!r} is not served by {self.url}"
        return result(True, present, detail, ids)

    async def aclose(self) -> None:
        await self._client.close()

    async def _call(self, path: str, request: Any) -> dict[str, Any]:
        """Await one raw request; map the client's errors to ours; the body as a JSON object."""
        where = f"OpenAI-compatible server at {self.url}"
        try:
            response = await request
        except openai.APITimeoutError:
            raise LLMUnavailable(f"{where} did not answer {path} within "
                                 f"{self._settings.timeout:g}s") from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__
            if isinstance(cause, httpx.ConnectTimeout):
                reason = f"no connection within {self._settings.connect_timeout:g}s"
            elif isinstance(cause, httpx.ConnectError):
                reason = "refused or unreachable"
            else:
                reason = str(cause or exc)
            raise LLMUnavailable(f"cannot connect to {where} ({reason})") from None
        except openai.APIStatusError as exc:
            raise LLMBadResponse(f"{where} answered HTTP {exc.status_code} to {path}: "
                                 f"{excerpt(exc.response.text)}") from None
        except openai.APIError as exc:  # e.g. a body the client could not read
            raise LLMBadResponse(f"{where} answered {path} unusably: {exc}") from None
        return decode_object(response.content, f"{where} ({path})")

    def _parse_chat(self, body: dict[str, Any]) -> ChatResult:
        choices = body.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise LLMBadResponse(f"OpenAI-compatible server at {self.url} sent no chat "
                                 f"completion (no choices/message): {excerpt(json.dumps(body))}")
        content = message.get("content") or ""
        raw_calls = message.get("tool_calls") or []
        if not isinstance(content, str) or not isinstance(raw_calls, list):
            raise LLMBadResponse(f"OpenAI-compatible server at {self.url} sent a malformed "
                                 f"message: {excerpt(json.dumps(message))}")
        calls = [self._read_call(raw) for raw in raw_calls]
        legacy = message.get("function_call")
        if not calls and legacy:
            calls = [self._read_call({"function": legacy})]
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        return ChatResult(
            message=Message(role="assistant", content=content, tool_calls=tuple(calls)),
            model=str(body.get("model") or self.model),
            prompt_tokens=optional_int(usage.get("prompt_tokens")),
            completion_tokens=optional_int(usage.get("completion_tokens")),
        )

    def _read_call(self, raw: Any) -> ToolCall:
        function = raw.get("function") if isinstance(raw, dict) else None
        if not isinstance(function, dict):
            raise LLMBadResponse(f"OpenAI-compatible server at {self.url} sent a malformed "
                                 f"tool call: {excerpt(json.dumps(raw))}")
        return tool_call(raw.get("id"), function.get("name"), function.get("arguments", "{}"))


def _to_wire(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["content"] = message.content or ""  # never null: llama.cpp refuses it
        # malformed arguments go back as "{}": llama.cpp parses them to render the template
        wire["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name,
                          "arguments": json.dumps(c.arguments if c.arguments is not None else {})}}
            for c in message.tool_calls
        ]
    return wire


def _model_in(model: str, ids: Sequence[str]) -> bool:
    """llama.cpp reports the model's path or alias: match the id, its basename, or the basename
    without ``.gguf``."""
    for model_id in ids:
        base = PurePosixPath(model_id).name
        if model in (model_id, base, base.removesuffix(".gguf")):
            return True
    return False
