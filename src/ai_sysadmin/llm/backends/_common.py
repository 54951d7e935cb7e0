"""What both wire protocols share, in one place: the HTTP exchange and how its failures map to
the typed errors of ``llm/types.py``, the status probe, and tool calls in both formats.

Plain ``httpx``, no vendor client. The ``ollama`` client's typed ``ChatResponse`` rejects a
response whose tool-call arguments are a string (servers do send that), losing every call in
it; the ``openai`` client does not validate bodies, so we would re-read them anyway; and
importing the two cost about half a second of every command's start.

Failures, for every request of every backend:

- refused, unreachable, no connection in ``connect_timeout``, no answer in ``timeout``, the
  connection lost mid-answer: :class:`LLMUnavailable` (the server may well be fine later);
- HTTP 429 (rate-limited) or 503 (loading the model, overloaded): the server is busy for a
  while, so the request is tried again, after its ``Retry-After`` when it gives one, else after
  a doubling pause, within the request's time limit (``connect_timeout`` + ``timeout``, all tries
  together); still busy after that: :class:`LLMBusy`, an :class:`LLMUnavailable`;
- another HTTP error status: :class:`LLMBadResponse` quoting the server's own error text; a 404
  about the model: :class:`LLMModelMissing`; one to a request with tools that says the
  model or the server takes none (:data:`NO_TOOLS`, whatever its status):
  :class:`LLMToolsUnsupported`, saying what to do; a 5xx: :class:`LLMServerError` (a proxy's
  502 when the server behind it is down: an investigation waits it out instead of giving up);
- a 2xx body that is not a JSON object, or not the protocol's answer: :class:`LLMBadResponse`;
- a body longer than :data:`MAX_ANSWER_BYTES` (a server that streams without end): read no
  further, :class:`LLMBadResponse`.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import re
import time
import uuid
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ... import __version__
from ...aio import within
from ...config import read_header_secret, readable_note
from ...errors import ConfigError, SecretFileError
from ...redact import redact_cut
from ..strict_json import nested_deeper, strict_json
from ..types import (
    MAX_ARGUMENT_DEPTH,
    BackendStatus,
    LLMBadResponse,
    LLMBusy,
    LLMError,
    LLMModelMissing,
    LLMServerError,
    LLMToolsUnsupported,
    LLMUnavailable,
    Message,
    ToolCall,
    ToolSpec,
)
from ..urls import masked_url, url_query
from .base import ChatBackend

if TYPE_CHECKING:  # annotations only: the settings module costs pydantic's import
    from ...config import LLMSettings


log = logging.getLogger("ai_sysadmin.service")

#: how much of an unusable body an error message quotes
BODY_EXCERPT = 200

#: statuses that say "busy, ask again later", and what each means
BUSY_STATUSES = {429: "too many requests", 503: "loading the model or overloaded"}
#: tries of one request while its server answers busy, the first one included
BUSY_TRIES = 6
#: the pause after the first busy answer that gives no Retry-After; doubled after each
BUSY_FIRST_PAUSE = 0.5
#: the most of one answer read: far more than any model writes within a context (a few
#: hundred KB of JSON), bounded whatever a server sends; one that streams without end (an
#: Ollama that ignored "stream": false, a proxy in a loop) would fill the memory
MAX_ANSWER_BYTES = 16 * 2**20
#: what a server's error says when a request offered tools it cannot take, and why, in its
#: words: Ollama for a model without tool support (its template has none), vLLM started
#: without a tool-call parser (``tool_choice: "auto"`` is what it refuses), llama.cpp's
#: llama-server without --jinja (an HTTP 500 in some versions: no outage to wait out)
NO_TOOLS = (
    ("does not support tools", "the model makes no tool calls"),
    ("--enable-auto-tool-choice", "vLLM takes tool calls only when started with "
                                  "--enable-auto-tool-choice and a --tool-call-parser"),
    ("requires --jinja", "llama.cpp's llama-server takes tool calls only with --jinja"),
)
#: what to do about it, for both kinds of conversation
NO_TOOLS_ADVICE = ('an investigation goes without tool calls with agent.mode = "evidence" '
                   "(or the model's entry in [agent.modes]); a conversation needs a model and "
                   "a server that make them")
#: the longest pause taken: a server that asks for more is unavailable for now, and the
#: caller (an investigation's backoff, a person) is better told so at once
BUSY_MAX_PAUSE = 60.0


def read_api_key(path: Path | None) -> str | None:
    """The key from ``llm.api_key_file``; None when no file is configured.

    A configured file that cannot be used (unreadable, empty, more than one word of visible
    ASCII) is a configuration error, never a silent "no key" (:func:`read_header_secret`)."""
    if path is None:
        return None
    try:
        key = read_header_secret(path, "llm.api_key_file")
    except SecretFileError as exc:
        raise ConfigError(str(path), [str(exc).replace(f" {path}:", ":", 1)]) from None
    if note := readable_note(path, "llm.api_key_file"):
        # said, not refused, as for the notification channels' files; read once a backend
        # (a worker, a conversation), so said once there
        log.warning("%s", note, extra={"event": "credential_readable"})
    return key


def excerpt(text: str | bytes, limit: int = BODY_EXCERPT) -> str:
    """A short, single-line quote of a body for an error message, masked before it is cut
    (a proxy may quote the key it was sent, and one cut in two would no longer be found)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = " ".join(text.split())
    shown = redact_cut(text, limit)
    return shown if len(text) <= limit else shown + "…"


