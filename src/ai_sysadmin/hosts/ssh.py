"""The SSH transport: one reused ``asyncssh`` connection per host, host keys always verified.

Every command is still an argv: it is quoted with :func:`login_shell_join` for the remote login
shell, whichever it is (sh, bash, dash, zsh, fish, csh), which hands it to ``sh``. Host keys are
checked against a known_hosts file, for jump hosts too; an unknown key is accepted only when the
operator turned trust on first use on, and is then recorded in that file. A changed key is never
accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
from asyncssh.packet import PacketDecodeError

from ..aio import check_cancelled, settle, within
from ..config import bracketed
from ..errors import (
    CommandRefused,
    CommandTimeout,
    NoAnswer,
    NotStarted,
    ProgramMissing,
    TransportError,
)
from ..redact import CUT_MARGIN, redact_cut
from .open_files import local_limit
from .ssh_host_keys import (
    HostKeyError,
    TrustedKey,
    VerifyingClient,
    host_key_algs,
    host_key_message,
    host_pattern,
    known_hosts_name,
    known_hosts_text,
    parsed_known_hosts,
)
from .ssh_target import DEFAULT_PORT, Hop, SshTarget, client_keys, parse_jump
from .sudo import sudo_refused
from .transport import (
    C_LOCALE,
    CommandResult,
    OutputTooLarge,
    Transport,
    _check_argv,
    after_marker,
    communicate,
    marks,
    new_marker,
)

__all__ = ["HostKeyError", "SshTarget", "SshTransport", "TrustedKey"]

T = TypeVar("T")

#: a failed TCP connect, as a person says it
_CONNECT_FAILURES = {
    errno.ECONNREFUSED: "connection refused", errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable", errno.ETIMEDOUT: "connection timed out",
    errno.ECONNRESET: "connection reset",
}

log = logging.getLogger("ai_sysadmin.service")

#: how long to wait for a killed remote command's channel to close before giving up on it
_CLOSE_WAIT = 2.0
#: the remote `timeout` of a command ends it this long after the client stopped waiting
_REMOTE_GRACE = 1.0
#: the prefix of a fix behind the host's sudo (:attr:`SshTransport.fix_prefix`)
_SUDO = ("sudo", "-n", "--")
#: how long sudo takes to end a command that overran its ``-T``: HUP and TERM, then KILL two
#: seconds later. coreutils' `timeout` around that sudo waits this much longer, as its own
#: KILL would end sudo alone and leave the command running
_SUDO_KILL_WAIT = 4
#: sudo's words where its ``-T`` is not allowed (sudoers without ``user_command_timeouts``)
#: or not known (sudo older than 1.8.20; sudo-rs, Ubuntu 25.10's sudo, which has no ``-T``
#: and names no option): nothing ran
_NO_SUDO_TIMEOUT = re.compile(r"^sudo(?:-rs)?: (sorry, you are not allowed set a command "
                              r"timeout|invalid option -- 'T'|invalid option provided)$", re.M)
#: the least time the host's sshd gets to answer for a check script's shell that sent
#: nothing back, or whose reply stopped part-way (:meth:`SshTransport._sshd_answers`): it
#: answers in its own process, in milliseconds where the host is up and near; a host cut
#: off is reported unreachable this much later than before. On a slow link (a saturated LTE
#: uplink, a satellite site) the answer takes a round trip of a second or more: there the
#: wait is as long as the connection's login took (:meth:`SshTransport._probe_wait`)
_PROBE_WAIT = 1.0
#: the subsystem that probe asks for: no server offers it, and the name tells a host's admin
#: who asks, in the log line sshd writes as it refuses
_PROBE_SUBSYSTEM = "ai-sysadmin-liveness-probe"
#: the least time left of a check script's limit that is worth a second shell, where the
#: first one died under it: with less, even a host that answers might not open the session
#: in time, which would read as a host that stopped answering (:meth:`SshTransport._bounded`)
_RETRY_MIN = 1.0
#: the most jump hosts a host may be behind, each through the one before (an ssh config's
#: ProxyJump may name a host with a ProxyJump of its own)
_JUMPS_MAX = 8
#: shells of timed-out check scripts that may hold their sessions on one connection at once
#: before it is dropped with them. sshd keeps the session of a shell that does not end
#: (stopped, or blocked on a hung mount, where no signal reaches it) for as long as the shell
#: lives, and a connection holds at most MaxSessions (10 by default): dropped one by one,
#: stuck shells would fill it, and a fix would find no session left to run in. A script that
#: comes back between two timeouts frees none of the sessions the stuck shells before it
#: hold; a shell whose session has since closed (it ended at last) holds none, and counts no
#: more: timeouts hours apart never add up to a drop of a connection others share
_STUCK_MAX = 3
#: the remote shell's or sudo's words for a program that does not exist
_NOT_FOUND = re.compile(r"(command not found|not found|No such file or directory)\s*$", re.M)
#: how much of what a refusing host wrote is quoted (characters), and kept to mask it: all a
#: masker needs to see a secret the quote would cut (a private key's header, kilobytes back)
_SAID_MAX = 300
_SAID_KEEP = _SAID_MAX + CUT_MARGIN

#: words every login shell reads as they are, unquoted (zsh makes a leading "=" a path)
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_./:,+-][A-Za-z0-9_./=:,+-]*")
_QUOTES_ESCAPE = re.compile(r"([\\'!])")
_ESCAPED = ("\\", "'", "!")


def _sent(exc: BaseException) -> bool:
    """Whether a session that failed had its command sent: asyncssh fails the opening of a
    channel with a ChannelOpenError of its own code (or the server's refusal), and the exec
    request after it with the connection's error or OPEN_REQUEST_SESSION_FAILED."""
    return not isinstance(exc, asyncssh.ChannelOpenError) or \
        exc.code == asyncssh.OPEN_REQUEST_SESSION_FAILED


def login_shell_quote(arg: str) -> str:
    """``arg`` as one word for any login shell sshd may hand a command line to. POSIX single
    quotes are not enough: fish reads ``\\'`` and ``\\\\`` inside them as escapes, so an argument
    ending in a backslash would close its quote early and the next one would run as a
    command; csh and tcsh expand history (``!#``: the line so far, its quotes included) inside
    them. A backslash, a quote or a ``!`` therefore goes outside the quotes, escaped: POSIX
    shells, fish and csh all read ``\\\\``, ``\\'`` and ``\\!`` there as that one character.

    A line break has no such form (csh refuses it inside quotes, sh drops an escaped one):
    :func:`login_shell_command` passes such an argument encoded."""
    if _PLAIN_WORD.fullmatch(arg):
        return arg
    if not arg:
        return "''"
    if _ENCODED.search(arg):
        raise ValueError("an argument with a line break or a byte that is no UTF-8 has no "
                         "quoting every login shell reads alike (login_shell_command encodes "
                         "it)")
    return "".join("\\" + part if part in _ESCAPED else f"'{part}'"
                   for part in _QUOTES_ESCAPE.split(arg) if part)


def login_shell_join(argv: Sequence[str]) -> str:
    """An argv as a command line that any login shell splits back into exactly ``argv``."""
    return " ".join(login_shell_quote(arg) for arg in argv)


#: sh's own words for "decode every argument, then run them": ``printf %b`` turns each byte's
#: ``\\0ooo`` back into the byte; the ``.`` keeps a trailing line break from ``$(...)``
_DECODE_ARGS = ('n=$#; for a do v=$(printf "%b." "$a"); set -- "$@" "${v%.}"; done; '
                'shift "$n"; ')


#: what no login shell quoting carries: a line break, and a byte that is no UTF-8 (a file
#: name's, held as Python's surrogate escape), which the SSH protocol's UTF-8 command cannot
_ENCODED = re.compile("[\n\udc80-\udcff]")
#: what ``printf %b`` reads as an escape, or cannot pass: only these go octal, so that an
#: argument grows by little (BSD csh refuses a word of 8 KiB: "Word too long")
_OCTAL = re.compile("[\n\\\\\udc80-\udcff]")


def _octal_escaped(arg: str) -> str:
    """``arg`` for ``printf %b``: a line break, a backslash and a byte that is no UTF-8 as
    ``\\0ooo`` escapes, every other character as it is."""
    return _OCTAL.sub(lambda c: f"\\0{c[0].encode('utf-8', 'surrogateescape')[0]:03o}", arg)


#: sh's words for running ``"$@"`` until the session's stdin ends: sshd signals no command
#: of a root login (no privilege separation there), and a command that writes seldom (a
#: follower's ``journalctl --follow --priority=warning`` on a quiet host) would meet no
#: SIGPIPE for days, one more left running at every stop. The command runs in the background,
#: its stdout and stderr the session's as they were, its stdin /dev/null; a watcher reads the
#: session's stdin (fd 3: a background job's own stdin is /dev/null), which the client keeps
#: open while it follows, and ends the command once it closes. The command's exit status is
#: the session's. Only sh's builtins: no program beyond the ``sh`` every command runs under
_UNTIL_STDIN_ENDS = (
    'exec 3<&0; "$@" </dev/null 3<&- & p=$!; '
    '{ while read -r line; do :; done; kill "$p"; } <&3 >/dev/null 2>&1 & w=$!; '
    'exec 3<&-; wait "$p"; s=$?; kill "$w" 2>/dev/null; exit "$s"')


def login_shell_command(prelude: str, argv: Sequence[str], run: str = 'exec "$@"') -> str:
    """A command line that any login shell hands to ``sh``, which runs ``prelude`` (sh
    text) and then ``run``, which runs ``argv`` (``"$@"``) exactly: by default, execs it. An
    argument with a line break, or with a byte that is no UTF-8, cannot be quoted for every
    login shell: then every argument goes encoded and sh decodes them first."""
    if not any(_ENCODED.search(arg) for arg in argv):
        return login_shell_join(("sh", "-c", f'{prelude}; {run}', "sh", *argv))
    return login_shell_join(("sh", "-c", f'{prelude}; {_DECODE_ARGS}{run}', "sh",
                             *(_octal_escaped(arg) for arg in argv)))


#: what asyncssh raises for settings it cannot use (a bad key file, an unknown cipher), and
#: pathlib for a file under the home of no such user (``~nobody-here/id_ed25519``)
_INVALID_SETTINGS = (OSError, ValueError, RuntimeError, asyncssh.Error)


def _under_sudo(cmd: tuple[str, ...]) -> tuple[str, ...] | None:
    """The argv that ``sudo ... -- ARGV`` runs (a fix behind :attr:`SshTransport.fix_prefix`);
    None for a command that is not sudo's."""
    if Path(cmd[0]).name != "sudo" or "--" not in cmd[1:]:
        return None
    return cmd[cmd.index("--") + 1:] or None


class _LoopState:
    """What belongs to one event loop: the connections, the lock and the concurrency limit."""

    def __init__(self, limit: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.lock = asyncio.Lock()
        self.slots = asyncio.Semaphore(limit)
        self.conns: list[asyncssh.SSHClientConnection] = []  # jump hosts first, target last
        self.client: VerifyingClient | None = None
        self.remote_root: bool | None = None
        #: the host's sudo lets this login give a fix a limit of its own (``sudo -T``): None
        #: until a fix behind sudo was refused one
        self.sudo_timeouts: bool | None = None
        #: the user the host took the login of, as it was resolved (a config file may name it)
        self.user: str | None = None
        #: the login shell has run a command on this connection: it is a shell
        self.ran = False
        #: the long-lived remote ``sh`` that runs scripts (run_script), and its connection
        self.shell: _Shell | None = None
        self.shell_conn: asyncssh.SSHClientConnection | None = None
        self.shell_lock = asyncio.Lock()
        #: the shells of scripts that timed out on ``stuck_conn``, dropped but maybe still
        #: holding their sessions (see :data:`_STUCK_MAX`)
        self.stuck: list[_Shell] = []
        self.stuck_conn: asyncssh.SSHClientConnection | None = None
        #: commands running on this loop's connection (:meth:`SshTransport.run`: a fix, a
        #: read of the model's), which a drop of the connection would cut off
        self.running = 0
        #: how long the login of the connection to the host took (TCP, key exchange and
        #: authentication, through the jump hosts): a few round trips of the way to it
        self.handshake = 0.0
        #: the transport let this state go (:meth:`SshTransport.close`, or a new event loop):
        #: a call still running on it connects no more, as nothing would ever close that
        #: connection (a check in flight while the daemon renews its host's transport)
        self.closed = False

    @property
    def alive(self) -> bool:
        return bool(self.conns) and self.client is not None and not self.client.lost


#: the most a check script's reply may hold (characters, both streams): a host's users choose
#: what ps lists (128 KiB of arguments a process), and a reply is kept whole until parsed
MAX_REPLY = 64 * 1024 * 1024


class _ReplyTooLarge(Exception):
    pass


def _said(text: str) -> str:
    """What a host wrote, for a message: one line of printable characters, its end, masked
    before it is cut (host text: a secret split by the cut would no longer match)."""
    flat = " ".join("".join(c for c in text if c.isprintable() or c.isspace()).split())
    shown = redact_cut(flat, _SAID_MAX + 1, tail=True)
    return shown if len(shown) <= _SAID_MAX else "…" + shown[-(_SAID_MAX - 1):]


class _Reply:
    """One script's output on both streams, complete when each has ended with its done line."""

    def __init__(self, done: str) -> None:
        self.end = f"{done}\n"
        self.chunks: tuple[list[str], list[str]] = ([], [])
        self.tails = ["", ""]
        self.open = [True, True]
        self.size = 0
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        #: set by the first byte of the reply, or by its failure: what a wait for the host's
        #: first word ends on
        self.stirred = asyncio.Event()
        #: when the first and the last byte came (monotonic seconds); None: none yet
        self.first: float | None = None
        self.last: float | None = None

    def feed(self, data: str, stream: int) -> None:
        if not self.open[stream] or not data:
            return
        self.stirred.set()
        self.last = time.monotonic()
        if self.first is None:
            self.first = self.last
        self.size += len(data)
        if self.size > MAX_REPLY:
            self.open = [False, False]
            self.chunks = ([], [])
            self.fail(_ReplyTooLarge(f"the check's reply passed {MAX_REPLY / 2**20:g} MiB"))
            return
        self.chunks[stream].append(data)
        keep = len(self.end) + 1
        # only the end of a packet (up to 32 KiB) can finish the done line: no copy of it all
        tail = self.tails[stream] = (self.tails[stream] + data[-keep:])[-keep:]
        if tail.endswith(self.end):
            self.open[stream] = False
            if not any(self.open) and not self.finished.done():
                self.finished.set_result(None)

    def fail(self, exc: Exception) -> None:
        self.stirred.set()
        if not self.finished.done():
            self.finished.set_exception(exc)

    def text(self, stream: int) -> str:
        text = "".join(self.chunks[stream])
        return text[: len(text) - len(self.end)]

    def tail(self, stream: int) -> str:
        """The end of what came on a stream so far (a reply that never finished)."""
        return "".join(self.chunks[stream])[-_SAID_KEEP:]


class _ShellEnded(EOFError):
    """The long-lived shell ended before the script's done line: how, and what it wrote."""

    def __init__(self, lost: Exception | None, status: int | None, stdout: str,
                 stderr: str) -> None:
        self.lost = lost
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        why = lost or (f"exit {status}" if status is not None else "no error")
        said = _said(stderr)
        super().__init__(f"the remote shell closed its output ({why})"
                         + (f": {said}" if said else ""))

    @property
    def exited(self) -> bool:
        """It ended by itself with an exit status, the connection up: the host's answer."""
        return self.lost is None and self.status is not None and self.status >= 0


class _Shell(asyncssh.SSHClientSession[str]):
    """The long-lived remote shell: its output is taken as it arrives, in asyncssh's own
    callback, with no stream reader to wake for every packet of a reply."""

    def __init__(self) -> None:
        self.chan: asyncssh.SSHClientChannel[str] | None = None
        self.reply: _Reply | None = None
        self.closed = False
        #: what came while no script ran, its end: a login shell that refuses to run `sh`
        #: says so at once, maybe before the first script is written
        self.early = ["", ""]
        self.ended: _ShellEnded | None = None
        #: when the last byte of the last script's reply came (monotonic seconds), None
        #: where nothing did: a reply that never came, or that stopped part-way, may be a
        #: host that stopped answering; else the script runs long
        self.heard: float | None = None
        #: how long the last script's first byte took to come back, from its write (a
        #: round trip, and the login of a shell just started); None where none came
        self.answered_in: float | None = None

    def connection_made(self, chan: asyncssh.SSHClientChannel[str]) -> None:
        self.chan = chan

    def data_received(self, data: str, datatype: asyncssh.DataType) -> None:
        stream = 0 if datatype is None else 1
        if self.reply is not None:
            self.reply.feed(data, stream)
        else:
            self.early[stream] = (self.early[stream] + data)[-_SAID_KEEP:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reply, chan = self.reply, self.chan
        said = [self.early[s] + (reply.tail(s) if reply is not None else "") for s in (0, 1)]
        self.ended = _ShellEnded(exc, chan.get_exit_status() if chan is not None else None,
                                 *said)
        if reply is not None:
            reply.fail(self.ended)

    @property
    def alive(self) -> bool:
        return not self.closed and self.chan is not None and not self.chan.is_closing()

    async def run(self, script: str, done: str,
                  answer_within: float | None = None) -> tuple[str, str]:
        """The script's reply on both streams; TimeoutError where not a byte of it came
        within ``answer_within`` seconds (the caller's own limit is the whole reply's)."""
        assert self.chan is not None
        if self.ended is not None:
            raise self.ended
        self.heard = self.answered_in = None
        written = time.monotonic()
        try:
            self.chan.write(script)
        except BrokenPipeError as exc:
            # the shell ended before the script could go (a login shell that refused at
            # once, on a busy machine): how it ended, once asyncssh has told, is the answer
            await settle(self.chan.wait_closed(), _CLOSE_WAIT)
            raise (self.ended or exc) from None
        # no await since the write: nothing of the reply can have come before it is watched
        reply = self.reply = _Reply(done)
        try:
            if answer_within is not None:
                await within(reply.stirred.wait(), answer_within)
            await reply.finished
        finally:
            self.reply = None
            self.heard = reply.last
            if reply.first is not None:
                self.answered_in = reply.first - written
        return reply.text(0), reply.text(1)

    async def end(self) -> None:
        chan = self.chan
        if chan is None:
            return
        with contextlib.suppress(Exception):
            chan.kill()
        with contextlib.suppress(Exception):
            chan.close()
        await settle(chan.wait_closed(), _CLOSE_WAIT)


@dataclass(frozen=True)
class _Resolved:
    """What a connection needs of its options before asyncssh.connect resolves them again."""

    host: str
    port: int
    username: str
    client_keys: Sequence[asyncssh.SSHKeyPair] | None
    agent_identities: Sequence[bytes] | None
    host_key_alias: str | None


def _unusable_key(key_files: Sequence[str]) -> str | None:
    """Which configured key file cannot be loaded, and why, or None: asyncssh loads them all
    at once and says "Invalid private key" without naming the file. Read on that error only."""
    for name in key_files:
        path = Path(name)
        try:
            path = path.expanduser()
            asyncssh.read_private_key(path)
        except (OSError, ValueError, RuntimeError, asyncssh.KeyImportError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            hint = (" (that is the public half: name the file without .pub)"
                    if path.suffix == ".pub" else "")
            return f"the SSH key file {path} cannot be used: {why}{hint}"
    return None


def _keys_offered(target: SshTarget, options: _Resolved) -> str:
    """What a refused login offered and where the right key is named: a bare "Permission
    denied" left a person to guess whether no key was found or the host lacks this one."""
    keys = len(options.client_keys or ()) + len(options.agent_identities or ())
    where = ("[ssh] key_files, a remote_systems entry's key_file, or IdentityFile in "
             "~/.ssh/config")
    if not keys:
        return f"no key was offered: name the private key in {where}"
    files = (f" (from {', '.join(str(Path(k).expanduser()) for k in target.key_files)})"
             if target.key_files else "")
    return (f"{keys} key(s) offered{files} and refused: add the public key to "
            f"~{options.username}/.ssh/authorized_keys on the host, or name the key it "
            f"takes in {where}")


def _after_start(text: str, marker: str) -> str:
    """What the command wrote on a stream: after the marker line the remote sh wrote just
    before it started. Where there is none, the command never began (the login shell refused,
    sh is missing): all of it is the shell's own words, kept for the refusal's reason."""
    at = text.find(marker + "\n")
    return text if at < 0 else text[at + len(marker) + 1:]


class SshTransport(Transport):
    """Run commands on one host over SSH, through one connection opened on first use."""

    #: the collector gathers a whole Snapshot with one remote command (monitor/remote_script.py)
    one_round_trip = True
    local_programs = False

    @property
    def address(self) -> str:
        return self.target.host

    def __init__(self, target: SshTarget, name: str | None = None,
                 key_trusted: Callable[[TrustedKey], Awaitable[None]] | None = None) -> None:
        if target.max_concurrent < 1:
            raise TransportError(f"{target.host}: max_concurrent must be at least 1")
        self.target = target
        self.host = name or target.host
        #: told of each host key trusted on first use (trust_on_first_use), to audit it
        self.key_trusted = key_trusted
        # a root login runs as root; sudo is for fixes alone (fix_prefix), and the user may
        # come from ~/.ssh/config
        self.runs_as_root = True if target.user == "root" else None
        self._state: _LoopState | None = None
        self._connects = 0
        #: let go (:meth:`let_go`): it connects no more
        self._let_go = False

    # -- connection ----------------------------------------------------------------------------

    @property
    def connects(self) -> int:
        """How many times a connection to the host was opened (reuse keeps this at 1)."""
        return self._connects

    def _loop_state(self) -> _LoopState:
        if self._let_go:
            raise NotStarted(f"{self.host} is no longer managed (removed): not connected "
                                 "to again")
        state = self._state
        if state is None or state.loop is not asyncio.get_running_loop():
            # connections belong to the loop that opened them: a new loop starts afresh
            if state is not None:
                state.closed = True
                for conn in state.conns:
                    with contextlib.suppress(Exception):
                        conn.abort()
            state = self._state = _LoopState(self.target.max_concurrent)
        return state

    def _route(self) -> list[Hop]:
        route = [Hop(h, f"{self.host} (via jump host {h.host})")
                 for h in self._jump_hosts(self.target, ())]
        return [*route, Hop(self.target, self.host)]

    def _jump_hosts(self, target: SshTarget, through: tuple[str, ...]) -> list[SshTarget]:
        """The hosts ``target`` is reached through, the first connected first. As ssh does,
        the first of them is reached through its own jump hosts (a bastion behind a
        bastion), the others each through the one before it; ``through``: the hosts whose
        jump hosts these are, the target first, which a loop would come back to."""
        jump = target.jump
        if jump is None and target.ssh_config:
            configured = self._options(target, tunnel=()).tunnel
            jump = configured if isinstance(configured, str) else None
        hops: list[SshTarget] = []
        if isinstance(jump, SshTarget):
            hops = [jump]
        elif jump:
            hops = parse_jump(jump, target)
        # a host named as its own jump host: a ProxyJump under "Host *" that the bastion
        # matches as well; ssh would go round for ever, and it means the others' way only
        if not hops or hops[0].host.lower() == target.host.lower():
            return []
        through = (*through, target.host)
        if hops[0].host.lower() in (h.lower() for h in through) or len(through) > _JUMPS_MAX:
            chain = " -> ".join((*through, hops[0].host))
            raise NotStarted(f"{self.host}: the jump hosts go round in a loop, or deeper "
                                 f"than {_JUMPS_MAX}: {chain} (ProxyJump in "
                                 f"{target.ssh_config or 'the settings'})")
        return [*self._jump_hosts(hops[0], through), *hops]

    def _kwargs(self, target: SshTarget, tunnel: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "host": target.host,
            "config": target.config_paths,
            "tunnel": tunnel,  # None or a connection: never the config's ProxyJump behind our back
            "connect_timeout": target.connect_timeout,
            "keepalive_interval": target.keepalive_interval,
            # never None: that would turn host key checking off
            "known_hosts": parsed_known_hosts(known_hosts_text(target.known_hosts_files)),
            # where and as whom come from the config file, never how a session runs: a
            # RequestTTY there would merge stderr into stdout and end lines with CRLF, and a
            # ForwardAgent or ForwardX11Trusted would hand the operator's agent or display to
            # every managed host, whose root could use them against the rest of the fleet
            "request_pty": False,
            "agent_forwarding": False,
            "x11_forwarding": False,
        }
        if target.ciphers:
            kwargs["encryption_algs"] = target.ciphers
        if target.port is not None:
            kwargs["port"] = target.port
        if target.user is not None:
            kwargs["username"] = target.user
        if target.key_files:
            kwargs["client_keys"] = [str(Path(k).expanduser()) for k in target.key_files]
        return kwargs

    def _options(self, target: SshTarget, tunnel: Any) -> asyncssh.SSHClientConnectionOptions:
        """The settings as asyncssh resolves them with the config file (Hostname, Port, ...)."""
        try:
            return asyncssh.SSHClientConnectionOptions(**self._kwargs(target, tunnel))
        except _INVALID_SETTINGS as exc:
            raise self._invalid(exc, target) from exc

    async def _resolve(self, target: SshTarget, kwargs: dict[str, Any]) -> _Resolved:
        """Where one connection goes and the private keys it offers.

        Key files and a user named without a config file say it all: the keys are loaded once
        per content for all hosts (:func:`client_keys`), and no options object is built for
        them (asyncssh.connect builds its own: two a connection cost a fleet sweep ~8 ms of
        CPU). Otherwise the config file may name the host, port, user and keys
        (``Hostname``, ``IdentityFile``, defaults in ``~/.ssh``): asyncssh resolves them in a
        thread, which reads and decodes the keys.
        """
        if target.key_files and not target.config_paths and target.user is not None:
            return _Resolved(target.host, target.port or DEFAULT_PORT, target.user,
                             await client_keys(kwargs["client_keys"]), None, None)
        options = await asyncssh.SSHClientConnectionOptions.construct(**kwargs)
        return _Resolved(options.host, options.port, options.username, options.client_keys,
                         options.agent_identities, options.host_key_alias)

    def _invalid(self, exc: Exception, target: SshTarget | None = None) -> NotStarted:
        bad_key = _unusable_key(target.key_files) if target is not None else None
        if bad_key is not None:
            return NotStarted(f"{self.host}: {bad_key}")
        return NotStarted(f"{self.host}: invalid SSH settings: {exc}")

    async def _connect_kwargs(
        self, hop: Hop, tunnel: asyncssh.SSHClientConnection | None
    ) -> tuple[dict[str, Any], _Resolved]:
        """asyncssh.connect's arguments for one hop, and what they resolve to."""
        try:
            kwargs = self._kwargs(hop.target, tunnel)
            options = await self._resolve(hop.target, kwargs)
        except _INVALID_SETTINGS as exc:
            raise self._invalid(exc, hop.target) from exc
        name, _ = known_hosts_name(options.host, options.port, options.host_key_alias)
        # the name as ssh looks it up: asyncssh checks the key under the alias it is given
        kwargs["host_key_alias"] = name
        algs = host_key_algs(kwargs["known_hosts"], name, options.port)
        if algs:
            kwargs["server_host_key_algs"] = algs
        # asyncssh.connect resolves the options again: it gets the keys these loaded (with
        # the certificates paired already), so that no key file is read twice per connection
        kwargs.update(client_keys=options.client_keys, client_certs=[],
                      agent_identities=options.agent_identities)
        return kwargs, options

    async def _connect_hop(
        self, hop: Hop, tunnel: asyncssh.SSHClientConnection | None
    ) -> tuple[asyncssh.SSHClientConnection, VerifyingClient, float]:
        """The connection to one hop, its client, and how long its login took (seconds)."""
        kwargs, options = await self._connect_kwargs(hop, tunnel)
        clients: list[VerifyingClient] = []
        try:
            asked = time.monotonic()
            conn = await self._connect_through(hop, kwargs, options, clients)
            took = time.monotonic() - asked
        finally:
            # recorded in known_hosts during the key exchange, whatever failed after it (the
            # login): trusted from now on all the same
            await self._said_trusted(hop, clients)
        return conn, clients[-1], took

    async def _said_trusted(self, hop: Hop, clients: list[VerifyingClient]) -> None:
        """Each key ``hop``'s clients trusted on first use, to :attr:`key_trusted`."""
        for client in clients:
            key = client.trusted
            if key is None or self.key_trusted is None:
                continue
            via = None if hop.target is self.target else hop.target.host
            await self.key_trusted(TrustedKey(
                self.host, via, key.get_algorithm(), key.get_fingerprint("sha256"),
                hop.target.known_hosts_path))

    async def _connect_through(
        self, hop: Hop, kwargs: dict[str, Any], options: _Resolved,
        clients: list[VerifyingClient],
    ) -> asyncssh.SSHClientConnection:
        """asyncssh.connect for one hop, its clients kept in ``clients``; what went wrong
        as a :class:`~ai_sysadmin.errors.NotStarted` that says where:
        nothing is sent before a connection is open."""
        known = kwargs["known_hosts"]
        aliased = bool(options.host_key_alias)

        def factory() -> VerifyingClient:
            clients.append(VerifyingClient(hop, known, aliased))
            return clients[-1]

        host, port = options.host, options.port
        where = f"{options.username}@{bracketed(host)}:{port}"  # admin@[::1]:22, not ::1:22
        # what `ssh-keygen -R` and the messages name: the entry the key was checked against
        pattern = host_pattern(*known_hosts_name(host, port, options.host_key_alias))
        try:
            # the connect timeout of asyncssh covers TCP, key exchange and authentication
            conn = await asyncssh.connect(**kwargs, client_factory=factory)
        except asyncssh.HostKeyNotVerifiable as exc:
            client = clients[-1] if clients else VerifyingClient(hop, known, aliased)
            raise HostKeyError(host_key_message(hop, client, pattern)) from exc
        except asyncssh.KeyExchangeFailed as exc:
            if "host key" not in str(exc.reason):
                raise NotStarted(f"{hop.label}: SSH to {where} failed: {exc.reason}") from exc
            files = " or ".join(str(p) for p in hop.target.known_hosts_files)
            raise HostKeyError(
                f"{hop.label}: the server at {pattern} offers no host key of "
                f"the types recorded for it in {files}; refusing to connect. If its keys really "
                f"changed, check the new fingerprint on the host and replace the old entry. "
                f"({exc.reason})"
            ) from exc
        except asyncssh.PermissionDenied as exc:
            raise NotStarted(
                f"{hop.label}: authentication as {options.username!r} failed at {where}: "
                f"{exc.reason}; {_keys_offered(hop.target, options)}"
            ) from exc
        except asyncssh.DisconnectError as exc:
            raise NotStarted(f"{hop.label}: SSH to {where} failed: {exc.reason}") from exc
        except TimeoutError:
            raise NotStarted(
                f"{hop.label}: no SSH connection to {where} within "
                f"{hop.target.connect_timeout:g} s"
            ) from None
        except OSError as exc:
            # asyncio's text ("Connect call failed ('10.0.0.3', 22)") says less than the errno
            why = _CONNECT_FAILURES.get(exc.errno or 0) or exc.strerror or str(exc)
            raise NotStarted(f"{hop.label}: {why} ({where})") from exc
        except PacketDecodeError as exc:
            # a ValueError too, but the server's bytes, not the settings, are at fault
            raise NotStarted(f"{hop.label}: SSH to {where} failed: the server sent a "
                                 f"malformed SSH packet ({exc})") from exc
        except ValueError as exc:
            # asyncssh.connect checks the settings (ciphers, ...) before it connects
            raise self._invalid(exc) from exc
        except asyncssh.Error as exc:
            raise NotStarted(f"{hop.label}: SSH to {where} failed: {exc}") from exc
        return conn

    async def _connection(self, state: _LoopState) -> asyncssh.SSHClientConnection:
        async with state.lock:
            self._check_open(state)
            if state.alive:
                return state.conns[-1]
            await self._close_state(state)
            opened: list[asyncssh.SSHClientConnection] = []
            try:
                for hop in self._route():
                    conn, client, handshake = await self._connect_hop(
                        hop, opened[-1] if opened else None)
                    opened.append(conn)
                    # asyncssh's connect may return the connection to a caller cancelled
                    # meanwhile (see check_cancelled): it goes with the rest
                    check_cancelled()
                if self.target.sudo:
                    state.remote_root = await self._is_root(opened[-1])
                # closed while it connected: close() found no connection to end yet
                self._check_open(state)
            except BaseException as exc:
                for conn in reversed(opened):
                    conn.abort()
                # a socket, the known_hosts file or a key this process could not open for
                # want of open files: this machine's shortage, not the host's failure
                if isinstance(exc, Exception) and (
                        ours := local_limit(exc, self.host)) is not None:
                    raise ours from exc  # never in place of a cancellation
                raise
            state.conns, state.client, state.handshake = opened, client, handshake
            state.user = opened[-1].get_extra_info("username")
            self._connects += 1
            return opened[-1]

    def _check_open(self, state: _LoopState) -> None:
        """Raise where ``state`` was let go: a call that outlived :meth:`close` (a check, a
        follower's stream) ends instead of opening a connection nobody would close."""
        if state.closed or self._state is not state:
            raise NotStarted(f"{self.host}: the SSH connection was closed while this ran")

    async def _is_root(self, conn: asyncssh.SSHClientConnection) -> bool:
        """Whether the remote user is root already: then sudo is not needed."""
        marker = new_marker()
        try:
            who = await conn.run(f"echo {marker}; id -u", check=False,
                                 timeout=self.target.connect_timeout)
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            raise NotStarted(f"{self.host}: cannot run 'id -u' over SSH: {exc}") from exc
        # the login shell's rc files may print around it: the uid is the line after the
        # marker; a uid not read is not root's, and sudo (which says why if it refuses) is used
        return after_marker(str(who.stdout or ""), marker) == "0"

    async def _close_state(self, state: _LoopState) -> None:
        state.shell = state.shell_conn = None  # it goes with its connection
        conns, state.conns, state.client, state.remote_root = state.conns, [], None, None
        state.user, state.ran, state.stuck, state.stuck_conn = None, False, [], None
        for conn in reversed(conns):
            conn.close()
            await settle(conn.wait_closed(), _CLOSE_WAIT)

    async def let_go(self) -> None:
        """Closed for good: what still holds this transport after its host was removed (an
        investigation's tool call, a chat's) would log in again, to a host nobody manages,
        and nothing would ever close that login."""
        self._let_go = True
        await self.close()

    async def close(self) -> None:
        state, self._state = self._state, None
        if state is not None:
            state.closed = True  # before any await: what runs on it connects no more
        if state is not None and state.loop is asyncio.get_running_loop():
            await self._close_state(state)
        elif state is not None:
            for conn in state.conns:
                with contextlib.suppress(Exception):
                    conn.abort()

    # -- commands ------------------------------------------------------------------------------

    @property
    def fix_prefix(self) -> tuple[str, ...]:
        """``sudo -n --`` where the operator granted this login the fixes (``sudo = true``)
        and it is not root. Only fixes go behind it: checks and the model's reads run as the
        login user, so that the sudoers rules name exactly the fixes, never a shell."""
        state = self._state
        if not self.target.sudo or self.runs_as_root or (state and state.remote_root):
            return ()
        return _SUDO

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        """The argv as the remote host runs it: as it is, as the login user.

        :meth:`run` puts it under coreutils' ``timeout`` as well: sshd cannot signal the
        commands of a root login, so a command the client gave up on would otherwise run on;
        and every command under an ``sh -c`` that sets the C locale in the host's character
        set (:data:`C_LOCALE`) and execs it.
        """
        return argv

    async def _open(
        self, state: _LoopState, cmd: tuple[str, ...], timeout: float | None = None,
        marker: str = "", streamed: bool = False,
    ) -> tuple[asyncssh.SSHClientProcess, float | None]:
        """A remote process for ``cmd`` and what is left of ``timeout``, which its session's
        opening counts against (the connect has a limit of its own); a connection found dead
        is reopened once. ``marker``: a line written on both streams just before the command
        starts, so that what the login shell's rc files print before it (a ~/.bashrc banner)
        can be told from the command's output (:func:`_after_start`). ``streamed``: a command
        with no end of its own, which ends when the session's stdin does
        (:data:`_UNTIL_STDIN_ENDS`), kept open here until the caller stops."""
        for attempt in (1, 2):
            conn = await self._connection(state)
            remote = cmd if timeout is None else self._timed(state, cmd, timeout)
            # sh, whatever the login shell is, sets the locale and is replaced by the
            # command (exec): the same process tree, one more exec; a streamed command runs
            # under that sh instead, which ends it as the stream stops
            said = f"; echo {marker}; echo {marker} >&2" if marker else ""
            command = login_shell_command(f"{C_LOCALE}{said}", remote,
                                          _UNTIL_STDIN_ENDS if streamed else 'exec "$@"')
            asked = time.monotonic()
            try:
                proc = await self._bounded(state, conn, conn.create_process(
                    command, stdin=asyncssh.PIPE if streamed else asyncssh.DEVNULL,
                    encoding="utf-8", errors="replace"
                ), timeout, f"{self.host}: {' '.join(cmd)!r}")
                return proc, None if timeout is None else timeout - (time.monotonic() - asked)
            except (asyncssh.ChannelOpenError, asyncssh.DisconnectError,
                    asyncssh.ConnectionLost, BrokenPipeError, ConnectionError) as exc:
                if _sent(exc):
                    # the host may have started it (a fix too) and lost only its answer:
                    # sent again, it would run twice
                    raise TransportError(
                        f"{self.host}: the connection was lost after {cmd[0]!r} was sent, "
                        f"before the host said it started: it may have run, so it is not "
                        f"sent again ({exc})") from exc
                # the session never opened: it is safe to try again on a fresh connection
                if attempt == 2 or (state.client is not None and not state.client.lost):
                    raise NotStarted(
                        f"{self.host}: no SSH session for {cmd[0]!r}: {exc}"
                    ) from exc
                await self._drop_connection(state, conn)
        raise AssertionError("unreachable")

    @staticmethod
    def _timed(state: _LoopState, cmd: tuple[str, ...], timeout: float) -> tuple[str, ...]:
        """``cmd`` as the host runs it under a limit that ends it (and its process group) a
        little after the client stops waiting. A fix behind sudo is ended by sudo itself
        (``-T``): sudo ignores a signal from its parent's process group, which coreutils'
        `timeout` is in, and under ``use_pty`` (Debian's default) the command runs in a
        process group of its own, so `timeout`'s KILL would end sudo alone and leave the fix
        running as root after the client was told it timed out."""
        limit = timeout + _REMOTE_GRACE
        if not SshTransport._sudo_limits(state, cmd):
            return ("timeout", "-k", "1", f"{limit:g}", *cmd)
        whole = math.ceil(limit)  # sudo takes whole seconds
        return ("timeout", "-k", "1", f"{whole + _SUDO_KILL_WAIT}",
                *_SUDO[:-1], "-T", str(whole), "--", *cmd[len(_SUDO):])

    @staticmethod
    def _sudo_limits(state: _LoopState, cmd: tuple[str, ...]) -> bool:
        """``cmd`` is a fix behind sudo that sudo itself gives its time limit (``-T``)."""
        return cmd[:len(_SUDO)] == _SUDO and state.sudo_timeouts is not False

    def _sudo_timeout_refused(self, state: _LoopState, cmd: tuple[str, ...], code: int,
                              stdout: str, stderr: str) -> bool:
        """sudo refused the ``-T`` of :meth:`_timed` (nothing ran): fixes on this connection
        go without it from now on, under `timeout` alone, which may not end them."""
        if (not self._sudo_limits(state, cmd) or code != 1 or stdout
                or not _NO_SUDO_TIMEOUT.search(stderr)):
            return False
        state.sudo_timeouts = False
        who = state.user or "the login user"
        log.warning("%s: sudo does not let %s give a fix a time limit of its own (sudo -T): a "
                    "fix that overruns its timeout may go on running as root; add "
                    "'Defaults:%s user_command_timeouts' to its sudoers (as `ai-sysadmin policy "
                    "sudoers` writes it)", self.host, who, who)
        return True

    async def _bounded(self, state: _LoopState, conn: asyncssh.SSHClientConnection,
                       opening: Awaitable[T], timeout: float | None, what: str) -> T:
        """A session's opening within the command's time: a host that froze, or a partition
        that sent no reset, never answers it, and the keepalive notices only minutes later.
        Unanswered, the connection is dropped: the next command connects afresh."""
        if timeout is None:
            return await opening
        try:
            return await within(opening, timeout)
        except TimeoutError:
            await self._drop_connection(state, conn)
            raise NoAnswer(f"{what} timed out after {timeout:g} s: the host did not open an "
                           f"SSH session") from None

    async def _drop_connection(self, state: _LoopState,
                               conn: asyncssh.SSHClientConnection) -> bool:
        """Close ``conn`` with all it carries, unless another call replaced it meanwhile:
        whether it was still this transport's."""
        async with state.lock:
            if state.conns and state.conns[-1] is conn:
                await self._close_state(state)
                return True
        return False

    async def _kill(self, proc: asyncssh.SSHClientProcess, signal: bool = True) -> None:
        # sshd signals the session's process group, except for root logins (no privilege
        # separation there): run() relies on the remote `timeout` instead. ``signal``
        # False: a fix under sudo's own limit (:meth:`_timed`), where the signal would end
        # the `timeout` around sudo, and sudo with it, and leave the command running as root
        if signal:
            with contextlib.suppress(Exception):
                proc.kill()
        with contextlib.suppress(Exception):
            proc.close()
        await settle(proc.wait_closed(), _CLOSE_WAIT)

    async def run(self, argv: Sequence[str], timeout: float = 20.0) -> CommandResult:
        """Run ``argv`` on the host; connecting, a missing program or a timeout raise."""
        cmd = _check_argv(argv)
        state = self._loop_state()
        async with state.slots, self._counted(state):
            started = time.monotonic()
            code, stdout, stderr = await self._run_once(state, cmd, timeout)
            if self._sudo_timeout_refused(state, cmd, code, stdout, stderr):
                left = max(timeout - (time.monotonic() - started), _RETRY_MIN)
                code, stdout, stderr = await self._run_once(state, cmd, left)
        self._check_started(cmd, code, stderr)
        await self._check_answered(state, cmd, code, stdout, stderr)
        return CommandResult(cmd, code, stdout, stderr, time.monotonic() - started)

    async def _run_once(self, state: _LoopState, cmd: tuple[str, ...], timeout: float
                        ) -> tuple[int, str, str]:
        """``cmd``'s exit status and output, as the host ran it once."""
        marker = new_marker()
        signal = not self._sudo_limits(state, cmd)
        proc, left = await self._open(state, cmd, timeout, marker)
        assert left is not None
        try:
            out, err = await within(communicate(proc), left)
        except TimeoutError:
            await self._kill(proc, signal)
            raise CommandTimeout(f"{self.host}: {' '.join(cmd)!r} timed out after {timeout:g} s"
                                 f"{self._may_run_on(state, cmd)}") from None
        except OutputTooLarge as exc:
            await self._kill(proc, signal)
            raise TransportError(f"{self.host}: {' '.join(cmd)!r} {exc}") from None
        except asyncio.CancelledError:
            await self._kill(proc, signal)
            raise
        except (asyncssh.Error, OSError) as exc:
            await self._kill(proc, signal)
            raise TransportError(f"{self.host}: {cmd[0]!r} over SSH: {exc}") from exc
        code = proc.returncode
        if code is None:
            raise TransportError(f"{self.host}: the connection was lost while {cmd[0]!r} ran")
        stdout, stderr = (_after_start(str(text or ""), marker) for text in (out, err))
        return code, stdout, stderr

    @staticmethod
    def _may_run_on(state: _LoopState, cmd: tuple[str, ...]) -> str:
        """What a timeout leaves behind, where the client cannot know the command ended."""
        if cmd[:len(_SUDO)] != _SUDO or SshTransport._sudo_limits(state, cmd):
            return ""
        return ("; the host's sudo allows no time limit (sudo -T), so it may still be running "
                "there as root")

    @staticmethod
    @contextlib.asynccontextmanager
    async def _counted(state: _LoopState) -> AsyncIterator[None]:
        state.running += 1
        try:
            yield
        finally:
            state.running -= 1

    async def _check_answered(self, state: _LoopState, cmd: tuple[str, ...], code: int,
                              stdout: str, stderr: str) -> None:
        """Raise :class:`CommandRefused` where the host ran nothing: sudo refused a fix
        (:class:`~ai_sysadmin.errors.SudoRefused`: its refusal is the last it said, a warning
        it printed before running the command is none), or the login shell is no shell.
        nologin and /bin/false exit 1 whatever they are asked, as a command may: where a
        command failed before any other ran on the connection, the shell is asked to echo
        once (:meth:`_probe_shell`)."""
        try:
            if (sudo := sudo_refused(self.host, cmd, code, stdout, stderr)) is not None:
                raise sudo
            if code != 0 and not state.ran:
                await self._probe_shell(state)
        except CommandRefused as exc:
            self.refusal = exc
            raise
        state.ran, self.refusal = True, None

    async def _probe_shell(self, state: _LoopState) -> None:
        async with state.slots:
            if state.ran:  # another command's probe, or its success, said so meanwhile
                return
            conn = await self._connection(state)
            probe = new_marker()
            try:
                done = await conn.run(f"echo {probe}", check=False,
                                      timeout=self.target.connect_timeout)
            except (asyncssh.Error, OSError, TimeoutError) as exc:
                raise TransportError(f"{self.host}: cannot run 'echo' over SSH: {exc}") from exc
        # a shell whose rc files print around the echo runs commands all the same
        if not any(marks(line, probe) for line in str(done.stdout or "").splitlines()):
            raise self._refused(state, done.exit_status, str(done.stdout or ""),
                                str(done.stderr or ""))

    def _refused(self, state: _LoopState, status: int | None, stdout: str, stderr: str
                 ) -> CommandRefused:
        """The host's refusal in its own words (bounded: host text), and what to change."""
        said = _said(f"{stdout}\n{stderr}")
        who = state.user or "the account"
        if status in (126, 127):
            what = f"{self.host}: as {who}, sh could not be started (exit {status})"
        else:
            what = (f"{self.host}: the login shell of {who} refuses to run commands: it "
                    f"ended with exit {status} before running any")
        return CommandRefused(f"{what}, saying: {said}" if said else f"{what}, saying nothing",
                              status, said)

    async def run_script(self, script: str, done: str, timeout: float,
                         answer_within: float | None = None) -> CommandResult:
        """Run a script in the host's long-lived shell: after the first, a check costs no new
        SSH session (no sshd fork, no login shell, no logind session on the host).

        The shell is ``sh`` reading scripts on its stdin; each script ends by printing ``done``
        on stdout and stderr, which is how its output is told from the next one's. A script
        that overruns ``timeout`` or a broken shell is dropped and the next call starts a fresh
        shell (a command it left running ends by itself, or by its own ``timeout(1)`` in the
        collector's careful mode). A shell that ends by itself as soon as it starts is the
        host's answer, :class:`CommandRefused` (also kept in :attr:`refusal`).

        ``answer_within``: the script writes a line as it starts, so a host that sends
        nothing of the reply back within these seconds (or ``timeout``, the smaller) through
        a shell that answered before stopped answering, whatever the script would do,
        unless its sshd still answers on the connection: then only the shell is stuck.
        A host that answers nothing is :class:`NoAnswer`, and the connection is dropped with
        the shell (:meth:`_timed_out`); a stuck shell, or a script that overran, is a plain
        :class:`CommandTimeout`, and the shell alone is dropped.
        """
        self.refusal = None
        try:
            return await self._run_script(script, done, timeout, answer_within)
        except CommandRefused as exc:
            self.refusal = exc
            raise

    async def _run_script(self, script: str, done: str, timeout: float,
                          answer_within: float | None) -> CommandResult:
        state = self._loop_state()
        argv = ("sh", "-s")
        async with state.shell_lock:
            started = time.monotonic()
            for attempt in (1, 2):
                # one limit for the script, whichever shell runs it: a retry gets what is left
                shell, fresh, left = await self._shell(
                    state, argv, started + timeout - time.monotonic())
                # a shell started for this script has its login to go through first (PAM, a
                # logind that stalls, rc files on a slow home): its silence is no sign of a
                # cut, and a host whose logins are slow would be unreachable at every check
                watch = None if fresh else answer_within
                answer = watch if watch is not None and watch < left else None
                try:
                    out, err = await within(shell.run(script, done, answer), left)
                    break
                except TimeoutError:
                    raise await self._timed_out(state, shell, timeout, watch) from None
                except asyncio.CancelledError:
                    await self._drop_shell(state)
                    raise
                except _ReplyTooLarge as exc:  # the rest of it is still coming: a new shell
                    await self._drop_shell(state)
                    raise TransportError(f"{self.host}: {exc}") from None
                except (asyncssh.Error, OSError, EOFError) as exc:
                    await self._drop_shell(state)
                    if fresh and isinstance(exc, _ShellEnded) and exc.exited:
                        # not a shell that died between two checks: the login shell would
                        # not start it (its exit status and words say why)
                        raise self._refused(state, exc.status, exc.stdout, exc.stderr) from None
                    # a shell that died between two checks (killed, OOM) is replaced once:
                    # the script only reads, so running it again is harmless
                    if attempt == 2:
                        raise TransportError(
                            f"{self.host}: the remote shell ended: {exc}") from exc
                    if started + timeout - time.monotonic() < _RETRY_MIN:
                        raise CommandTimeout(
                            f"{self.host}: the check script timed out after {timeout:g} s: "
                            f"its shell ended under it ({exc}), too late for another") from None
            state.ran = True
        return CommandResult(argv, 0, out, err, time.monotonic() - started)

    async def _timed_out(self, state: _LoopState, shell: _Shell, timeout: float,
                         answer_within: float | None) -> CommandTimeout:
        """Why a script ended unfinished, its shell dropped. Where the script writes a line
        as it starts (``answer_within`` given) and not a byte of the reply came, either the
        shell is stuck on a host that answers (swapping hard, its shell's binary or working
        directory on a hung mount), or the host stopped answering (it froze, or a partition
        that sends no reset cut it off). So too where the reply stopped part-way and nothing
        more came for as long as sshd gets to answer (:meth:`_probe_wait`: a byte as recent
        as its answer would be is as good an answer), a cut in the middle of the reply: a
        step runs long, or the host stopped answering. sshd is asked which
        (:meth:`_sshd_answers`): where it is silent too, the connection is dropped, for the
        next call to connect afresh (or to fail at the connect timeout) instead of waiting on
        it, and the caller sends that host nothing more now (:class:`NoAnswer`); the
        commands it carried (a fix) go with it. Else a step of the script runs long on a
        host that answers (or a script that writes nothing early may). The connection goes
        as well where :data:`_STUCK_MAX` shells of scripts that timed out on it on a host
        that answers still hold their sessions (whatever came back between them), once no
        command (a fix) runs on it."""
        conn = state.shell_conn
        wait = self._probe_wait(state, shell)
        silent = shell.heard is None and answer_within is not None
        quiet = None if shell.heard is None else time.monotonic() - shell.heard
        cut = quiet is not None and quiet >= wait
        waited = min(answer_within or timeout, timeout)
        if (silent or cut) and (conn is None or not await self._sshd_answers(state, conn, wait)):
            # the channel goes with its connection: no wait for a silent host to close it
            if conn is None or not await self._drop_connection(state, conn):
                state.shell = state.shell_conn = None
            if cut:
                return NoAnswer(f"{self.host}: the reply stopped part-way, nothing more came "
                                f"back for {quiet:.0f} s: the host stopped answering, or the "
                                "way to it is cut")
            return NoAnswer(f"{self.host}: nothing came back within {waited:g} s: the host "
                            "stopped answering, or the way to it is cut")
        # dropped first: a shell that ends as it is dropped holds no session
        await self._drop_shell(state)
        held = self._stuck_sessions(state, conn, shell)
        if held >= _STUCK_MAX and conn is not None and not state.running:
            # the host answers, but its shells stick: they go with the connection, unless a
            # command runs on it (a fix), which the next timeout waits out
            await self._drop_connection(state, conn)
            return CommandTimeout(
                f"{self.host}: the check script timed out, and {held} shells of scripts "
                "that timed out still hold their sessions on this connection: it is dropped "
                "with them")
        if silent:
            return CommandTimeout(
                f"{self.host}: the check script timed out: its shell sent nothing back within "
                f"{waited:g} s, though the host's sshd answers (the shell is stuck, or starved "
                "of memory or CPU)")
        return CommandTimeout(f"{self.host}: the check script timed out after {timeout:g} s")

    @staticmethod
    def _stuck_sessions(state: _LoopState, conn: asyncssh.SSHClientConnection | None,
                        shell: _Shell) -> int:
        """How many shells of timed-out scripts hold a session on ``conn`` now, ``shell``
        (just dropped) among them: one whose channel sshd has closed since (the shell ended
        at last, or the connection went) holds none."""
        if state.stuck_conn is not conn:
            state.stuck, state.stuck_conn = [], conn
        state.stuck = [s for s in (*state.stuck, shell) if not s.closed]
        return len(state.stuck)

    def _probe_wait(self, state: _LoopState, shell: _Shell) -> float:
        """How long the host's sshd gets to answer (:meth:`_sshd_answers`): a round trip
        and a little, which on a slow link is a second or more. At least :data:`_PROBE_WAIT`,
        and as long as the connection's login took, or the timed-out script's first byte
        (the link may have slowed since), up to the connect timeout: a host that answers
        that slowly is alive, and one whose probe found no answer in 1 s was called
        unreachable, its connection dropped with the fix running on it."""
        measured = max(state.handshake, shell.answered_in or 0.0)
        return max(_PROBE_WAIT, min(measured, self.target.connect_timeout))

    async def _sshd_answers(self, state: _LoopState, conn: asyncssh.SSHClientConnection,
                            wait: float) -> bool:
        """Whether the host's sshd answers on ``conn`` within ``wait`` seconds. It is asked
        for a session of a subsystem no server offers, which sshd refuses in its own process:
        no fork, login shell or command on the host, so neither the stuck shell nor a host
        with no memory to spare for a new process holds the answer up."""
        client = state.client if state.conns and state.conns[-1] is conn else None
        if client is None:  # another call dropped it meanwhile: nothing to keep
            return False
        try:
            chan, _ = await within(conn.create_session(
                asyncssh.SSHClientSession, subsystem=_PROBE_SUBSYSTEM), wait)
        except asyncssh.ChannelOpenError:
            # refused, the answer sought; asyncssh says the same where the connection closed
            # under the request, which its client then knows as lost
            return not client.lost
        except (TimeoutError, asyncssh.Error, OSError):
            return False
        chan.close()  # a server that offers it after all answered as well
        return True

    async def _shell(self, state: _LoopState, argv: tuple[str, ...],
                     timeout: float) -> tuple[_Shell, bool, float]:
        """The connection's shell, whether it was started for this call, and what is left
        of ``timeout``, which starting it counts against."""
        conn = await self._connection(state)
        shell = state.shell
        if shell is not None and state.shell_conn is conn and shell.alive:
            return shell, False, timeout
        await self._drop_shell(state)
        remote = login_shell_join(argv)
        asked = time.monotonic()
        try:
            _, shell = await self._bounded(state, conn, conn.create_session(
                _Shell, remote, encoding="utf-8", errors="replace"), timeout,
                f"{self.host}: the check script")
        except (asyncssh.Error, OSError) as exc:
            raise TransportError(f"{self.host}: no SSH session for the check script: {exc}"
                                 ) from exc
        state.shell, state.shell_conn = shell, conn
        return shell, True, timeout - (time.monotonic() - asked)

    async def _drop_shell(self, state: _LoopState) -> None:
        shell, state.shell, state.shell_conn = state.shell, None, None
        if shell is not None:
            await shell.end()

    def _check_started(self, cmd: tuple[str, ...], code: int, stderr: str) -> None:
        # same contract as a local process: a missing program is an error, not an exit code
        if code not in (1, 126, 127):
            return
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        sudo_runs = _under_sudo(cmd)
        name = sudo_runs[0] if sudo_runs else cmd[0]
        by_shell = code in (126, 127) and name in last and _NOT_FOUND.search(last)
        by_sudo = (code == 1 and sudo_runs is not None and last.startswith(f"sudo: {name}:")
                   and "not found" in last)
        said = f"{self.host}: cannot start {name!r}: {last}"
        if by_shell and code == 126:
            # there but not to be run (no permission): nothing known of what the host has
            raise NotStarted(said)
        if by_shell or by_sudo:
            raise ProgramMissing(said, name)

    async def stream_lines(self, argv: Sequence[str]) -> AsyncIterator[str]:
        """Lines of a long-running remote command, until it ends or the caller stops.

        When the caller stops, the session's stdin ends, and with it the command
        (:data:`_UNTIL_STDIN_ENDS`), on a root login too, where sshd sends no signal.
        """
        cmd = _check_argv(argv)
        state = self._loop_state()
        # not one of the command slots: a stream holds its session for as long as it is
        # followed, and with ``ssh.concurrency = 1`` no command would ever run again
        marker = new_marker()
        proc, _ = await self._open(state, cmd, marker=marker, streamed=True)
        try:
            started = False
            while True:
                line = await proc.stdout.readline()
                if not line:  # EOF
                    break
                if started:
                    yield str(line).rstrip("\n")
                else:  # what the login shell's rc files printed before the command began
                    started = marks(str(line), marker)
        except (asyncssh.Error, OSError) as exc:
            raise TransportError(f"{self.host}: {cmd[0]!r} over SSH: {exc}") from exc
        finally:
            with contextlib.suppress(Exception):  # the end the remote command waits for
                proc.stdin.write_eof()
            await self._kill(proc)
