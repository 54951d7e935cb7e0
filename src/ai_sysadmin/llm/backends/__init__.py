"""LLM backends, one per wire protocol, chosen by ``llm.backend``.

Adding a backend touches its module and one line of :data:`BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Callable

from ...config import LLMSettings
from .base import ChatBackend
from .ollama import OllamaBackend
from .openai_compat import OpenAIBackend

BACKENDS: dict[str, Callable[[LLMSettings], ChatBackend]] = {
    "ollama": OllamaBackend,
    "openai": OpenAIBackend,
}


def make_backend(settings: LLMSettings) -> ChatBackend:
    """The backend ``settings.backend`` names. An unknown name is an error, never a fallback.

    Raises ConfigError when ``llm.api_key_file`` is set but cannot be read."""
    try:
        factory = BACKENDS[settings.backend]
    except KeyError:
        raise ValueError(
            f"unknown LLM backend {settings.backend!r}; known: {', '.join(sorted(BACKENDS))}"
        ) from None
    return factory(settings)


__all__ = ["BACKENDS", "ChatBackend", "OllamaBackend", "OpenAIBackend", "make_backend"]