def error_text(content: bytes) -> str:
    """The server's own words from an error body: Ollama's ``{"error": "..."}``, OpenAI's and
    llama.cpp's ``{"error": {"message": "..."}}``, else the body itself."""
    try:
        body = strict_json(content)
    except ValueError:
        return excerpt(content)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return excerpt(error) if isinstance(error, str) and error.strip() else excerpt(content)


def retry_after(value: str | None, now: float) -> float | None:
    """The seconds a ``Retry-After`` header asks to wait, given as seconds or as an HTTP date
    (``now``: this machine's clock, to which the date is compared); None when there is no
    header or it says neither."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            seconds = when.replace(tzinfo=when.tzinfo or UTC).timestamp() - now
        except (TypeError, ValueError, OverflowError, IndexError):
            # a server's header is its text: a zone offset of 20 digits is no date either
            return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


@dataclass(frozen=True, slots=True)
class Answer:
    """A server's whole answer, read within :data:`MAX_ANSWER_BYTES`."""

    status_code: int
    headers: httpx.Headers
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def is_redirect(self) -> bool:
        return 300 <= self.status_code < 400 and "location" in self.headers


class HttpBackend(ChatBackend):
    """A backend that speaks JSON over HTTP: the request, the error mapping and ``status``.

    A subclass says where its models are listed and how to read and match them."""

    #: how errors name the server, e.g. "Ollama"
    label: str
    #: the path that lists the server's models, relative to the base URL
    models_path: str

    def __init__(self, settings: LLMSettings, base: str) -> None:
        #: the URL as messages show it: a password in it is masked
        self.url = masked_url(settings.url.rstrip("/"))
        self.model = settings.model
        self._settings = settings
        api_key = read_api_key(settings.api_key_file)
        headers = {"accept": "application/json", "user-agent": f"ai-sysadmin/{__version__}"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self._http = httpx.AsyncClient(
            base_url=base,
            params=httpx.QueryParams(url_query(settings.url)),
            headers=headers,
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            # never followed: a redirect would send the conversation (host text, masked as it
            # is) wherever the server points, another origin included; said, to be configured
            follow_redirects=False,
        )
        self._prefix = httpx.URL(base).path.rstrip("/")

    @property
    def where(self) -> str:
        return f"{self.label} at {self.url}"

    async def request(self, method: str, path: str, payload: dict[str, Any] | None = None,
                      *, busy_tries: int = BUSY_TRIES) -> dict[str, Any]:
        """One exchange, tried up to ``busy_tries`` times while the server answers busy; the
        body as a JSON object, or the typed error the module doc lists."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        # httpx's timeout is per read: a server that drips its answer a byte at a time would
        # hold the worker's slot for as long as it likes; so would one that stays busy
        limit = self._settings.connect_timeout + self._settings.timeout
        tries = 0
        while True:
            tries += 1
            response = await self._exchange(method, path, payload,
                                            limit - (loop.time() - started))
            if response.status_code not in BUSY_STATUSES:
                return self._body(path, response, bool(payload and payload.get("tools")))
            pause = self._busy_pause(path, response, tries, busy_tries,
                                     (loop.time() - started, limit))
            await asyncio.sleep(pause)

    async def _exchange(self, method: str, path: str, payload: dict[str, Any] | None,
                        seconds: float) -> Answer:
        """One HTTP exchange, given ``seconds`` to finish; a failure to get an answer is the
        typed error the module doc lists."""
        shown = self._prefix + path
        try:
            return await within(self._read_kept_alive(method, path, payload), seconds)
        except TimeoutError:
            raise LLMUnavailable(f"{self.where} did not finish answering {shown} within "
                                 f"{self._settings.timeout:g}s") from None
        except httpx.ConnectTimeout:
            raise LLMUnavailable(f"{self.where} did not accept a connection within "
                                 f"{self._settings.connect_timeout:g}s") from None
        except httpx.ConnectError:
            raise LLMUnavailable(f"cannot connect to {self.where} "
                                 "(refused or unreachable)") from None
        except httpx.TimeoutException:
            raise LLMUnavailable(f"{self.where} did not answer {shown} within "
                                 f"{self._settings.timeout:g}s") from None
        except httpx.TransportError as exc:
            raise LLMUnavailable(f"lost the connection to {self.where} during {shown}: "
                                 f"{type(exc).__name__}: {exc}") from None
        except httpx.RequestError as exc:  # endless redirects, an undecodable encoding
            raise LLMBadResponse(f"{self.where} answered {shown} unusably: "
                                 f"{type(exc).__name__}: {exc}") from None

    async def _read_kept_alive(self, method: str, path: str,
                               payload: dict[str, Any] | None) -> Answer:
        """:meth:`_read`, once more on a fresh connection where the server closed the one
        kept alive from the last request just as this one went out (it ends idle ones when
        it likes): no byte of an answer came, and the request is the same conversation."""
        try:
            return await self._read(method, path, payload)
        except httpx.RemoteProtocolError as exc:
            if "without sending a response" not in str(exc):
                raise
            log.info("%s closed a kept-alive connection as %s went out: asked again",
                     self.where, self._prefix + path)
            return await self._read(method, path, payload)

    async def _read(self, method: str, path: str, payload: dict[str, Any] | None) -> Answer:
        """The answer, its body read as it comes and no further than :data:`MAX_ANSWER_BYTES`
        (decoded: a small compressed body may unpack to far more)."""
        async with self._http.stream(method, path, json=payload) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    began = excerpt((chunks[0] if chunks else chunk)[:BODY_EXCERPT * 4])
                    raise LLMBadResponse(
                        f"{self.where} answered {self._prefix + path} with more than "
                        f"{MAX_ANSWER_BYTES // 2**20} MiB, far more than any answer of a "
                        f"model: read no further"
                        f"{f' (it began {began!r})' if began else ''}")
                chunks.append(chunk)
            return Answer(response.status_code, response.headers, b"".join(chunks))

    def _busy_pause(self, path: str, response: Answer, tries: int, busy_tries: int,
                    spent: tuple[float, float]) -> float:
        """The pause before trying again after a busy answer: its Retry-After, else a pause
        that doubles from try to try (stretched by up to a quarter, so that several workers
        turned away together do not come back together). :class:`LLMBusy` when the tries are
        spent or the pause would take the request past its time limit (``spent``: seconds
        spent so far, and the limit)."""
        status = response.status_code
        elapsed, limit = spent
        message = (f"{self.where} is busy: it answered HTTP {status} "
                   f"({BUSY_STATUSES[status]}) to {self._prefix + path}: "
                   f"{error_text(response.content)}")
        asked = retry_after(response.headers.get("retry-after"), time.time())
        pause = asked if asked is not None else (
            BUSY_FIRST_PAUSE * 2 ** (tries - 1) * random.uniform(1.0, 1.25))
        if tries >= busy_tries:
            if busy_tries > 1:
                message += f"; still busy after {tries} tries in {elapsed:.1f}s"
            raise LLMBusy(message)
        room = min(BUSY_MAX_PAUSE, limit - elapsed)  # the request's time limit bounds it
        if pause >= room:
            raise LLMBusy(f"{message}; tried {tries} time(s) in {elapsed:.1f}s, and the next "
                          f"try would have to wait {pause:.1f}s"
                          f"{' as it asked' if asked is not None else ''}, more than the "
                          f"{max(room, 0.0):.1f}s this request may still wait")
        log.info("%s; trying again in %.1fs", message, pause)
        return pause

    def _body(self, path: str, response: Answer, tools: bool = False) -> dict[str, Any]:
        """The answer's body as a JSON object; an error status or garbage is the typed error
        the module doc lists. ``tools``: the request offered tools (only then is an error a
        refusal of them: llama.cpp names --jinja for more than tools)."""
        shown = self._prefix + path
        if response.is_redirect:
            where = masked_url(response.headers.get("location", ""))[:BODY_EXCERPT] or "nowhere"
            raise LLMBadResponse(
                f"{self.where} redirected {shown} to {where} (HTTP {response.status_code}): not "
                "followed, what is sent goes to llm.url alone; set llm.url to where it points "
                "if that is meant")
        if not response.is_success:
            text = error_text(response.content)
            message = f"{self.where} answered HTTP {response.status_code} to {shown}: {text}"
            # the body, not its excerpt: a long model name pushes the words past its end
            head = response.content[:4096].decode("utf-8", errors="replace") if tools else ""
            for said, why in NO_TOOLS:
                if said in head:
                    # not an unusable answer: the model never saw the question, and asked
                    # again it never will; counted and told as what it is
                    raise LLMToolsUnsupported(f"{message}; {why}: {NO_TOOLS_ADVICE}")
            if response.status_code == 404 and "model" in text.lower():
                raise LLMModelMissing(f"{message}; `llm status` lists the models it has")
            if response.status_code >= 500:
                raise LLMServerError(message)
            raise LLMBadResponse(message)
        try:
            body = strict_json(response.content)
        except ValueError:
            raise LLMBadResponse(f"{self.where} answered {shown} with a body that is not "
                                 f"JSON: {excerpt(response.content)!r}") from None
        if not isinstance(body, dict):
            raise LLMBadResponse(f"{self.where} answered {shown} with JSON that is not an "
                                 f"object: {excerpt(response.content)!r}")
        return body

    async def status(self) -> BackendStatus:
        def result(reachable: bool, present: bool = False, detail: str = "",
                   models: Sequence[str] = ()) -> BackendStatus:
            return BackendStatus(self.name, self.url, self.model, reachable, present, detail,
                                 tuple(models))

        try:
            # a probe says how the server is now: busy is an answer, not a reason to wait
            body = await self.request("GET", self.models_path, busy_tries=1)
        except LLMBusy as exc:  # it answered
            return result(True, detail=str(exc))
        except LLMUnavailable as exc:
            return result(False, detail=str(exc))
        except LLMError as exc:  # it answered, with an error
            return result(True, detail=str(exc))
        except Exception as exc:  # a status probe reports, it never raises
            return result(False, detail=f"unexpected error: {type(exc).__name__}: {exc}")
        names = self.listed_models(body)
        if names is None:
            return result(True, detail=f"{self._prefix + self.models_path} answered without "
                                       "a list of models")
        if self.serves(self.model, names):
            return result(True, True, "", names)
        if (only := self.any_name_for(body, names)) is not None:
            return result(True, True, f"serves {only} for {self.model}: a single-model server "
                                      "answers any model name", names)
        return result(True, False, self.missing_model(), names)

    async def aclose(self) -> None:
        await self._http.aclose()

    def bad(self, what: str, value: Any) -> LLMBadResponse:
        """The error for an answer whose ``what`` is unusable, quoting ``value``."""
        return LLMBadResponse(f"{self.where} sent {what}: {excerpt(json.dumps(value))}")

    @abstractmethod
    def listed_models(self, body: dict[str, Any]) -> list[str] | None:
        """The model names in the answer to ``models_path``; None when it holds no list."""

    @abstractmethod
    def serves(self, model: str, names: Sequence[str]) -> bool:
        """Whether ``model`` as configured is one of ``names`` as the server spells them."""

    def any_name_for(self, body: dict[str, Any], names: Sequence[str]) -> str | None:
        """The one model of a server that answers a request whatever model it names, as
        listed in ``body``; None where the name asked for must be one it lists."""
        return None

    @abstractmethod
    def missing_model(self) -> str:
        """What ``status`` says when the model is not there."""


# -- tool calls and messages, both formats ---------------------------------------------------


def tools_to_wire(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """Tool declarations: the same shape in both protocols."""
    return [{"type": "function",
             "function": {"name": t.name, "description": t.description,
                          "parameters": t.parameters}}
            for t in tools]


def ollama_message(message: Message) -> dict[str, Any]:
    """Ollama: call arguments as an object, a tool result named by ``tool_name``."""
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        # a call whose arguments were malformed goes back as {}: Ollama wants an object here
        wire["tool_calls"] = [
            {"function": {"name": c.name, "arguments": c.arguments or {}}}
            for c in message.tool_calls
        ]
    if message.role == "tool" and message.name:
        wire["tool_name"] = message.name
    return wire


def openai_message(message: Message) -> dict[str, Any]:
    """OpenAI: call arguments as a JSON string, a tool result named by ``tool_call_id``."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["content"] = message.content or ""  # never null: llama.cpp refuses it
        # malformed arguments go back as "{}": llama.cpp parses them to render the template
        wire["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name,
                          "arguments": json.dumps(c.arguments if c.arguments is not None else {})}}
            for c in message.tool_calls
        ]
    return wire


