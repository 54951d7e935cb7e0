"""A scripted model served on 127.0.0.1 over both wire protocols by one real HTTP server.

Ollama: ``POST /api/chat``, ``GET /api/tags``, ``GET /api/version``.
OpenAI: ``POST /v1/chat/completions``, ``GET /v1/models``.

Each chat request consumes the next step of the script::

    with ScriptedModel([call("read_journal", unit="nginx.service"), say("nginx is fine")]) as m:
        settings = LLMSettings(url=m.url, model="scripted")
        ...
        assert m.requests[1]["messages"][-1]["role"] == "tool"

A step may be a callable ``request_json -> step`` to answer from the conversation. An exhausted
script answers ``then`` when given (a callable that answers every request from then on, e.g. a
model that plays a role), else ``say("(script exhausted)")``. Requests are served concurrently,
one thread each.

A busy server: ``ScriptedModel([http_error(503), http_error(503), say("ok")])`` answers 503
twice, then the answer; ``ScriptedModel(then=http_error(429, retry_after="1"))`` answers 429
with a ``Retry-After`` header to every chat request.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeAlias

JSON: TypeAlias = dict[str, Any]


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class ScriptedCall:
    name: str
    raw_arguments: str
    #: None for a raw_call: Ollama then sends the raw string instead of an object
    arguments: JSON | None


@dataclass(frozen=True)
class Calls:
    calls: tuple[ScriptedCall, ...]
    text: str = ""


@dataclass(frozen=True)
class HttpError:
    status: int
    body: bytes
    #: extra response headers, e.g. (("Retry-After", "1"),)
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Garbage:
    body: bytes
    content_type: str = "application/json"


@dataclass(frozen=True)
class Respond:
    """A 200 with this JSON body, verbatim, whatever the protocol."""

    body: Any


@dataclass(frozen=True)
class Delay:
    seconds: float
    then: Step


Step: TypeAlias = "Say | Calls | HttpError | Garbage | Respond | Delay | Callable[[JSON], Step]"
#: status, content type, body, extra headers
Reply: TypeAlias = tuple[int, str, bytes, tuple[tuple[str, str], ...]]
EXHAUSTED = "(script exhausted)"


def say(text: str) -> Say:
    return Say(text)


def call(name: str, /, **arguments: Any) -> Calls:
    return Calls((ScriptedCall(name, json.dumps(arguments), arguments),))


def raw_call(name: str, raw_arguments: str) -> Calls:
    return Calls((ScriptedCall(name, raw_arguments, None),))


def calls(steps: Iterable[Calls], text: str = "") -> Calls:
    """Several tool calls in one turn: ``calls([call("a", x=1), raw_call("b", "{")])``."""
    return Calls(tuple(c for step in steps for c in step.calls), text)


def http_error(status: int, body: str | bytes = '{"error": "scripted failure"}', *,
               retry_after: str | None = None) -> HttpError:
    """An error answer; ``retry_after``: its ``Retry-After`` header (seconds or an HTTP date)."""
    headers = () if retry_after is None else (("Retry-After", retry_after),)
    return HttpError(status, body.encode() if isinstance(body, str) else body, headers)


def garbage(body: bytes = b"<html>not json", content_type: str = "application/json") -> Garbage:
    return Garbage(body, content_type)


def respond(body: Any) -> Respond:
    return Respond(body)


def delay(seconds: float, then: Step | None = None) -> Delay:
    return Delay(seconds, say("(delayed)") if then is None else then)


def tool_results(request: JSON) -> list[str]:
    """The contents of the tool messages in a chat request (same shape in both protocols)."""
    return [m.get("content", "") for m in request.get("messages", []) if m.get("role") == "tool"]


def offered_tools(request: JSON) -> set[str]:
    """The names of the tools a chat request offered the model (same shape in both
    protocols)."""
    return {tool["function"]["name"] for tool in request.get("tools") or []}


def response_schema(request: JSON) -> JSON | None:
    """The JSON schema a chat request asked the answer to follow, in either protocol: Ollama's
    ``format`` (the schema itself), OpenAI's ``response_format`` (``json_schema`` or the older
    ``json_object`` with ``schema``); None when it asked for none."""
    if isinstance(request.get("format"), dict):
        return request["format"]
    wanted = request.get("response_format")
    if not isinstance(wanted, dict):
        return None
    if wanted.get("type") == "json_schema":
        return (wanted.get("json_schema") or {}).get("schema")
    return wanted.get("schema")


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    #: when it arrived, on ``time.monotonic``'s clock
    at: float = 0.0


class ScriptedModel:
    def __init__(self, steps: Iterable[Step] = (), *, model: str = "scripted",
                 models: Sequence[str] | None = None, latency: float = 0.0,
                 then: Step | None = None, owner: str = "scripted") -> None:
        self.model = model
        #: the ``owned_by`` of /v1/models' entries ("vllm" for vLLM, "llamacpp" for llama.cpp)
        self.owner = owner
        self.then = then
        #: what /api/tags and /v1/models list; the script answers whatever model is asked
        self.models = list(models) if models is not None else [model]
        #: when set, what /api/tags and /v1/models answer instead of the list (a busy server)
        self.listing_error: HttpError | None = None
        self.latency = latency
        #: the JSON body of every chat request, in arrival order
        self.requests: list[JSON] = []
        #: every request (chat, tags, models, …) with its headers
        self.hits: list[Hit] = []
        self._steps = list(steps)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closing = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.scripted = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                         daemon=True, name="scripted-model")
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._steps)

    def add(self, *steps: Step) -> None:
        with self._lock:
            self._steps.extend(steps)

    def __enter__(self) -> ScriptedModel:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()  # wakes every delayed answer
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._server.drop_connections()

    # -- serving (runs in the server's threads) ----------------------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str],
               body: bytes) -> Reply:
        with self._lock:
            self.hits.append(Hit(method, path, headers, time.monotonic()))
        route = (method, path.split("?")[0])
        if route == ("GET", "/api/version"):
            return _json(200, {"version": "0.0.0-scripted"})
        if route in {("GET", "/api/tags"), ("GET", "/v1/models")} and self.listing_error:
            return _error_reply(self.listing_error)
        if route == ("GET", "/api/tags"):
            listed = [m if ":" in m else f"{m}:latest" for m in self.models]
            return _json(200, {"models": [
                {"name": m, "model": m, "modified_at": "2024-01-01T00:00:00Z", "size": 0,
                 "digest": "0" * 64} for m in listed]})
        if route == ("GET", "/v1/models"):
            return _json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": self.owner}
                for m in self.models]})
        if route in {("POST", "/api/chat"), ("POST", "/v1/chat/completions")}:
            try:
                request = json.loads(body)
            except ValueError:
                return _json(400, {"error": "request body is not JSON"})
            return self._chat("ollama" if path.startswith("/api/") else "openai", request)
        return _json(404, {"error": f"no route {method} {path}"})

    def _chat(self, protocol: str, request: JSON) -> Reply:
        with self._lock:
            self.requests.append(request)
            step: Step = self._steps.pop(0) if self._steps else (
                self.then if self.then is not None else say(EXHAUSTED))
        while callable(step):
            step = step(request)
        if self.latency:
            self._closing.wait(self.latency)
        while isinstance(step, Delay):
            self._closing.wait(step.seconds)
            step = step.then
            while callable(step):
                step = step(request)
        if isinstance(step, HttpError):
            return _error_reply(step)
        if isinstance(step, Garbage):
            return 200, step.content_type, step.body, ()
        if isinstance(step, Respond):
            return _json(200, step.body)
        assert isinstance(step, Say | Calls), f"not a step: {step!r}"
        render = _ollama_reply if protocol == "ollama" else _openai_reply
        return _json(200, render(step, request.get("model") or self.model, request, self._ids))


def _error_reply(step: HttpError) -> Reply:
    try:
        json.loads(step.body)
        kind = "application/json"
    except ValueError:
        kind = "text/plain"
    return step.status, kind, step.body, step.headers


def _json(status: int, body: Any) -> Reply:
    return status, "application/json", json.dumps(body).encode(), ()


def _tokens(request: JSON, text: str) -> tuple[int, int]:
    prompt = sum(len(str(m.get("content") or "")) for m in request.get("messages", []))
    return prompt // 4 + 1, len(text) // 4 + 1


def _ollama_reply(step: Say | Calls, model: str, request: JSON, ids: Iterator[int]) -> JSON:
    message: JSON = {"role": "assistant", "content": step.text}
    if isinstance(step, Calls):
        message["tool_calls"] = [
            {"function": {"name": c.name,
                          "arguments": c.raw_arguments if c.arguments is None else c.arguments}}
            for c in step.calls]
    prompt, completion = _tokens(request, step.text)
    return {"model": model, "created_at": "2024-01-01T00:00:00Z", "message": message,
            "done": True, "done_reason": "stop", "prompt_eval_count": prompt,
            "eval_count": completion}


def _openai_reply(step: Say | Calls, model: str, request: JSON, ids: Iterator[int]) -> JSON:
    message: JSON = {"role": "assistant", "content": step.text}
    finish = "stop"
    if isinstance(step, Calls):
        message["content"] = step.text or None  # what OpenAI and llama.cpp send
        message["tool_calls"] = [
            {"id": f"call_{next(ids)}", "type": "function",
             "function": {"name": c.name, "arguments": c.raw_arguments}}
            for c in step.calls]
        finish = "tool_calls"
    prompt, completion = _tokens(request, step.text)
    return {"id": "chatcmpl-scripted", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a benchmark may open many connections at once
    scripted: ScriptedModel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """End idle keep-alive connections so no handler thread outlives the server."""
        with self._open_lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # a reply in two TCP segments would wait ~40 ms for the client's delayed ACK
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, content_type, payload, extra = self.server.scripted.handle(
            method, self.path, headers, body)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in extra:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:  # the client gave up (timeout) before the answer
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests assert on ScriptedModel.hits instead
