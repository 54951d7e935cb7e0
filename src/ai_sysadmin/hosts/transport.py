"""The one way to reach a host: run an argv with a timeout, read a file, stream lines.

No shell, ever: every command is an argv list. Local, SSH and fault-lab transports implement
the same interface, so collectors, tools and the executor work the same everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from ..aio import settle, within
from ..errors import (
    CommandRefused,
    CommandTimeout,
    NotStarted,
    ProgramMissing,
    TransportError,
)
from .open_files import local_limit

#: the locale categories but LC_CTYPE, which says how text is encoded
_NOT_CTYPE = ("LC_MESSAGES", "LC_NUMERIC", "LC_TIME", "LC_COLLATE", "LC_MONETARY", "LC_PAPER",
              "LC_NAME", "LC_ADDRESS", "LC_TELEPHONE", "LC_MEASUREMENT", "LC_IDENTIFICATION")
#: Every command runs in the C locale but for the host's character set: its messages are read
#: by code (a program that "cannot start") and by the model, which should not meet a German
#: "nicht gefunden", a "load average: 1,62, 14,86" or a "Do 3. Dez". The character set
#: (LC_CTYPE: LC_ALL, else LC_CTYPE, else LANG) stays, so ps shows a UTF-8 command line as it
#: is, where LC_ALL=C would make each such byte a "?". As POSIX sh on one line (a login shell
#: that is csh reads the command line too), for commands that start on another machine;
#: :func:`c_locale_env` is the same for an environment here. Where sudo comes after it, its
#: PAM session may set a language again from a file (Debian's /etc/default/locale): LANG
#: there is overridden by these, an LC_ALL there would not be.
C_LOCALE = (
    "ctype=${LC_ALL:-${LC_CTYPE:-${LANG-}}}; unset LC_ALL LC_CTYPE " + " ".join(_NOT_CTYPE)
    + '; LANG=C; export LANG; [ -z "$ctype" ] || { LC_CTYPE=$ctype; export LC_CTYPE; }'
)


def c_locale_env(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` as :data:`C_LOCALE` leaves a shell's."""
    ctype = environ.get("LC_ALL") or environ.get("LC_CTYPE") or environ.get("LANG") or ""
    env = {name: value for name, value in environ.items()
           if name not in _NOT_CTYPE and name not in ("LC_ALL", "LC_CTYPE")}
    env["LANG"] = "C"
    if ctype:
        env["LC_CTYPE"] = ctype
    return env