def assistant_message(backend: HttpBackend, message: Any, legacy_ok: bool) -> Message:
    """The assistant message of an answer, in either format.

    ``tool_calls`` entries carry ``function.arguments`` as an object (Ollama) or a JSON string
    (OpenAI); either is accepted from either server. With ``legacy_ok`` (OpenAI), a legacy
    ``function_call`` becomes one call, but only when no ``tool_calls`` came."""
    if not isinstance(message, dict):
        raise backend.bad("no chat message", message)
    content = message.get("content") or ""
    raw_calls = message.get("tool_calls") or []
    if not isinstance(content, str) or not isinstance(raw_calls, list):
        raise backend.bad("a malformed message", message)
    legacy = message.get("function_call") if legacy_ok else None
    if not raw_calls and legacy:
        raw_calls = [{"function": legacy}]
    calls = []
    for raw in raw_calls:
        function = raw.get("function") if isinstance(raw, dict) else None
        if not isinstance(function, dict):
            raise backend.bad("a malformed tool call", raw)
        calls.append(tool_call(raw.get("id"), function.get("name"),
                               function.get("arguments", {})))
    return Message(role="assistant", content=without_reasoning(content),
                   tool_calls=tuple(calls))


#: a reasoning model's deliberation before its answer (Qwen3, DeepSeek-R1), where the server
#: leaves it in the content: Ollama with ``think`` unset, llama.cpp with
#: ``--reasoning-format none``, vLLM without ``--reasoning-parser``
_REASONING = re.compile(r"\A\s*<(think|thinking)>.*?(?:</\1>|\Z)", re.DOTALL)
#: the end of a reasoning block that began in the prompt: DeepSeek-R1's and QwQ's templates
#: end the prompt with "<think>\n", so the content starts with the reasoning itself. The
#: model writes the closing tag on a line of its own: one in a sentence, in backticks or in
#: a JSON string is an answer that names it (a diagnosis of an LLM server's chat template)
_REASONING_END = re.compile(r"^[ \t]*</(think|thinking)>[ \t]*$", re.M)
#: a line that opens or closes a Markdown code fence: a tag alone on a line inside one is
#: quoted, not written
_FENCE = re.compile(r"^[ \t]*(?:```|~~~)", re.M)


