"""Where messages go: Gotify through its message API, anything else through Apprise URLs.

A channel either accepts a message or raises :class:`DeliveryError` with a reason that names no
secret (:class:`ChannelUnready` when the channel itself, not the message or the far end, is at
fault: its configuration, or an Apprise send given up on still running; :class:`MessageRefused`
when the far end answered that it will not take this message): the Gotify app token travels
only in the ``X-Gotify-Key`` header and is read from its file at each send (a rotated token
needs no restart); Apprise URLs, which carry credentials, are read from their own file; a
channel's name, which keys its stored deliveries and is shown, is the URL's scheme and the
server it reaches (host, port), never a credential nor where on the server a message goes (an
ntfy topic, a webhook's path). A far end's answer is read only so far (:data:`ANSWER_LIMIT`,
:data:`APPRISE_ANSWER_LIMIT`): a URL that streams fails the send, not the daemon's memory.
httpx and Apprise are imported when a channel is built or used, never by ``check`` or
``--help``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from ..config import Settings, mask_secret_text, read_header_secret, readable_note
from ..errors import AiSysadminError, ConfigError, SecretFileError
from ..monitor.findings import strip_control
from ..redact import redact_cut
from .message import PRIORITIES, Message

log = logging.getLogger("ai_sysadmin.service")

#: how often a token Gotify refused is offered again while its file still gives it (it may be
#: accepted again on the server): offering it at each backoff is what fail2ban-style guards ban
REFUSED_RETRY_SECONDS = 600.0
#: the 4xx answers that are about the channel, not the message: no such endpoint (the URL),
#: the proxy's login, "later" (401, the credential: Gotify's token is handled on its own, an
#: Apprise URL's is a failure of the channel)
CHANNEL_STATUSES = frozenset({404, 405, 407, 408, 410, 429})
#: the most read of a Gotify answer: it is the message stored, as JSON (a few hundred bytes)
ANSWER_LIMIT = 64 * 1024
#: the most an Apprise plugin reads of one answer (Apprise itself bounds its Matrix and
#: Bluesky answers so): some plugins read more than a reply to the message (a login, a list
#: of rooms or chats)
APPRISE_ANSWER_LIMIT = 1024 * 1024
#: the HTTP status Apprise's plugins put in the line they log for an answer they did not take
#: ("Failed to send JSON POST notification: Request Entity Too Large, error=413.")
_APPRISE_STATUS = re.compile(r"\berror=(\d{3})\b")


class DeliveryError(AiSysadminError):
    """A channel did not accept a message."""


class ChannelUnready(DeliveryError):
    """A channel that cannot send anything now: its configuration wants mending (its token
    file, or the token in it that Gotify refuses), or an earlier send of its has not ended
    (:class:`ChannelBusy`). No message is at fault, so a queued delivery waits without
    spending its attempts."""


class ChannelBusy(ChannelUnready):
    """An Apprise channel whose earlier send, given up on at its timeout, is still running:
    Apprise's socket timeout bounds each read, not the answer, so a far end that trickles its
    answer keeps that thread going. Nothing more starts there until it ends, so such a far end
    holds one thread, not one more at each retry."""


class MessageRefused(DeliveryError):
    """The far end refused this message, not the channel (an HTTP 4xx such as 400, 403 or 413:
    its body, its length, a WAF's rule): sent again as it is, it would be refused again, and
    the messages behind it need not wait for it."""


class Channel(Protocol):
    #: stable across restarts: deliveries are stored under it
    name: str
    #: the name an earlier version gave it: what was stored under that is handed to it
    formerly: str
    #: for `notify status`: where it goes, secrets masked
    shown: str

    async def send(self, message: Message) -> None: ...


def _scrub(text: str, secrets: list[str], limit: int = 300) -> str:
    """A far end's words, bounded, without the secrets it was sent nor secret-looking values:
    found in the whole text before it is cut, where a secret cut in two would match neither.
    Shown in a terminal (``notify``, ``notify status``): without control characters and
    bidirectional controls, taken out first so that none splits a secret it quotes."""
    text = strip_control(text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "****")
    return redact_cut(" ".join(text.split()), limit)


def warn_if_readable(path: Path, key: str) -> None:
    """A credential file others can read is a leak waiting to happen: said, not refused (the
    operator may have reasons, such as a group-readable file for a service account)."""
    note = readable_note(path, key)
    if note:
        log.warning("%s", note, extra={"event": "credential_readable"})


def readable_notes(settings: Settings) -> list[str]:
    """The credential files of the configured channels that every user can read, said by
    `notify` on stderr: the daemon's log says it too, but a person at the command line, who
    just wrote the file, reads no log."""
    files = [(settings.notify.apprise_urls_file, "notify.apprise_urls_file")]
    if settings.gotify_url:
        files.insert(0, (settings.gotify_token_file, "gotify_token_file"))
    return [note for path, key in files
            if path is not None and (note := readable_note(path, key))]


def read_token(path: Path, key: str) -> str:
    """The credential in ``path``, or :class:`ChannelUnready` naming the key, the path and why,
    never the token (:func:`read_header_secret`)."""
    try:
        return read_header_secret(path, key)
    except SecretFileError as exc:
        raise ChannelUnready(str(exc)) from None


def token_problem(settings: Settings) -> str | None:
    """Why the configured Gotify channel cannot send (None: it can, or there is none), for
    `notify status`, which builds no channel."""
    if not settings.gotify_url:
        return None
    if settings.gotify_token_file is None:
        return "gotify_token_file: not set (gotify_url is)"
    try:
        read_token(settings.gotify_token_file, "gotify_token_file")
    except ChannelUnready as exc:
        return str(exc)
    return None


def apprise_problem(settings: Settings) -> str | None:
    """Why ``notify.apprise_urls_file`` cannot be read (None: it can, or none is set), for
    `notify status`: a daemon will not start on it, and one running sends to the URLs it read
    at its start. What its lines say is judged when the channels are built (Apprise)."""
    path = settings.notify.apprise_urls_file
    if path is None:
        return None
    try:
        path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return (f"notify.apprise_urls_file {path}: cannot read: "
                f"{getattr(exc, 'strerror', None) or exc}")
    return None


class GotifyChannel:
    name = formerly = "gotify"

    def __init__(self, url: str, token_file: Path, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.token_file = token_file
        self.timeout = timeout
        self.shown = f"gotify {mask_secret_text(self.url)}"
        #: the token file's problem last said (None: none, or mended)
        self._problem: str | None = None
        #: the token Gotify last refused, when, and what was said: the file still giving it
        #: is not mended
        self._refused: tuple[str, float, str] | None = None

    def _token(self) -> str:
        try:
            token = read_token(self.token_file, "gotify_token_file")
        except ChannelUnready as exc:
            self._tell(str(exc))
            raise
        if self._refused is not None and self._refused[0] == token:
            _, at, problem = self._refused
            self._tell(problem)  # the file gives the refused token back after another problem
            if time.monotonic() - at < REFUSED_RETRY_SECONDS:
                raise ChannelUnready(problem)
            return token  # offered again, rarely: the server may accept it again
        self._tell(None)
        return token

    def _refusal(self, token: str, status: int) -> ChannelUnready:
        """No message is at fault and none can go until the token is mended: the channel
        waits (no attempts spent, said once), like an unreadable token file."""
        problem = (f"Gotify refused the app token (HTTP {status}): check gotify_token_file "
                   f"{self.token_file}")
        self._refused = (token, time.monotonic(), problem)
        self._tell(problem)
        return ChannelUnready(problem)

    def _tell(self, problem: str | None) -> None:
        """Said when it appears, changes or is mended, never at each retry: a file broken for
        a weekend would otherwise log once per queued message per retry."""
        if problem == self._problem:
            return
        if problem is not None:
            log.error("%s: notifications to Gotify wait in the outbox until it is mended",
                      problem, extra={"event": "notify_misconfigured"})
        else:
            log.info("gotify_token_file %s gives a token again: sending what waited",
                     self.token_file, extra={"event": "notify_mended"})
        self._problem = problem

    async def send(self, message: Message) -> None:
        import httpx

        token = self._token()
        secrets = [token, self.url]
        body = {"title": message.title, "message": message.body, "priority": message.priority}
        # identity: a compressed answer is inflated as it is read, 1 MB of gzip to 1 GiB
        headers = {"X-Gotify-Key": token, "Accept-Encoding": "identity"}
        try:
            async with asyncio.timeout(self.timeout):
                async with httpx.AsyncClient(timeout=self.timeout) as client, client.stream(
                        "POST", f"{self.url}/message", json=body, headers=headers) as reply:
                    # a 401 is judged by its status: its body is not needed
                    answer, whole = (b"", True) if reply.status_code == 401 else \
                        await _read_at_most(reply, ANSWER_LIMIT)
        except TimeoutError:
            raise DeliveryError(f"Gotify did not answer within {self.timeout:g} s") from None
        except httpx.ProtocolError as exc:
            # its text may quote a header as bytes (the token in a form _scrub does not know)
            raise DeliveryError(f"cannot reach Gotify at {mask_secret_text(self.url)}: "
                                f"{_protocol_problem(exc)}") from None
        except httpx.HTTPError as exc:
            why = _scrub(str(exc), secrets)
            raise DeliveryError(f"cannot reach Gotify at {mask_secret_text(self.url)}: " + (
                f"{type(exc).__name__}: {why}" if why else
                f"the connection was closed without an answer ({type(exc).__name__})")
            ) from None
        # Gotify answers an app token it does not know with 401 (its own 403 is for a user's
        # password, which an app endpoint never takes); a 403 comes from something in front of
        # it refusing this request (a WAF matching a quoted log line): no token file can mend
        # that, so it fails this message, not the channel
        if reply.status_code == 401:
            raise self._refusal(token, reply.status_code)
        if self._refused is not None:  # accepted again, without a new token
            self._refused = None
            self._tell(None)
        text = answer.decode("utf-8", errors="replace")
        why = f"Gotify answered HTTP {reply.status_code}: {_scrub(text, secrets, 200)}"
        # judged by its status first: a WAF's or a proxy's block page (a 403, a 413) may be
        # any size, and taken for the channel's failure it held every later message behind it
        if reply.is_client_error and reply.status_code not in CHANNEL_STATUSES:
            raise MessageRefused(why)
        if not whole:
            # a download, a stream, a page: no answer of Gotify's
            raise DeliveryError(f"{mask_secret_text(self.url)} answered HTTP "
                                f"{reply.status_code} with more than {ANSWER_LIMIT // 1024} "
                                "KiB, read no further: Gotify answers a message in a few "
                                "hundred bytes: is gotify_url the Gotify server?")
        if not reply.is_success:
            raise DeliveryError(why)
        if not _gotify_took(answer):
            # something else answers at the URL (a proxy's login page, a web site): the
            # message reached nobody, so it is kept and tried again like a 500
            kind = reply.headers.get("content-type", "no content type").split(";")[0]
            raise DeliveryError(f"{mask_secret_text(self.url)} answered HTTP "
                                f"{reply.status_code}, but not as Gotify does ({kind}: "
                                f"{_scrub(text, secrets, 120)!r}): is gotify_url the Gotify "
                                "server?")


def _protocol_problem(exc: Exception) -> str:
    """What went wrong in words, never the exception's text (see its caller)."""
    name = type(exc).__name__
    if "without sending a response" in str(exc):
        return f"the connection was closed without an answer ({name})"
    if name == "RemoteProtocolError":
        return f"what answered does not speak HTTP ({name})"
    return name


async def _read_at_most(reply: Any, limit: int) -> tuple[bytes, bool]:
    """The body of a streamed httpx answer, read as it comes and no further than ``limit``
    bytes, and whether that is all of it. A URL that answers 200 and streams without end (a
    download, a media stream) filled the daemon's memory, 4 GB within the timeout, again at
    each retry."""
    read = bytearray()
    async for chunk in reply.aiter_bytes():
        read += chunk
        if len(read) > limit:
            return bytes(read[:limit]), False
    return bytes(read), True


def _gotify_took(answer: bytes) -> bool:
    """Whether ``answer`` is Gotify's to a message it stored: the message, with its id."""
    try:
        stored = json.loads(answer)
    except ValueError:
        return False
    return isinstance(stored, dict) and "id" in stored


class _PerThread(logging.Handler):
    """Apprise says why a send failed only in its log: each sending thread collects its own
    lines, and nothing reaches the process's stderr."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        lines = getattr(self.local, "lines", None)
        if lines is not None:
            lines.append(record.getMessage())

    @contextmanager
    def collect(self) -> Iterator[list[str]]:
        self.local.lines = []
        try:
            yield self.local.lines
        finally:
            self.local.lines = None


_capture_lock = threading.Lock()
_capture: _PerThread | None = None


def _apprise_capture() -> _PerThread:
    global _capture
    with _capture_lock:
        if _capture is None:
            _capture = _PerThread()
            logger = logging.getLogger("apprise")
            logger.addHandler(_capture)
            logger.propagate = False
        return _capture


def _url_parts(url: str) -> list[str]:
    """Every piece of an Apprise URL that could be a credential: services put tokens in the
    user, password, host, path or query. Longest first, so a part inside another goes too."""
    pieces = re.split(r"[/:@?&=#]+", url.split("://", 1)[-1])
    return sorted({url, *(p for p in pieces if len(p) >= 6)}, key=len, reverse=True)


#: what Apprise's privacy form leaves of a secret: "****", "f...l" or "...tail"
_MASKED = re.compile(r"\.\.\.|\*\*\*\*")
_SUFFIX = re.compile(r"#\d+$")


def _split(url: str) -> tuple[str, str, list[str]]:
    """Scheme, host[:port] (no user, nothing Apprise masked) and path segments of a URL in
    Apprise's privacy form; the query is left out (its defaults change between versions)."""
    scheme, _, rest = url.partition("://")
    netloc, _, path = rest.split("?", 1)[0].partition("/")
    server = netloc.rpartition("@")[2]
    return scheme, "" if _MASKED.search(server) else server, path.split("/")


def _former_identity(privacy_url: str) -> str:
    """The name the previous version gave an Apprise URL: scheme, host, port and path of its
    privacy form, without what Apprise masked (see :func:`successor`)."""
    scheme, server, path = _split(privacy_url)
    return f"apprise:{scheme}://{server}" + "".join(
        f"/{p}" for p in path if p and not _MASKED.search(p))


def _names_server(plugin: Any) -> bool:
    """Whether the URL's host is the server the service is reached at, by Apprise's own
    account: the service takes a ``host`` there (not a topic, a sender, a token) and counts it
    among what identifies the URL (``url_identifier``, which by its contract never holds where
    a message goes: the host of ``ntfy://topic`` is the topic)."""
    host = getattr(plugin, "host", None)
    if not host or "host" not in getattr(plugin, "template_tokens", {}):
        return False
    identifier = plugin.url_identifier
    if identifier is None or identifier is True:  # Apprise's default: scheme, host, port, ...
        return True
    return isinstance(identifier, list | tuple | set) and host in identifier


def _identity(plugin: Any) -> str:
    """An Apprise channel's name: the URL's scheme and the server it reaches (host and port)
    as Apprise's privacy form shows them, nothing more. The user is half a credential, and
    what follows the server (a topic, a chat, a room, a webhook's path) says where a message
    goes: for several services knowing it is enough to read or post (a topic on a public ntfy
    server, a webhook's path), and Apprise masks it only where it calls it a token. A rotated
    credential keeps the channel's name."""
    scheme, server, _ = _split(plugin.url(privacy=True))
    return f"apprise:{scheme}://{server if _names_server(plugin) else ''}"


def _suffixed(name: str) -> tuple[str, str]:
    """A stored name and its ``#2`` (or "")."""
    suffix = _SUFFIX.search(name)
    return (name[:suffix.start()], suffix.group()) if suffix else (name, "")


def public_name(name: str) -> str:
    """A stored channel name as it may be shown: an Apprise name an earlier version made (with
    the URL's path, or from its privacy form) keeps only its scheme, host and port."""
    if not name.startswith("apprise:"):
        return name
    base, suffix = _suffixed(name)
    scheme, server, _ = _split(base.removeprefix("apprise:"))
    return f"apprise:{scheme}://{server}{suffix}"


def successor(name: str, channels: Sequence[Channel]) -> str | None:
    """The configured channel that took over a stored name no longer configured: the one
    an earlier version named so (the previous one kept the URL's path in the name, the one
    before the privacy form); None when none (the channel was taken out of the file)."""
    if not name.startswith("apprise:"):
        return None
    base, suffix = _suffixed(name)
    earlier = _former_identity(base.removeprefix("apprise:")) + suffix
    heirs = [c.name for c in channels if c.formerly == earlier]
    return heirs[0] if len(heirs) == 1 else None


def _names_overflow(url: str) -> bool:
    """Whether an Apprise URL chooses what a message too long for its service becomes
    (``?overflow=upstream|truncate|split``)."""
    query = url.partition("?")[2]
    return any(pair.partition("=")[0].strip().lower() == "overflow"
               for pair in query.split("&"))


class AppriseChannel:
    def __init__(self, url: str, plugin: Any, timeout: float, name: str,
                 formerly: str) -> None:
        self._url = url
        self.plugin = plugin
        # a message longer than the service takes (Pushover: 1024 characters, a digest) is
        # cut where Apprise knows the limit, not sent whole to be refused each time; one
        # message stays one notification (split would multiply sends, an SMS gateway's cost);
        # a URL's own ?overflow= is kept
        self._truncate = not _names_overflow(url)
        self.timeout = timeout
        self.name = name
        self.formerly = formerly
        self.shown = name
        #: the thread of the send last given up on (timed out, or cut off by a stop)
        self._behind: threading.Thread | None = None
        self._busy_said = False

    def _send(self, message: Message) -> tuple[bool, str, list[int]]:
        """The send, on a thread of its own: whether Apprise took it, what Apprise said, and
        the HTTP statuses of the answers it logged as refusals."""
        import apprise

        from .bounded import capped

        kind = (apprise.NotifyType.FAILURE if message.priority >= PRIORITIES["high"] else
                apprise.NotifyType.WARNING if message.priority >= PRIORITIES["normal"] else
                apprise.NotifyType.INFO)
        # an answer read whole, past its timeout too (the thread of a send given up on reads
        # on): bounded, or a far end streaming without end fills the daemon's memory
        with _apprise_capture().collect() as lines, capped(APPRISE_ANSWER_LIMIT) as read:
            # plain text, said so: services that render HTML or Markdown get it escaped, and
            # host text in a summary cannot become a link or markup there
            ok = bool(self.plugin.notify(body=message.body, title=message.title,
                                         notify_type=kind,
                                         body_format=apprise.NotifyFormat.TEXT,
                                         overflow=apprise.OverflowMode.TRUNCATE
                                         if self._truncate else None))
        if read.exceeded:  # the plugin says only that the connection failed
            lines.append(f"its answer was longer than {APPRISE_ANSWER_LIMIT // 1024} KiB, "
                         "read no further: is the URL the service's?")
        statuses = [int(code) for line in lines for code in _APPRISE_STATUS.findall(line)]
        return ok, _scrub("; ".join(lines[-3:]), _url_parts(self._url)), statuses

    def _sending(self, message: Message, loop: asyncio.AbstractEventLoop,
                 outcome: asyncio.Future[tuple[bool, str, list[int]]]) -> None:
        try:
            result = self._send(message)
        except Exception as exc:  # a plugin's own bug: the notifier names it
            _hand_back(loop, outcome, partial(outcome.set_exception, exc))
        else:
            _hand_back(loop, outcome, partial(outcome.set_result, result))

    def _check_idle(self) -> None:
        """:class:`ChannelBusy` while the send last given up on still runs; said once when
        that begins and once when it ends, not at each retry."""
        behind = self._behind
        if behind is not None and behind.is_alive():
            problem = (f"{self.name} is still sending an earlier message: its far end keeps "
                       "answering past the timeout; nothing more is sent to it until that "
                       "send ends")
            if not self._busy_said:
                self._busy_said = True
                log.warning("%s", problem, extra={"event": "notify_channel_busy",
                                                  "notify_channel": self.name})
            raise ChannelBusy(problem)
        self._behind = None
        if self._busy_said:
            self._busy_said = False
            log.info("%s: the earlier send ended: sending what waited", self.name,
                     extra={"event": "notify_channel_idle", "notify_channel": self.name})

    async def send(self, message: Message) -> None:
        self._check_idle()
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[tuple[bool, str, list[int]]] = loop.create_future()
        # a daemon thread of its own, not the loop's default executor: one that outlives its
        # timeout (an answer trickled a byte at a time) would take a worker of the pool that
        # stores every check and stops the daemon, and asyncio.run waits for those at its end
        thread = threading.Thread(target=self._sending, args=(message, loop, outcome),
                                  name=f"notify {self.name}", daemon=True)
        thread.start()
        limit = self.timeout * 2 + 1
        try:
            async with asyncio.timeout(limit):
                ok, said, statuses = await outcome
        except TimeoutError:
            self._behind = thread
            raise DeliveryError(f"{self.name} did not answer within {limit:g} s") from None
        except asyncio.CancelledError:
            self._behind = thread  # a stop: the thread, a daemon's, keeps no process alive
            raise
        if ok:
            return
        why = f"{self.name} did not accept it: {said or 'no reason given'}"
        # an answer about the message (its length, a WAF's rule on its text), not the channel
        # (a URL with no endpoint, a login, "later"): the messages behind it need not wait
        if statuses and all(400 <= code < 500 and code != 401 and code not in CHANNEL_STATUSES
                            for code in statuses):
            raise MessageRefused(why)
        raise DeliveryError(why)


def _hand_back(loop: asyncio.AbstractEventLoop, outcome: asyncio.Future[Any],
               settle: Callable[[], object]) -> None:
    """Settles ``outcome`` on its loop from a sending thread, unless it was given up on (timed
    out, its task cancelled) or the loop has closed: nobody waits for it then."""
    def settled() -> None:
        if not outcome.done():
            settle()

    with suppress(RuntimeError):  # the loop has closed
        loop.call_soon_threadsafe(settled)


def apprise_channels(path: Path, timeout: float) -> list[AppriseChannel]:
    """One channel per URL of ``notify.apprise_urls_file``; a line Apprise does not know is a
    ConfigError naming the file and the line number, never the line (it may hold a password)."""
    try:
        # a regular file only: a FIFO blocked the start (and a SIGHUP's check, and with it
        # the daemon's stop) until a writer came
        if not stat.S_ISREG(path.stat().st_mode):
            raise ConfigError(str(path), ["key 'notify.apprise_urls_file': not a regular file"])
        # utf-8-sig: the BOM an editor (Notepad, PowerShell) saves first is no part of line 1,
        # as in the config and the token files
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"key 'notify.apprise_urls_file': cannot read: "
                                      f"{getattr(exc, 'strerror', None) or exc}"]) from None
    warn_if_readable(path, "notify.apprise_urls_file")
    import apprise

    # memory only: Apprise would otherwise keep state files under the home directory
    asset = apprise.AppriseAsset(storage_mode="memory")
    channels: list[AppriseChannel] = []
    for number, line in enumerate(text.splitlines(), start=1):
        url = line.strip()
        if not url or url.startswith("#"):
            continue
        plugin = apprise.Apprise.instantiate(url, asset=asset)
        if plugin is None:
            raise ConfigError(str(path), [f"line {number}: not an Apprise URL this version "
                                          "supports (the line is not shown: it may hold a "
                                          "credential)"])
        plugin.socket_connect_timeout = timeout
        plugin.socket_read_timeout = timeout
        # the name keys stored deliveries: the same after a credential is rotated
        name = _numbered(_identity(plugin), [c.name for c in channels])
        formerly = _numbered(_former_identity(plugin.url(privacy=True)),
                             [c.formerly for c in channels])
        channels.append(AppriseChannel(url, plugin, timeout, name, formerly))
    return channels


