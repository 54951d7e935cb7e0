"""Backend-neutral chat types. Backends translate these to and from their wire protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

from ..errors import AiSysadminError

Role = Literal["system", "user", "assistant", "tool"]


class LLMError(AiSysadminError):
    """The LLM could not give a usable answer."""


class LLMUnavailable(LLMError):
    """The server is down, refuses the connection, or did not answer in time."""


class LLMBusy(LLMUnavailable):
    """The server answered that it is busy for now (HTTP 429 rate-limited, 503 loading the
    model or overloaded), still after the tries its request was given: like a server that is
    down, it may well answer later."""


class LLMBadResponse(LLMError):
    """The server answered, but with an error status or something that is not a chat answer."""


class LLMServerError(LLMBadResponse):
    """The server answered with an error of its own (HTTP 5xx other than busy): a proxy
    whose server is down or slow (502, 504), a server that failed mid-answer. Unlike an
    unusable answer, it may well be gone when asked later."""


class LLMModelMissing(LLMBadResponse):
    """The server answered that it does not have the configured model (HTTP 404 about it):
    asking again will not help until someone pulls or loads it."""


class LLMToolsUnsupported(LLMBadResponse):
    """The server refused a request that offered tools: the model makes no tool calls
    (Ollama's "does not support tools"), or the server was not started to read them (vLLM
    without ``--enable-auto-tool-choice``, llama.cpp's llama-server without ``--jinja``).
    The model never saw the question; asking again will not help until the server or the
    model changes, or investigations go without tools (``agent.mode = "evidence"``)."""


#: the deepest nesting of a call's arguments taken (one object: 1); ours need three levels.
#: Deeper is malformed: the parser takes up to the stack's limit, and the next request,
#: which writes the call back from deeper in the stack, raised RecursionError
MAX_ARGUMENT_DEPTH = 64


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model asked for. ``arguments`` is None when ``raw_arguments`` is not a JSON
    object, or one nested deeper than :data:`MAX_ARGUMENT_DEPTH`; the agent then answers with
    a tool error the model can correct."""

    id: str
    name: str
    raw_arguments: str
    arguments: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    #: for role "tool": which call this answers, and the tool's name
    tool_call_id: str | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "content": self.content,
            "tool_calls": [
                {"id": c.id, "name": c.name, "raw_arguments": c.raw_arguments,
                 "arguments": c.arguments}
                for c in self.tool_calls
            ],
            "tool_call_id": self.tool_call_id,
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        return cls(
            role=data["role"],
            content=data.get("content") or "",
            tool_calls=tuple(
                ToolCall(c["id"], c["name"], c.get("raw_arguments", ""), c.get("arguments"))
                for c in data.get("tool_calls") or []
            ),
            tool_call_id=data.get("tool_call_id"),
            name=data.get("name"),
        )


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """What the model reads about a tool: its name, description and JSON-schema parameters."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ResponseSchema:
    """A JSON schema the answer must follow, enforced by the server while it decodes: Ollama's
    ``format``, the OpenAI-compatible ``response_format`` (llama.cpp, vLLM). ``name`` and
    ``strict`` are what the OpenAI form carries besides the schema."""

    name: str
    schema: dict[str, Any]
    strict: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "schema": self.schema, "strict": self.strict}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResponseSchema:
        return cls(str(data["name"]), dict(data["schema"]), bool(data.get("strict", True)))


@dataclass(frozen=True, slots=True)
class ChatResult:
    message: Message
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    #: the server stopped the answer at its token limit (``finish_reason``/``done_reason``
    #: "length"): what it says is not all it meant to
    cut: bool = False


@dataclass(frozen=True, slots=True)
class BackendStatus:
    backend: str
    url: str
    model: str
    reachable: bool
    model_present: bool
    detail: str = ""
    models: tuple[str, ...] = field(default_factory=tuple)


class Priority(IntEnum):
    """Lower value is served first."""

    INTERACTIVE = 0
    AUTONOMOUS = 1
    BATCH = 2