def without_reasoning(content: str) -> str:
    """``content`` without a leading reasoning block: it was stored and shown as the
    diagnosis, and the evidence mode's JSON after it was refused as no JSON. A block that
    never ends is all reasoning: the model answered nothing (cut at its token limit).

    A block whose opening tag was the prompt's ends at the first closing tag on a line of
    its own, outside a code fence, with no opening tag before it, as vLLM's and SGLang's
    deepseek_r1 parsers read it; without one the content is all answer (a model that does
    not reason writes none, and an answer may name the tag: "remove the stray </think>")."""
    found = _REASONING.match(content)
    if found is not None:
        return content[found.end():].lstrip()
    for end in _REASONING_END.finditer(content):
        before = content[:end.start()]
        if f"<{end[1]}>" in before:
            return content
        if len(_FENCE.findall(before)) % 2 == 0:
            return content[end.end():].lstrip()
    return content


#: the longest tool name kept as the model wrote it: ours are a few words; a longer one is no
#: tool, and is quoted in its error, the decisions log and the tool line a person reads
MAX_TOOL_NAME = 100


def call_name(name: Any) -> str:
    """The name a call asks for, as it is kept: "" when it is no text, cut (and so no tool's
    name) when it is longer than :data:`MAX_TOOL_NAME`; a model that writes megabytes there
    pushed the days before out of the decisions log, three copies at each call."""
    if not isinstance(name, str):
        return ""
    if len(name) <= MAX_TOOL_NAME:
        return name
    return f"{name[:MAX_TOOL_NAME]}… ({len(name)} characters)"


