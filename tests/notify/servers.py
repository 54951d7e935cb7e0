"""HTTP receivers of our own on 127.0.0.1: a Gotify-contract server and a JSON endpoint for
Apprise's ``json://``. Each records every request; a script of behaviours ("ok", a status code,
"hang", "drip", a :class:`Flood`) answers the requests in turn, then "ok"."""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: the script's "portal": what answers 200 at a URL that is no Gotify
PORTAL = "<html><head><title>Sign in</title></head><body>Sign in to continue</body></html>"
#: a hanging answer waits at most this long for release() (a bound, never a synchronisation)
HANG_LIMIT = 120.0
#: a "drip" answer's pace: a byte this often, each read well within any client's read timeout
DRIP_EVERY = 0.2


class Drip:
    """A 200 whose body never ends (a byte every DRIP_EVERY until release()): a streaming or
    long-poll URL, a proxy trickling out a page, a tarpit. A read timeout, per read, never
    ends it."""


@dataclass(frozen=True)
class Flood:
    """A 200 that streams ``size`` bytes as fast as the client reads (a URL that is a download,
    a media stream): JSON's whitespace, with no length said, ended by closing; ``gzip``: a
    small gzip body that inflates to ``size`` bytes (a bomb)."""

    size: int
    gzip: bool = False


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: time.monotonic() when it arrived
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self, script: list[Any] | None = None) -> None:
        self.script = list(script or [])
        self.requests: list[Request] = []
        #: the JSON bodies this receiver accepted (answered 200)
        self.accepted: list[dict[str, Any]] = []
        self.hanging = 0
        #: "drip" answers being sent now
        self.dripping = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                         daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def release(self) -> None:
        """End every hanging answer (as a 200)."""
        self._release.set()

    def then(self, *steps: Any) -> None:
        with self._lock:
            self.script.extend(steps)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = predicate()
            if got:
                return got
            time.sleep(0.02)
        raise AssertionError(f"timed out; received {[r.path for r in self.requests]}")

    def titles(self) -> list[str]:
        return [str(a.get("title")) for a in self.accepted]

    # -- serving (server threads) ---------------------------------------------------------------
    def handle(self, request: Request) -> tuple[int, dict[str, Any] | str | None]:
        with self._lock:
            self.requests.append(request)
        problem = self.check(request)
        if problem is not None:
            return problem
        with self._lock:
            step = self.script.pop(0) if self.script else "ok"
        if step == "hang":
            with self._lock:
                self.hanging += 1
            self._release.wait(HANG_LIMIT)
            with self._lock:
                self.hanging -= 1
            step = "ok"
        if step == "drip":
            return 200, Drip()
        if isinstance(step, Flood):
            return 200, step
        if step == "close":  # a proxy whose upstream went away mid-request, a restart
            return 0, None
        if step == "portal":  # something else at the URL: a proxy's login page, a web site
            return 200, PORTAL
        if isinstance(step, tuple):  # (status, page): a proxy's own answer
            return step
        if step != "ok":
            return int(step), {"error": "scripted failure", "errorCode": int(step)}
        with self._lock:
            self.accepted.append(request.json())
            number = len(self.accepted)
        return 200, {"id": number, **request.json()}

    def check(self, request: Request) -> tuple[int, dict[str, Any] | str | None] | None:
        return None


class GotifyServer(Receiver):
    """Gotify's message API as its docs state it: ``POST /message`` with the application token
    in ``X-Gotify-Key``, a JSON body with ``message`` (required), ``title``, ``priority``."""

    def __init__(self, token: str, script: list[Any] | None = None) -> None:
        super().__init__(script)
        self.token = token
        self.url = f"http://127.0.0.1:{self.port}"

    def check(self, request: Request) -> tuple[int, dict[str, Any]] | None:
        if request.method != "POST" or request.path != "/message":
            return 404, {"error": "Not Found", "errorCode": 404}
        if request.headers.get("x-gotify-key") != self.token:
            return 401, {"error": "Unauthorized", "errorCode": 401, "errorDescription":
                         "you need to provide a valid access token or user credentials"}
        try:
            body = request.json()
        except ValueError:
            return 400, {"error": "Bad Request", "errorCode": 400}
        if not (isinstance(body, dict) and isinstance(body.get("message"), str)
                and isinstance(body.get("title", ""), str)
                and isinstance(body.get("priority", 0), int)):
            return 400, {"error": "Bad Request", "errorCode": 400}
        return None


class JsonEndpoint(Receiver):
    """What Apprise's ``json://user:password@127.0.0.1:PORT/path`` posts to."""

    def __init__(self, user: str, password: str, script: list[Any] | None = None) -> None:
        super().__init__(script)
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def check(self, request: Request) -> tuple[int, dict[str, Any]] | None:
        if request.headers.get("authorization") != self.auth:
            return 401, {"error": "Unauthorized"}
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, answer = self.server.receiver.handle(
            Request(self.command, self.path, headers, body, time.monotonic()))
        if answer is None:  # closed without a word
            self.close_connection = True
            return
        if isinstance(answer, Drip):
            self._drip(status)
            return
        if isinstance(answer, Flood):
            self._flood(answer)
            return
        html = isinstance(answer, str)
        payload = answer.encode() if html else json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/html" if html else "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:  # the client gave up before the answer
            self.close_connection = True

    def _drip(self, status: int) -> None:
        receiver = self.server.receiver
        with receiver._lock:
            receiver.dripping += 1
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            deadline = time.monotonic() + HANG_LIMIT
            while not receiver._release.wait(DRIP_EVERY) and time.monotonic() < deadline:
                self.wfile.write(b"1\r\n \r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client gave up
            pass
        finally:
            self.close_connection = True
            with receiver._lock:
                receiver.dripping -= 1

    def _flood(self, flood: Flood) -> None:
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if flood.gzip:
                body = _bomb(flood.size)
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.end_headers()
            chunk = b" " * (1 << 20)
            for _ in range(flood.size // len(chunk)):
                self.wfile.write(chunk)
        except OSError:  # the client read no further
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


class MisskeyServer(Receiver):
    """What Apprise's ``misskey://TOKEN@127.0.0.1:PORT`` posts to: ``POST /api/notes/create``
    with the token as ``i`` and the note as ``text``, refused (400) past the 512 characters
    Apprise knows as its limit, as Pushover refuses a message past 1024 (its server is not one
    a test can reach)."""

    LIMIT = 512

    def __init__(self, token: str, script: list[Any] | None = None) -> None:
        super().__init__(script)
        self.token = token

    def check(self, request: Request) -> tuple[int, dict[str, Any]] | None:
        if request.method != "POST" or request.path != "/api/notes/create":
            return 404, {"error": {"message": "Not Found"}}
        body = request.json()
        if body.get("i") != self.token:
            return 401, {"error": {"message": "Credential required."}}
        if len(body.get("text", "")) > self.LIMIT:
            return 400, {"error": {"message": "Invalid param.", "code": "INVALID_PARAM"}}
        return None


@functools.cache
def _bomb(size: int) -> bytes:
    """``size`` zero bytes gzipped (level 1: quick to make, about 230 times smaller)."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    return b"".join([*(packer.compress(zeros) for _ in range(size >> 20)), packer.flush()])
