"""Helpers both wire protocols share: the API key file, tool-call arguments, JSON bodies."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ..types import LLMBadResponse, ToolCall

#: how much of an unusable body an error message quotes
BODY_EXCERPT = 200


def read_api_key(path: Path | None) -> str | None:
    """The key from ``llm.api_key_file``, stripped; None when no file is configured.

    A configured file that cannot be read or is empty is a configuration error, never a silent
    "no key". The key itself is never put in a message."""
    if path is None:
        return None
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(str(path), [f"llm.api_key_file: cannot read: {exc.strerror}"]) from None
    if not key:
        raise ConfigError(str(path), ["llm.api_key_file: the file is empty"])
    return key


def excerpt(text: str | bytes, limit: int = BODY_EXCERPT) -> str:
    """A short, single-line quote of a body for an error message."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def decode_object(content: bytes, where: str) -> dict[str, Any]:
    """A response body that must be a JSON object, else LLMBadResponse naming ``where``."""
    try:
        body = json.loads(content)
    except ValueError:
        raise LLMBadResponse(f"{where} answered with a body that is not JSON: "
                             f"{excerpt(content)!r}") from None
    if not isinstance(body, dict):
        raise LLMBadResponse(f"{where} answered with JSON that is not an object: "
                             f"{excerpt(content)!r}")
    return body


def new_call_id() -> str:
    """An id for a tool call the server did not name (Ollama does not)."""
    return f"call_{uuid.uuid4().hex[:12]}"


def tool_call(call_id: Any, name: Any, arguments: Any) -> ToolCall:
    """A ToolCall from what the server sent. ``arguments`` may be an object (Ollama), a JSON
    string (OpenAI) or anything else; only a JSON object gives ``arguments``, anything else
    leaves it None for the agent to report back to the model."""
    if isinstance(arguments, str):
        raw = arguments
        try:
            parsed = json.loads(arguments)
        except ValueError:
            parsed = None
    else:
        raw = json.dumps(arguments)
        parsed = arguments
    return ToolCall(
        id=call_id if isinstance(call_id, str) and call_id else new_call_id(),
        name=name if isinstance(name, str) else "",
        raw_arguments=raw,
        arguments=parsed if isinstance(parsed, dict) else None,
    )


def optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
