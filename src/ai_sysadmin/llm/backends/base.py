"""The interface every LLM backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from ..types import BackendStatus, ChatResult, Message, ResponseSchema, ToolSpec


class ChatBackend(ABC):
    #: "ollama" or "openai"
    name: str

    @abstractmethod
    async def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        response_schema: ResponseSchema | None = None,
    ) -> ChatResult:
        """One completion. Raises LLMUnavailable (down, timeout; LLMBusy: still busy, HTTP 429
        or 503, after the tries within the time limit) or LLMBadResponse (another error
        status, garbage); a tool call with malformed arguments is NOT an error here: it comes
        back as a ToolCall whose ``arguments`` is None. ``max_tokens`` unset: ``llm.max_tokens``
        (the server's own limit when that is unset too). With ``response_schema`` the server is
        asked to hold the answer's text to that JSON schema; whether it did is for the caller
        to check (a server that ignores the request answers free text)."""

    @abstractmethod
    async def status(self) -> BackendStatus:
        """Whether the server answers and the configured model is there. Never raises."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release HTTP connections."""
