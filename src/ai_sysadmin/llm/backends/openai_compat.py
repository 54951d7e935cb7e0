"""OpenAI-compatible ``/v1/chat/completions`` (llama.cpp server, vLLM, …), over the shared HTTP
exchange.

Compatible servers differ in the details, so the body is read tolerantly (``_common``): tool
calls come from ``message.tool_calls``, the legacy ``function_call`` only when no
``tool_calls`` came; ``arguments`` is a JSON string. llama.cpp's server reports the model as
its file path, so ``status`` matches the id, its basename, or the basename without ``.gguf``;
and, serving one model, it answers whatever model is asked, so one model listed under another
name serves the configured one too (said in ``status``'s detail).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from ..types import (
    ChatResult,
    LLMBadResponse,
    LLMModelMissing,
    Message,
    ResponseSchema,
    ToolSpec,
)
from ..urls import base_url
from ._common import (
    HttpBackend,
    assistant_message,
    openai_message,
    optional_int,
    tools_to_wire,
)

if TYPE_CHECKING:  # annotations only: the settings module costs pydantic's import
    from ...config import LLMSettings


#: the ``owned_by`` of the one model of servers known to answer whatever model a request
#: names: llama.cpp's llama-server, and llama-cpp-python's server. Others refuse a name
#: they do not list, however few they serve: vLLM, Ollama (whose ``owned_by`` is the name's
#: namespace: "library", a user's, "hf.co/..."), llama-swap and LiteLLM (they route by it)
_ANY_NAME = frozenset({"llamacpp", "me"})


class OpenAIBackend(HttpBackend):
    name = "openai"
    label = "OpenAI-compatible server"
    models_path = "/models"

    def __init__(self, settings: LLMSettings) -> None:
        base = base_url(settings.url)
        super().__init__(settings, base if base.endswith("/v1") else base + "/v1")

    async def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        response_schema: ResponseSchema | None = None,
    ) -> ChatResult:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [openai_message(m) for m in messages],
            "temperature": self._settings.temperature if temperature is None else temperature,
        }
        if tools:
            payload["tools"] = tools_to_wire(tools)
            payload["tool_choice"] = "auto"
        max_tokens = self._settings.max_tokens if max_tokens is None else max_tokens
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        if response_schema is not None:
            payload["response_format"] = self._response_format(response_schema)
        try:
            body = await self.request("POST", "/chat/completions", payload)
        except LLMModelMissing:
            raise
        except LLMBadResponse as exc:
            if response_schema is None or "response_format" not in str(exc):
                raise
            other = "json_object" if self._settings.response_format == "json_schema" \
                else "json_schema"
            raise LLMBadResponse(f"{exc}; if this server takes the other form of "
                                 f"response_format, set llm.response_format = \"{other}\""
                                 ) from None
        choices = body.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict):
            raise self.bad("no chat completion (no choices)", body)
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        return ChatResult(
            message=assistant_message(self, choice.get("message"), legacy_ok=True),
            model=str(body.get("model") or self.model),
            prompt_tokens=optional_int(usage.get("prompt_tokens")),
            completion_tokens=optional_int(usage.get("completion_tokens")),
            cut=choice.get("finish_reason") == "length",
        )

    def _response_format(self, wanted: ResponseSchema) -> dict[str, Any]:
        """OpenAI's form, which llama.cpp's llama-server and vLLM enforce; llama-cpp-python's
        server knows only the older ``json_object`` with a ``schema`` beside it (and answers
        the other with HTTP 422), hence ``llm.response_format``."""
        if self._settings.response_format == "json_object":
            return {"type": "json_object", "schema": wanted.schema}
        return {"type": "json_schema", "json_schema": wanted.to_dict()}

    def listed_models(self, body: dict[str, Any]) -> list[str] | None:
        entries = body.get("data")
        if not isinstance(entries, list):
            return None
        return sorted({str(e["id"]) for e in entries if isinstance(e, dict) and e.get("id")})

    def serves(self, model: str, names: Sequence[str]) -> bool:
        for name in names:
            base = PurePosixPath(name).name
            if model in (name, base, base.removesuffix(".gguf")):
                return True
        return False

    def any_name_for(self, body: dict[str, Any], names: Sequence[str]) -> str | None:
        """A server that lists one model and answers with it whatever model a request names:
        llama.cpp's llama-server (lists the ``-m`` path, unless ``--alias`` names it) and
        llama-cpp-python's, known by their ``owned_by`` (:data:`_ANY_NAME`). Any other
        server's list is the truth: vLLM and Ollama refuse a model they do not list (HTTP
        404), and a proxy routes by the name."""
        if len(names) != 1:
            return None
        owners = {str(e.get("owned_by")) for e in body.get("data", ()) if isinstance(e, dict)}
        return names[0] if owners and owners <= _ANY_NAME else None

    def missing_model(self) -> str:
        return f"model {self.model!r} is not served by {self.url}"