@dataclass(frozen=True, slots=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def new_marker() -> str:
    """A word no host can print unasked: what a command printed comes after it."""
    return f"ai-sysadmin-{secrets.token_hex(8)}"


def marks(line: str, marker: str) -> bool:
    """Whether ``line`` (its line break or not) is the one ``echo MARKER`` wrote: it ends with
    the marker, as a login shell's rc file may print text with no line break of its own
    before it (a terminal title, ``printf '\\033]0;%s\\007'``), which the echo's line then
    starts with."""
    return line.rstrip("\n").endswith(marker)


def after_marker(text: str, marker: str) -> str | None:
    """The line right after ``marker``'s own line (:func:`marks`); None where there is none.
    A login shell's rc files may print before the command (a ~/.bashrc that echoes) and
    after it (a ~/.bash_logout): only what follows the marker is the command's."""
    lines = text.splitlines()
    at = next((i + 1 for i, line in enumerate(lines) if marks(line, marker)), len(lines))
    return lines[at].strip() if at < len(lines) else None


def _cannot_start(host: str, program: str, exc: OSError, started: str) -> NotStarted:
    """Why ``program`` did not start here: this process out of open files for its pipes is
    this machine's shortage (:class:`~ai_sysadmin.errors.LocalLimit`), not the host's; no
    such file is a program the host lacks (:class:`~ai_sysadmin.errors.ProgramMissing`)
    where the program itself was ``started``, not a wrapper before it. Out of processes or
    memory, or no permission to run it, says nothing of what the host has."""
    said = f"{host}: cannot start {program!r}: {exc.strerror}"
    if exc.errno == errno.ENOENT and os.path.basename(started) == os.path.basename(program):
        return ProgramMissing(said, program)
    return local_limit(exc, host) or NotStarted(said)


def _check_argv(argv: Sequence[str]) -> tuple[str, ...]:
    if isinstance(argv, str) or not argv:
        raise NotStarted("a command must be a non-empty argv list, never a shell string")
    out = tuple(argv)
    for arg in out:
        if not isinstance(arg, str) or "\x00" in arg:
            raise NotStarted(f"invalid argument in argv: {arg!r}")
        try:  # bytes a program can be given: UTF-8, or a file name's that is no UTF-8
            arg.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise NotStarted(f"invalid argument in argv (no bytes of a program's "
                                 f"argument): {arg[:80]!r}") from None
    return out


class Transport(ABC):
    """Run commands on one host."""

    #: the host name this transport reaches, as shown to people
    host: str
    #: whether the collector should send one remote script instead of one command per fact
    one_round_trip: bool = False
    #: True when commands run as root (who reads every log); None when not known
    runs_as_root: bool | None = None
    #: what a fix's argv goes behind on the host itself (a remote login's own sudo); checks
    #: and reads never go behind it
    fix_prefix: tuple[str, ...] = ()
    #: why the host ran nothing of the last script (or command) it was sent though it
    #: answered (see :class:`CommandRefused`); None where it ran it, or did not answer
    refusal: CommandRefused | None = None
    #: whether ``programs.*`` (executables on this machine, e.g. Nix store paths) exist on the
    #: host: true here and in the fault lab, false for a remote host, which gets bare names
    local_programs: bool = True

    @property
    def address(self) -> str | None:
        """Where the host is reached over the network (name or address); None for this
        machine (and a fault lab on it)."""
        return None

    @abstractmethod
    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        """The argv that actually starts the command on this machine."""

    async def connect_tcp(self, address: str, port: int, timeout: float) -> None:
        """Open a TCP connection to ``address:port`` from this machine, where the host is
        reached from, and close it; OSError or TimeoutError where none opens. A host with a
        network of its own on this machine (the fault lab) connects from in there."""
        _, writer = await within(asyncio.open_connection(address, port), timeout)
        writer.close()

    def pinger(self) -> Transport:
        """Where ``ping`` runs to reach the host: this machine. The fault lab's loopback is
        not this machine's: it pings from in there."""
        return LocalTransport()

    async def run(self, argv: Sequence[str], timeout: float = 20.0) -> CommandResult:
        """Run ``argv``; a missing program or a timeout raises :class:`TransportError`."""
        cmd = _check_argv(argv)
        started, wrapped = time.monotonic(), self.wrap(cmd)
        try:
            proc = await asyncio.create_subprocess_exec(
                *wrapped,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                env=c_locale_env(os.environ),
            )
        except OSError as exc:
            raise _cannot_start(self.host, cmd[0], exc, wrapped[0]) from exc
        try:
            out, err = await within(communicate(proc), timeout)
        except TimeoutError:
            await _terminate(proc)
            raise CommandTimeout(
                f"{self.host}: {' '.join(cmd)!r} timed out after {timeout:g} s"
            ) from None
        except OutputTooLarge as exc:
            await _terminate(proc)
            raise TransportError(f"{self.host}: {' '.join(cmd)!r} {exc}") from None
        except asyncio.CancelledError:
            await _terminate(proc)
            raise
        return CommandResult(
            cmd,
            proc.returncode if proc.returncode is not None else -1,
            out.decode("utf-8", "replace"),
            err.decode("utf-8", "replace"),
            time.monotonic() - started,
        )

    async def read_file(self, path: str, timeout: float = 20.0) -> str | None:
        """The file's text, or None when it does not exist or cannot be read."""
        result = await self.run(["cat", "--", path], timeout)
        return result.stdout if result.ok else None

    async def run_script(self, script: str, done: str, timeout: float,
                         answer_within: float | None = None) -> CommandResult:
        """Run a POSIX sh script that ends by printing ``done`` as the last line of stdout and
        of stderr. Here: ``sh -c``; a transport may keep one shell for all its scripts.

        ``answer_within``, given where the script writes a line as it starts: the seconds a
        host that answers takes to send the first of the reply. A transport that can tell a
        host that sent nothing from a script that runs long (over SSH) raises
        :class:`~ai_sysadmin.errors.NoAnswer` for the first. A process here always answers:
        ``timeout`` alone counts."""
        return await self.run(["sh", "-c", script], timeout)

    async def stream_lines(self, argv: Sequence[str]) -> AsyncIterator[str]:
        """Yield stdout lines of a long-running command until it ends or the caller stops."""
        cmd = _check_argv(argv)
        wrapped = self.wrap(cmd)
        try:
            proc = await asyncio.create_subprocess_exec(
                *wrapped,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
                limit=1 << 20,
                env=c_locale_env(os.environ),
            )
        except OSError as exc:
            raise _cannot_start(self.host, cmd[0], exc, wrapped[0]) from exc
        assert proc.stdout is not None
        try:
            while True:
                line = await proc.stdout.readline()
                if not line:
                    break
                yield line.decode("utf-8", "replace").rstrip("\n")
        finally:
            await _terminate(proc)

    async def close(self) -> None:  # noqa: B027 - optional hook, most transports hold nothing
        """Release connections; nothing to do for process-based transports."""

    async def let_go(self) -> None:
        """The host is no longer managed (``systems remove``): its connections end, and one
        that holds them opens none again (a host added again gets a transport of its own)."""
        await self.close()


async def unanswered(transport: Transport, timeout: float,
                     limit: float | None = None) -> TransportError | None:
    """Why the host cannot take a command now, as the error that says so: a
    :class:`CommandRefused` where it answered but runs nothing (a nologin shell), another
    :class:`TransportError` where it did not answer; None where it ran ``true`` (as checks
    and reads run there: a fix's sudo is asked by the executor). ``timeout``: the command's;
    ``limit``: the whole probe's, connecting included."""
    probe = transport.run(["true"], timeout)
    try:
        done = await (probe if limit is None else within(probe, limit))
    except TimeoutError:
        return TransportError(f"{transport.host}: no answer within {limit:g} s")
    except TransportError as exc:
        return exc
    if done.ok:
        return None
    return TransportError(f"{transport.host} answered `true` with exit {done.returncode}")


def _killed(pids: list[int]) -> bool:
    """SIGKILL to each of ``pids`` this process may signal; whether any was sent."""
    sent = False
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            sent = True
    return sent


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            return [int(p) for p in handle.read().split()]
    except (OSError, ValueError):
        return []


#: the most a command may print on one stream before it is stopped: far beyond any check
#: (a journal chunk of the longest lines journald keeps is about 100 MB), short of what reading
#: a host's whole journal (a model's bare `journalctl`) would hold in memory
MAX_OUTPUT = 256 * 1024 * 1024


#: a lower limit than MAX_OUTPUT for the commands run in this context (:func:`output_limit`)
_LIMIT: ContextVar[int | None] = ContextVar("output_limit", default=None)


@contextlib.contextmanager
def output_limit(size: int) -> Iterator[None]:
    """Commands run within, on any transport, stop at ``size`` bytes of a stream as at
    :data:`MAX_OUTPUT`: a caller that keeps a megabyte of an output (the model's reads) need
    not first hold 256 MiB of it, twice (bytes, then text). The streams are read in tasks
    made within, which take this context with them."""
    token = _LIMIT.set(size)
    try:
        yield
    finally:
        _LIMIT.reset(token)


class OutputTooLarge(Exception):
    """Internal: a stream went past its limit (:data:`MAX_OUTPUT`, or :func:`output_limit`'s);
    the caller stops the command."""


async def _read_all(stream: Any) -> Any:
    """What ``stream`` (bytes or, over SSH, text) gives until its end, up to the limit."""
    given = _LIMIT.get()
    limit = MAX_OUTPUT if given is None else min(given, MAX_OUTPUT)
    parts, size = [], 0
    while chunk := await stream.read(1 << 16):
        size += len(chunk)
        if size > limit:
            raise OutputTooLarge(f"printed more than {_size(limit)}: stopped; ask for less (a "
                                 "filter, a time range, a line count)")
        parts.append(chunk)
    return chunk.join(parts)  # the empty bytes or text of the stream's end


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit} bytes"