def new_call_id() -> str:
    """An id for a tool call the server did not name (Ollama does not)."""
    return f"call_{uuid.uuid4().hex[:12]}"


def tool_call(call_id: Any, name: Any, arguments: Any) -> ToolCall:
    """A ToolCall from what the server sent. ``arguments`` may be an object (Ollama), a JSON
    string (OpenAI), empty or missing (no arguments: ``{}``) or anything else; only a JSON
    object nested at most :data:`MAX_ARGUMENT_DEPTH` levels deep gives ``arguments``,
    anything else leaves it None for the agent to report back to the model. An id that is no
    text, or longer than :data:`MAX_TOOL_NAME`, is replaced by one of ours."""
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        # a call with no arguments, as some OpenAI-compatible servers send it ("" or none):
        # no arguments, not a malformed call the model would be told to mend, and make again
        arguments = {}
    # the parser takes nesting up to the stack's limit; the next request wrote such a call
    # back from deeper in the stack, where it raised RecursionError, no LLM error
    if isinstance(arguments, str):
        raw = arguments
        try:
            parsed = strict_json(arguments)
        except ValueError:
            parsed = None
        if nested_deeper(parsed, MAX_ARGUMENT_DEPTH):
            parsed = None
    elif nested_deeper(arguments, MAX_ARGUMENT_DEPTH):
        # not written out: this deep, json.dumps may run out of stack itself
        raw = f"(arguments nested more than {MAX_ARGUMENT_DEPTH} levels deep)"
        parsed = None
    else:
        raw = json.dumps(arguments)
        parsed = arguments
    return ToolCall(
        # an id is sent back with each request after, outside what the context budget
        # counts: one of megabytes made every request too long for the model
        id=call_id if isinstance(call_id, str) and 0 < len(call_id) <= MAX_TOOL_NAME
        else new_call_id(),
        name=call_name(name),
        raw_arguments=raw,
        arguments=parsed if isinstance(parsed, dict) else None,
    )


def optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
