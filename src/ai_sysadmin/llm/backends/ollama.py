"""Ollama's native ``/api/chat`` with tools, through the official ``ollama`` client.

The client's typed ``ChatResponse`` insists that tool-call arguments are an object, so a server
that sends them as a string would fail validation and lose the call. We therefore take the raw
response from the client (``_request_raw``: its transport, host parsing and error translation,
present from ollama 0.4 on) and read the JSON body ourselves, tolerantly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import ollama

from ...config import LLMSettings
from ..types import (
    BackendStatus,
    ChatResult,
    LLMBadResponse,
    LLMError,
    LLMUnavailable,
    Message,
    ToolSpec,
)
from ._common import decode_object, excerpt, optional_int, read_api_key, tool_call
from .base import ChatBackend


class OllamaBackend(ChatBackend):
    name = "ollama"

    def __init__(self, settings: LLMSettings) -> None:
        self.url = settings.url.rstrip("/")
        self.model = settings.model
        self._settings = settings
        api_key = read_api_key(settings.api_key_file)
        headers = {"authorization": f"Bearer {api_key}"} if api_key else None
        self._client = ollama.AsyncClient(
            host=self.url,
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            headers=headers,
        )

    async def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> ChatResult:
        options: dict[str, Any] = {
            "temperature": self._settings.temperature if temperature is None else temperature,
            "num_ctx": self._settings.context_size,
        }
        if max_tokens is not None:
            options["num_predict"] = max_tokens
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [_to_wire(m) for m in messages],
            "stream": False,
            "options": options,
        }
        if tools:
            payload["tools"] = [
                {"type": "function",
                 "function": {"name": t.name, "description": t.description,
                              "parameters": t.parameters}}
                for t in tools
            ]
        body = await self._request("POST", "/api/chat", payload)
        return self._parse_chat(body)

    async def status(self) -> BackendStatus:
        def result(reachable: bool, present: bool = False, detail: str = "",
                   models: Sequence[str] = ()) -> BackendStatus:
            return BackendStatus(self.name, self.url, self.model, reachable, present, detail,
                                 tuple(models))

        try:
            body = await self._request("GET", "/api/tags")
        except LLMUnavailable as exc:
            return result(False, detail=str(exc))
        except LLMError as exc:
            return result(True, detail=str(exc))
        except Exception as exc:  # a status probe reports, it never raises
            return result(False, detail=f"unexpected error: {type(exc).__name__}: {exc}")
        entries = body.get("models")
        if not isinstance(entries, list):
            return result(True, detail="/api/tags answered without a list of models")
        names = sorted({
            str(entry.get(key))
            for entry in entries if isinstance(entry, dict)
            for key in ("name", "model") if entry.get(key)
        })
        present = _model_in(self.model, names)
        detail = "" if present else f"model {self.model!r} is not pulled on {self.url}"
        return result(True, present, detail, names)

    async def aclose(self) -> None:
        await self._client.close()

    async def _request(self, method: str, path: str,
                       payload: dict[str, Any] | None = None) -> dict[str, Any]:
        where = f"Ollama at {self.url}"
        try:
            response = await self._client._request_raw(method, path, json=payload)
        except ollama.ResponseError as exc:
            raise LLMBadResponse(
                f"{where} answered HTTP {exc.status_code} to {path}: {excerpt(str(exc.error))}"
            ) from None
        except AttributeError:
            # ollama's ResponseError calls .get() on any JSON error body: a body of `null` or
            # `"text"` (a proxy's) breaks it before we see the status
            raise LLMBadResponse(f"{where} answered {path} with an HTTP error whose body is "
                                 "not an object") from None
        except (ConnectionError, httpx.ConnectError):  # the client turns ConnectError into this
            raise LLMUnavailable(f"cannot connect to {where} (refused or unreachable)") from None
        except httpx.ConnectTimeout:
            raise LLMUnavailable(f"{where} did not accept a connection within "
                                 f"{self._settings.connect_timeout:g}s") from None
        except httpx.TimeoutException:
            raise LLMUnavailable(f"{where} did not answer {path} within "
                                 f"{self._settings.timeout:g}s") from None
        except httpx.TransportError as exc:
            raise LLMUnavailable(f"lost the connection to {where}: {exc}") from None
        return decode_object(response.content, f"{where} ({path})")

    def _parse_chat(self, body: dict[str, Any]) -> ChatResult:
        message = body.get("message")
        if not isinstance(message, dict):
            reason = body.get("error") or "no message"
            raise LLMBadResponse(f"Ollama at {self.url} sent no chat answer: "
                                 f"{excerpt(str(reason))}")
        content = message.get("content") or ""
        raw_calls = message.get("tool_calls") or []
        if not isinstance(content, str) or not isinstance(raw_calls, list):
            raise LLMBadResponse(f"Ollama at {self.url} sent a malformed message: "
                                 f"{excerpt(repr(message))}")
        calls = []
        for raw in raw_calls:
            function = raw.get("function") if isinstance(raw, dict) else None
            if not isinstance(function, dict):
                raise LLMBadResponse(f"Ollama at {self.url} sent a malformed tool call: "
                                     f"{excerpt(repr(raw))}")
            calls.append(tool_call(raw.get("id"), function.get("name"),
                                   function.get("arguments", {})))
        return ChatResult(
            message=Message(role="assistant", content=content, tool_calls=tuple(calls)),
            model=str(body.get("model") or self.model),
            prompt_tokens=optional_int(body.get("prompt_eval_count")),
            completion_tokens=optional_int(body.get("eval_count")),
        )


def _to_wire(message: Message) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        # a call whose arguments were malformed goes back as {}: Ollama wants an object here
        wire["tool_calls"] = [
            {"function": {"name": c.name, "arguments": c.arguments or {}}}
            for c in message.tool_calls
        ]
    if message.role == "tool" and message.name:
        wire["tool_name"] = message.name
    return wire


def _model_in(model: str, names: Sequence[str]) -> bool:
    """``qwen2.5`` is listed as ``qwen2.5:latest``; accept either spelling on either side."""

    def bare(name: str) -> str:
        return name.removesuffix(":latest")

    return any(bare(name) == bare(model) for name in names)