def _numbered(name: str, before: list[str]) -> str:
    """The second URL to one place (another topic, token or user) is told apart by its order
    among those, which comments and other URLs added to the file do not change."""
    same = sum(1 for other in before if _SUFFIX.sub("", other) == name)
    return f"{name}#{same + 1}" if same else name


def build_channels(settings: Settings) -> list[Channel]:
    """The configured channels: Gotify first, then each Apprise URL."""
    channels: list[Channel] = []
    timeout = settings.notify.timeout
    if settings.gotify_url:
        if settings.gotify_token_file is None:
            # refused where it matters (the daemon's start, `notify`), not by `config show`
            raise ConfigError("the configuration", ["key 'gotify_token_file': gotify_url is "
                                                    "set: name the file that holds the Gotify "
                                                    "app token"])
        warn_if_readable(settings.gotify_token_file, "gotify_token_file")
        gotify = GotifyChannel(settings.gotify_url, settings.gotify_token_file, timeout)
        # said at the start (by _token), not first at an incident; the file is read again at
        # each send (a secret provisioned later, a rotated token): not a reason to stop
        with suppress(ChannelUnready):
            gotify._token()
        channels.append(gotify)
    if settings.notify.apprise_urls_file:
        channels += apprise_channels(settings.notify.apprise_urls_file, timeout)
    return channels
