"""LLM backends, one per wire protocol, chosen by ``llm.backend``.

Adding a backend touches its module and one line of :data:`BACKENDS`. A backend's module (and
``httpx`` with it) is imported only when one is made: commands that never talk to the model
do not pay for it at start.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from .base import ChatBackend

if TYPE_CHECKING:
    from ...config import LLMSettings

#: backend name -> "module:class" within this package
BACKENDS: dict[str, str] = {
    "ollama": "ollama:OllamaBackend",
    "openai": "openai_compat:OpenAIBackend",
}


def make_backend(settings: LLMSettings) -> ChatBackend:
    """The backend ``settings.backend`` names. An unknown name is an error, never a fallback.

    Raises ConfigError when ``llm.api_key_file`` is set but cannot be read, or ``llm.url`` is
    not an http(s) URL."""
    try:
        where = BACKENDS[settings.backend]
    except KeyError:
        raise ValueError(
            f"unknown LLM backend {settings.backend!r}; known: {', '.join(sorted(BACKENDS))}"
        ) from None
    module, _, cls = where.partition(":")
    backend: ChatBackend = getattr(import_module(f".{module}", __name__), cls)(settings)
    return backend


__all__ = ["BACKENDS", "ChatBackend", "make_backend"]