async def _discard(stream: Any) -> None:
    while await stream.read(1 << 16):
        pass


async def communicate(proc: Any) -> tuple[Any, Any]:
    """stdout and stderr of a process (a local one or asyncssh's) to their end, then its
    exit; as ``communicate()``, but a stream past its limit (:data:`MAX_OUTPUT`,
    :func:`output_limit`) raises :class:`OutputTooLarge` instead of filling memory."""
    reads = [asyncio.ensure_future(_read_all(s)) for s in (proc.stdout, proc.stderr)]
    try:
        out, err = await asyncio.gather(*reads)
    except BaseException:
        for read in reads:
            read.cancel()
        await asyncio.gather(*reads, return_exceptions=True)
        raise
    await proc.wait()
    return out, err


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    """Kill a command and everything it started, leaving no zombie behind.

    Children die first, so that a wrapper such as ``nsenter`` or ``ssh`` reaps them itself: an
    orphan would go to PID 1, which in containers often never reaps, and a zombie inside a PID
    namespace keeps that namespace's init from shutting down. What it still writes meanwhile
    is read away: its reader is gone (a timeout, a cancel), and a pipe left full is never seen
    to close, nor the command's end with it, which asyncio reports only once its pipes are
    closed (a daemon stopped while a check's ps wrote a long listing never stopped).
    """
    drains = [asyncio.ensure_future(_discard(s)) for s in (proc.stdout, proc.stderr)
              if s is not None]
    try:
        if proc.returncode is None and _killed(_children(proc.pid)):
            await settle(proc.wait(), 1.0)
        if proc.returncode is None:
            # itself, asked: a child this process may not signal (root's, behind sudo) is
            # ended by sudo, which passes a TERM on from a process outside its group (this
            # one), where a KILL ends sudo alone and leaves the command running, orphaned
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, signal.SIGTERM)
            await settle(proc.wait(), 1.0)
        # the command's session is its own (start_new_session): whatever of it is left, a
        # grandchild that still holds our pipes included, goes too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        # asyncio reports the end only once its pipes close: one a descendant that left the
        # session holds (setsid, a root command behind sudo) held the caller past its
        # timeout until that descendant ended
        with contextlib.suppress(ProcessLookupError):
            await settle(proc.wait(), 1.0)
    finally:
        for drain in drains:
            drain.cancel()
        await asyncio.gather(*drains, return_exceptions=True)


class LocalTransport(Transport):
    """This machine, through plain process execution."""

    def __init__(self, host: str = "localhost") -> None:
        self.host = host
        self.runs_as_root = os.geteuid() == 0

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        return argv

    async def read_file(self, path: str, timeout: float = 20.0) -> str | None:
        # Reading a local file needs no process: it keeps a check cheap.
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError as exc:
            if (ours := local_limit(exc, self.host)) is not None:
                raise ours from exc  # not the file's absence: this process's open files
            return None
