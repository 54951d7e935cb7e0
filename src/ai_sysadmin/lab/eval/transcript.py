"""What the model was asked and what it answered in one scenario, read back from the run's own
LLM request queue.

Every completion the daemon asks for is one queued request whose payload (the messages and
tools the backend then sends) and result (the answer, with the token counts the server
reported) the queue keeps. A scenario runs with a queue of its own, so the queue holds exactly
that scenario's conversations: the transcript, the usage and the place to look for a planted
secret are the requests themselves, not a copy the harness made.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ...config import Settings
from ...llm.queue import Request, open_queue
from ...llm.types import LLMBusy, LLMModelMissing, LLMToolsUnsupported, LLMUnavailable

#: the queue's coalescing key of an investigation: "incident:<id>#<digest of the content>"
_INCIDENT_KEY = "incident:"
#: the errors (a failed request's text begins with its type) of a request that never reached
#: the model: no server, or none that answered in time, or one without the model, or one
#: that refused the request's tools
UNREACHED = frozenset(cls.__name__ for cls in (LLMUnavailable, LLMBusy, LLMModelMissing,
                                               LLMToolsUnsupported))


@dataclass
class Usage:
    """LLM calls (answered or not), tokens as the server reported them, failed requests
    (``unreached``: of them, those that never reached the model)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failed: int = 0
    unreached: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def model_unreached(self) -> bool:
        """The model was asked, and no request ever reached it: nothing it did or did not
        do says how good it is."""
        return self.calls > 0 and self.unreached == self.calls

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.failed += other.failed
        self.unreached += other.unreached

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "failed": self.failed}


def read_requests(settings: Settings) -> list[Request]:
    """Every request of the run's queue, oldest first; empty for a queue that cannot list
    them (only the SQLite queue keeps its requests where the harness can read them)."""
    from ...llm.queue.sqlite import SqliteQueue

    queue = open_queue(settings)
    try:
        if not isinstance(queue, SqliteQueue):
            return []
        ids = [row[0] for row in queue.db.conn.execute("SELECT id FROM requests ORDER BY seq")]
        return [queue.get(request_id) for request_id in ids]
    finally:
        queue.close()


def usage(requests: list[Request]) -> Usage:
    found = Usage()
    for request in requests:
        if request.kind != "chat":
            continue
        found.calls += 1
        result = request.result or {}
        found.prompt_tokens += int(result.get("prompt_tokens") or 0)
        found.completion_tokens += int(result.get("completion_tokens") or 0)
        if request.state == "failed":
            found.failed += 1
            if (request.error or "").partition(":")[0] in UNREACHED:
                found.unreached += 1
            if request.error and request.error not in found.errors:
                found.errors.append(request.error)
    return found


def incident_of(request: Request) -> int | None:
    key = request.coalesce_key or ""
    if not key.startswith(_INCIDENT_KEY):
        return None
    number = key[len(_INCIDENT_KEY):].partition("#")[0]
    return int(number) if number.isdigit() else None


def conversations(requests: list[Request]) -> list[dict[str, Any]]:
    """The conversations, one per investigation: each request of an investigation repeats the
    conversation so far, so only what is new in it is added; a request that does not continue
    the open conversation of its incident (a retry, a new investigation) starts another."""
    talks: list[dict[str, Any]] = []
    open_by_incident: dict[int | None, dict[str, Any]] = {}
    for request in requests:
        if request.kind != "chat":
            continue
        messages = list(request.payload.get("messages") or [])
        incident = incident_of(request)
        talk = open_by_incident.get(incident)
        if talk is None or messages[:len(talk["messages"])] != talk["messages"]:
            talk = {"incident": incident, "tools": [t.get("name") for t in
                                                     request.payload.get("tools") or []],
                    "messages": [], "calls": []}
            talks.append(talk)
            open_by_incident[incident] = talk
        talk["messages"].extend(messages[len(talk["messages"]):])
        call: dict[str, Any] = {"state": request.state}
        if request.result is not None:
            call |= {key: request.result.get(key) for key in
                     ("model", "prompt_tokens", "completion_tokens")}
            answer = request.result.get("message")
            if isinstance(answer, dict):
                talk["messages"].append(answer)
        if request.error:
            call["error"] = request.error
        talk["calls"].append(call)
    return talks


def tool_calls(talks: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], str]]:
    """Every tool call the model made, with the content of the tool message answering it
    ("" when none did)."""
    for talk in talks:
        answers = {m.get("tool_call_id"): str(m.get("content") or "")
                   for m in talk["messages"] if m.get("role") == "tool"}
        for message in talk["messages"]:
            if message.get("role") != "assistant":
                continue
            for call in message.get("tool_calls") or []:
                yield call, answers.get(call.get("id"), "")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def secret_seen(requests: list[Request], secret: str) -> bool:
    """Whether ``secret`` is in anything sent to the model (any string of any payload)."""
    return any(secret in text for request in requests for text in _strings(request.payload))
