"""LLM backends, one per wire protocol, chosen by ``llm.backend``.

Adding a backend touches its module and one line of :data:`BACKENDS`. A backend's module (and
``httpx`` with it) is imported only when one is made: commands that never talk to the model
do not pay for it at start.
"""

from __future__ import annotations

import contextlib
from importlib import import_module
from typing import TYPE_CHECKING

from .base import ChatBackend

if TYPE_CHECKING:
    from ...config import LLMSettings
    from ..types import BackendStatus

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


#: how long a probe waits for the server's list of models: a server that answers at all
#: lists them at once (Ollama does while it loads a model), where a chat may take minutes
PROBE_SECONDS = 10.0


async def probe(settings: LLMSettings, seconds: float = PROBE_SECONDS) -> BackendStatus:
    """How the server ``settings`` name is now: one status call (no chat: it costs the server
    nothing) on a backend made for it and closed after. Never raises for the server's sake: a
    server that gives no answer within ``seconds`` is unreachable, with that as its detail.

    Raises what :func:`make_backend` raises (an unreadable ``llm.api_key_file``)."""
    from ...aio import within
    from ..types import BackendStatus
    from ..urls import masked_url

    backend = make_backend(settings)
    try:
        return await within(backend.status(), seconds)
    except TimeoutError:
        return BackendStatus(settings.backend, masked_url(settings.url.rstrip("/")),
                             settings.model, False, False, f"no answer within {seconds:g} s")
    finally:
        with contextlib.suppress(Exception):  # a close that fails loses no answer
            await backend.aclose()


__all__ = ["BACKENDS", "PROBE_SECONDS", "ChatBackend", "make_backend", "probe"]


def check_api_key(settings: LLMSettings) -> None:
    """Read ``llm.api_key_file`` as a backend made from ``settings`` would, without making one
    (no ``httpx`` import): a start that would send the key checks it first.

    Raises ConfigError when the file is set but cannot be used."""
    from ._common import read_api_key

    read_api_key(settings.api_key_file)
