"""What a worker does with a queued request: ``chat`` is one completion by the backend."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..config import Settings
from .backends import make_backend
from .backends.base import ChatBackend
from .readiness import Readiness
from .types import ChatResult, LLMBadResponse, Message, ResponseSchema, ToolSpec

Handler = Callable[[Any], Awaitable[dict[str, Any]]]


def chat_payload(
    messages: list[Message], tools: list[ToolSpec], temperature: float | None = None,
    response_schema: ResponseSchema | None = None, max_tokens: int | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "messages": [m.to_dict() for m in messages],
        "tools": [{"name": t.name, "description": t.description, "parameters": t.parameters}
                  for t in tools],
        "temperature": temperature,
    }
    # only when asked: a request without them stays byte for byte what it was before, so
    # requests stored by an older version are read alike and coalesce as they did
    if response_schema is not None:
        payload["response_schema"] = response_schema.to_dict()
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    return payload


def result_payload(result: ChatResult) -> dict[str, Any]:
    return {"message": result.message.to_dict(), "model": result.model,
            "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "cut": result.cut}


def chat_result(payload: dict[str, Any]) -> ChatResult:
    try:
        return ChatResult(Message.from_dict(payload["message"]), payload.get("model", ""),
                          payload.get("prompt_tokens"), payload.get("completion_tokens"),
                          payload.get("cut") is True)
    except (KeyError, TypeError) as exc:
        raise LLMBadResponse(f"the worker stored an unusable answer: {exc}") from exc


def build_handler(settings: Settings, backend: ChatBackend | None = None,
                  readiness: Readiness | None = None) -> Handler:
    """The worker's handler: requests of kind ``chat`` go to the configured backend; each
    one's outcome tells ``readiness`` whether the server answers."""
    chosen = backend or make_backend(settings.llm)

    async def handle(request: Any) -> dict[str, Any]:
        if request.kind != "chat":
            raise LLMBadResponse(f"this worker does not serve requests of kind {request.kind!r}")
        payload = request.payload
        messages = [Message.from_dict(m) for m in payload["messages"]]
        tools = [ToolSpec(t["name"], t["description"], t["parameters"])
                 for t in payload.get("tools", [])]
        temperature = payload.get("temperature")
        schema = payload.get("response_schema")
        try:
            wanted = None if schema is None else ResponseSchema.from_dict(schema)
        except (KeyError, TypeError, ValueError) as exc:
            raise LLMBadResponse(f"the request's response schema is unusable: {exc}") from exc
        try:
            result = await chosen.chat(
                messages, tools,
                temperature=settings.llm.temperature if temperature is None else temperature,
                max_tokens=payload.get("max_tokens"), response_schema=wanted,
            )
        except Exception as exc:
            if readiness is not None:
                readiness.chat_failed(exc)
            raise
        if readiness is not None:
            readiness.chat_answered()
        return result_payload(result)

    return handle
