"""Ollama's native ``/api/chat`` with tools (non-streaming), over the shared HTTP exchange.

Tool-call arguments travel as JSON objects here; a server that sends a string instead still
gets its call read (see ``_common.tool_call``). Ollama names no tool call, so each gets an id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..types import ChatResult, Message, ResponseSchema, ToolSpec
from ..urls import base_url
from ._common import (
    HttpBackend,
    assistant_message,
    ollama_message,
    optional_int,
    tools_to_wire,
)

if TYPE_CHECKING:  # annotations only: the settings module costs pydantic's import
    from ...config import LLMSettings


#: Ollama's port, for a ``llm.url`` given as a bare host (as ``OLLAMA_HOST`` allows)
DEFAULT_PORT = 11434


class OllamaBackend(HttpBackend):
    name = "ollama"
    label = "Ollama"
    models_path = "/api/tags"

    def __init__(self, settings: LLMSettings) -> None:
        super().__init__(settings, base_url(settings.url, DEFAULT_PORT))

    async def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        response_schema: ResponseSchema | None = None,
    ) -> ChatResult:
        options: dict[str, Any] = {
            "temperature": self._settings.temperature if temperature is None else temperature,
            "num_ctx": self._settings.context_size,
        }
        max_tokens = self._settings.max_tokens if max_tokens is None else max_tokens
        if max_tokens is not None:
            options["num_predict"] = max_tokens
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [ollama_message(m) for m in messages],
            "stream": False,
            "options": options,
        }
        if tools:
            payload["tools"] = tools_to_wire(tools)
        if response_schema is not None:
            # Ollama takes the schema object itself as `format` (0.5 and later)
            payload["format"] = response_schema.schema
        body = await self.request("POST", "/api/chat", payload)
        if "message" not in body:
            # Ollama reports some failures (a model that fails to load) in a 200 body
            raise self.bad("no chat answer", body.get("error") or body)
        return ChatResult(
            message=assistant_message(self, body["message"], legacy_ok=False),
            model=str(body.get("model") or self.model),
            prompt_tokens=optional_int(body.get("prompt_eval_count")),
            completion_tokens=optional_int(body.get("eval_count")),
            cut=body.get("done_reason") == "length",
        )

    def listed_models(self, body: dict[str, Any]) -> list[str] | None:
        entries = body.get("models")
        if not isinstance(entries, list):
            return None
        return sorted({str(entry[key]) for entry in entries if isinstance(entry, dict)
                       for key in ("name", "model") if entry.get(key)})

    def serves(self, model: str, names: Sequence[str]) -> bool:
        """``qwen2.5`` is listed as ``qwen2.5:latest``; either spelling on either side."""

        def bare(name: str) -> str:
            return name.removesuffix(":latest")

        return any(bare(name) == bare(model) for name in names)

    def missing_model(self) -> str:
        return f"model {self.model!r} is not pulled on {self.url} (ollama pull {self.model})"
