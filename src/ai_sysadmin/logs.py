"""The project's own structured logs: one JSON-lines file per channel under ``state_dir/logs``.

The library only calls ``logging.getLogger(channel_logger(name))``; the daemon and the CLI
decide where records go. Every record carries the assistant's name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import logging.handlers
import math
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import NotFoundError

CHANNELS = ("orchestrator", "decisions", "actions", "service")
#: a channel's file is rotated at this size and this many rotated files are kept
#: (``actions.jsonl.1`` the newest): a daemon logs every check, and with no logrotate rule
#: months of it would fill the state directory
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 4
_STANDARD = set(vars(logging.makeLogRecord({})))
#: what every record of a file holds, written by the formatter
_OWN_KEYS = frozenset({"ts", "level", "name", "channel", "msg", "exc"})


def channel_logger(channel: str) -> logging.Logger:
    if channel not in CHANNELS:
        raise ValueError(f"unknown log channel {channel!r}")
    return logging.getLogger(f"ai_sysadmin.{channel}")


Mask = Callable[[str], str]


def _same(text: str) -> str:
    return text


class JsonLines(logging.Formatter):
    def __init__(self, ai_name: str, mask: Mask = _same) -> None:
        super().__init__()
        self.ai_name = ai_name
        self.mask = mask

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "name": self.ai_name,
            "channel": record.name.rsplit(".", 1)[-1],
            "msg": self.mask(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                # an extra never passes for the record's own keys (a notifier's "channel" made
                # a service record read as of a channel "gotify")
                data[f"extra_{key}" if key in _OWN_KEYS else key] = self._masked(value)
        if record.exc_info:
            data["exc"] = self.mask(self.formatException(record.exc_info))
        return json.dumps(data, default=str)

    def _masked(self, value: Any) -> Any:
        """Every text in an extra masked, also inside lists and mappings (an investigation
        logs the proposals it made: the model's words)."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {k: self._masked(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._masked(v) for v in value]
        return value


#: control characters as a reader of a journal line sees them: ``\\n``, ``\\x1b``; the C1
#: ones too (``\\x9b`` is a terminal's CSI, as ESC [ is), the line and paragraph separators
#: and the bidirectional controls, which show a line in another order than it is written
_VISIBLE = {code: repr(chr(code))[1:-1]
            for code in (*range(32), *range(127, 160), 0x061C, 0x200E, 0x200F,
                         *range(0x2028, 0x202F), *range(0x2066, 0x206A))}


def visible(text: str) -> str:
    """``text`` on one line: its control characters written as a reader sees them."""
    return text.translate(_VISIBLE)


class Console(logging.Formatter):
    """``[hal] orchestrator: message`` on stderr (journald adds the time), one line a record:
    a message quotes host text (a remote command's stderr, a journal's host name), and a
    newline in it would start a line of its own in the journal, posing as ours."""

    def __init__(self, ai_name: str, mask: Mask = _same) -> None:
        super().__init__()
        self.ai_name = ai_name
        self.mask = mask

    def format(self, record: logging.LogRecord) -> str:
        channel = record.name.rsplit(".", 1)[-1]
        message = visible(self.mask(record.getMessage()))
        return f"[{self.ai_name}] {channel} {record.levelname.lower()}: {message}"


class _Rotating(logging.handlers.RotatingFileHandler):
    """Rotation by size, shared by processes: the daemon, the LLM worker and a command that
    acts (``approve``) write the same files. A rotation holds a lock on the directory and
    looks again under it, so two writers at the limit rotate once; a file another process
    rotated away is followed to the new one. A writer that may not rename (the directory is
    not its to write) keeps appending rather than losing a record or printing a traceback."""

    def _open(self) -> Any:
        # the file a rotation starts is not world-readable either
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        # the size as written by every process, without formatting the record twice
        if self.stream is None or self.maxBytes <= 0:
            return False
        opened = os.fstat(self.stream.fileno())
        if self._moved(opened):
            self._reopen()
            return False
        return opened.st_size >= self.maxBytes

    def _moved(self, opened: os.stat_result) -> bool:
        """Whether the file at our name is no longer ``opened``, the one we write (another
        process rotated it)."""
        try:
            now = os.stat(self.baseFilename)
        except FileNotFoundError:
            return True
        return (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino)

    def _reopen(self) -> None:
        stream, self.stream = self.stream, None  # None: the next record opens it again
        if stream is not None:
            stream.close()
        with contextlib.suppress(OSError):
            self.stream = self._open()

    def doRollover(self) -> None:
        try:
            directory = os.open(os.path.dirname(self.baseFilename), os.O_RDONLY)
        except OSError:
            self.maxBytes = 0
            return
        try:
            fcntl.flock(directory, fcntl.LOCK_EX)
            if self.stream is None or self._moved(os.fstat(self.stream.fileno())):
                self._reopen()  # rotated meanwhile by the process that held the lock
                return
            try:
                super().doRollover()
            except FileNotFoundError:  # a writer that took no lock moved it: follow it
                self._reopen()
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    self.maxBytes = 0  # never this process's to rotate: it appends
                if self.stream is None or self.stream.closed:
                    self._reopen()
        finally:
            os.close(directory)  # and the lock with it


def configure(log_dir: Path, ai_name: str, console: bool = False, mask: Mask = _same) -> None:
    """Send every channel to its own file (mode 0640) and, for the daemon, to stderr.
    ``mask``: applied to every message, so a secret in host text never reaches a log."""
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    for channel in CHANNELS:
        logger = channel_logger(channel)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        for old in list(logger.handlers):
            logger.removeHandler(old)
            old.close()
        handler = _Rotating(log_dir / f"{channel}.jsonl", maxBytes=LOG_MAX_BYTES,
                            backupCount=LOG_BACKUPS, encoding="utf-8")
        handler.setFormatter(JsonLines(ai_name, mask))
        logger.addHandler(handler)
        if console:
            stream = logging.StreamHandler(sys.stderr)
            stream.setFormatter(Console(ai_name, mask))
            logger.addHandler(stream)


@contextlib.contextmanager
def kept() -> Iterator[None]:
    """The channels' loggers as they are now, again after the block: files a :func:`configure`
    inside it opened (a command run in-process, as the tests run it) are closed, and no
    later record reaches them."""
    loggers = [channel_logger(channel) for channel in CHANNELS]
    before = [(list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    try:
        yield
    finally:
        for logger, (handlers, level, propagate) in zip(loggers, before, strict=True):
            for handler in list(logger.handlers):
                if handler not in handlers:
                    logger.removeHandler(handler)
                    handler.close()
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


def _tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a channel, from its rotated files too (just after a
    rotation the current one holds few): newest file first, only as many as it takes."""
    tail: list[str] = []
    for number in range(LOG_BACKUPS + 1):
        part = path.with_name(f"{path.name}.{number}") if number else path
        if len(tail) >= lines:
            break
        try:
            with part.open(encoding="utf-8", errors="replace") as handle:
                tail = list(deque(handle, maxlen=lines - len(tail))) + tail
        except FileNotFoundError:
            continue  # rotated away between two reads, or not there yet
    return tail


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    """A JSON number as a float; one past a float's range (1e999) is no number JSON writes
    back (it read as inf, and `logs --json` printed Infinity)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is past a float's range")
    return value


@dataclass(frozen=True)
class OfHost:
    """Which records are a host's: those naming it, and those of its incidents and actions
    (an executor's and an investigator's records name the action or incident alone)."""

    host: str
    incidents: frozenset[int] = frozenset()
    actions: frozenset[int] = frozenset()

    def may_be(self, line: str) -> bool:
        """Whether a line may be one of the host's, before it is parsed (a fleet's log is
        mostly other hosts' lines)."""
        return (f'"host": {json.dumps(self.host)}' in line
                or (bool(self.incidents) and '"incident": ' in line)
                or (bool(self.actions) and '"action": ' in line))

    def holds(self, record: dict[str, Any]) -> bool:
        incident, action = record.get("incident"), record.get("action")
        # an id is a number (a hand-edited line may hold anything there)
        return (record.get("host") == self.host
                or (type(incident) is int and incident in self.incidents)
                or (type(action) is int and action in self.actions))


def read(log_dir: Path, channel: str, lines: int = 50, host: OfHost | None = None,
         since: float | None = None) -> list[dict[str, Any]]:
    """The last ``lines`` records of one channel, oldest first (across its rotated files);
    unparsable lines are kept raw. With ``host``, only the records of that host; with
    ``since`` (a time), only those written since then: the newest ``lines`` of them."""
    if channel not in CHANNELS:
        raise NotFoundError(f"no log channel {channel!r}; channels: {', '.join(CHANNELS)}")
    path = log_dir / f"{channel}.jsonl"
    if host is None and since is None:
        return [_record(line, channel) for line in _tail(path, lines)]
    return _matching(path, channel, lines, host, since)


def _record(line: str, channel: str) -> dict[str, Any]:
    try:
        # NaN and Infinity are no JSON: a line holding them (cut, hand-edited) is kept raw,
        # or `logs --json` would print what no JSON reader takes
        record = json.loads(line, parse_constant=_no_constant, parse_float=_finite)
    except ValueError:
        record = None
    if not isinstance(record, dict):  # a cut or hand-edited line: kept as it is
        record = {"ts": None, "level": "?", "channel": channel, "msg": line.strip()}
    return record


def _matching(path: Path, channel: str, lines: int, host: OfHost | None,
              since: float | None) -> list[dict[str, Any]]:
    """The newest ``lines`` records of a host, or since a time, newest file first. A file
    last written before ``since`` holds nothing newer, nor do the older ones: they are not
    read. A line that cannot be the host's is not parsed."""
    found: list[dict[str, Any]] = []
    for number in range(LOG_BACKUPS + 1):
        part = path.with_name(f"{path.name}.{number}") if number else path
        if len(found) >= lines:
            break
        try:
            if since is not None and part.stat().st_mtime < since:
                break
            with part.open(encoding="utf-8", errors="replace") as handle:
                kept = deque((record for line in handle
                              if host is None or host.may_be(line)
                              if _matches(record := _record(line, channel), host, since)),
                             maxlen=lines - len(found))
        except FileNotFoundError:
            continue  # rotated away between two reads, or not there yet
        found = [*kept, *found]
    return found


def _matches(record: dict[str, Any], host: OfHost | None, since: float | None) -> bool:
    if host is not None and not host.holds(record):
        return False
    stamp = record.get("ts")
    # a raw line has no time: it is no record "since" anything
    return since is None or (isinstance(stamp, (int, float)) and stamp >= since)
