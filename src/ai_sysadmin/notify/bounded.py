"""What an Apprise plugin may read of an HTTP answer, bounded on the thread that sends.

Apprise's HTTP plugins read each answer whole through ``requests`` (``requests.request(...)``
or a session of their own: a fresh session each time, nothing a caller can configure), and
their timeout bounds each read, not the answer: a far end that answers 200 and streams fast
without end (a download, a media stream at a wrong URL) filled the daemon's memory, 2.6 GB,
and went on after the send was given up, its thread still reading. Every such session sends
through :class:`requests.adapters.HTTPAdapter`, requests' transport: its ``send`` is wrapped,
once, so that on a thread inside :func:`capped` it asks for an uncompressed answer and hands
back one whose body reads no further than the limit, then fails as requests' own errors do
(:class:`AnswerTooLong` is a ``requests.RequestException``, which every plugin catches as a
failed send). Other threads, and what else in the process uses requests, read as before.
Importing this module imports requests: it is imported where Apprise is.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from requests.adapters import HTTPAdapter

#: what one read of a wrapped answer asks for
_CHUNK = 64 * 1024

_local = threading.local()
_install_lock = threading.Lock()
_installed = False


class AnswerTooLong(requests.exceptions.RequestException):
    """An answer longer than the sending thread's limit: read no further, its connection
    closed."""


class Capped:
    """Whether a send inside :func:`capped` met an answer past its limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.exceeded = False


@contextmanager
def capped(limit: int) -> Iterator[Capped]:
    """On this thread, inside it, no HTTP answer read through requests is read past
    ``limit`` bytes (as decoded)."""
    _install()
    state = Capped(limit)
    _local.state = state
    try:
        yield state
    finally:
        _local.state = None


def _install() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        original = HTTPAdapter.send

        def send(self: HTTPAdapter, request: requests.PreparedRequest, *args: Any,
                 **kwargs: Any) -> requests.Response:
            state: Capped | None = getattr(_local, "state", None)
            if state is None:
                return original(self, request, *args, **kwargs)
            # a compressed answer is inflated as it is read: a small body, a large one
            request.headers["Accept-Encoding"] = "identity"
            response = original(self, request, *args, **kwargs)
            if not isinstance(response.raw, _BoundedBody):  # an adapter calling its parent's
                response.raw = _BoundedBody(response.raw, state)
            return response

        HTTPAdapter.send = send  # type: ignore[method-assign]
        _installed = True


class _BoundedBody:
    """urllib3's answer (requests' ``Response.raw``) read through :meth:`stream` or
    :meth:`read` no further than the limit; everything else (headers, cookies, closing) is
    the answer's own."""

    def __init__(self, raw: Any, state: Capped) -> None:
        self._raw = raw
        self._state = state
        self._read = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def _count(self, data: bytes) -> bytes:
        self._read += len(data)
        if self._read > self._state.limit:
            self._state.exceeded = True
            # the connection goes with it: nothing more is read from that far end
            self._raw.close()
            raise AnswerTooLong(f"the answer is longer than {self._state.limit} bytes: "
                                "read no further")
        return data

    def stream(self, amt: int | None = _CHUNK,
               decode_content: bool | None = None) -> Iterator[bytes]:
        for chunk in self._raw.stream(min(amt or _CHUNK, _CHUNK),
                                      decode_content=decode_content):
            yield self._count(chunk)

    def read(self, amt: int | None = None, decode_content: bool | None = None,
             **kwargs: Any) -> bytes:
        if amt is None:  # the whole answer: as far as the limit
            return b"".join(self.stream(_CHUNK, decode_content=decode_content))
        # no further than one byte past the limit, however much is asked for
        left = self._state.limit - self._read + 1
        return self._count(self._raw.read(min(amt, max(left, 1)),
                                          decode_content=decode_content, **kwargs))
