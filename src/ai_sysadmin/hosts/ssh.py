"""The SSH transport: one reused ``asyncssh`` connection per host, host keys always verified.

Every command is still an argv: it is quoted with :func:`shlex.join` for the remote login shell
(which must be a POSIX shell: sh, bash, dash, zsh). Host keys are checked against a
known_hosts file, for jump hosts too; an unknown key is accepted only when the operator turned
trust on first use on, and is then recorded in that file. A changed key is never accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import shlex
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
from asyncssh.public_key import get_default_certificate_algs, get_default_public_key_algs

from ..errors import TransportError
from .transport import CommandResult, Transport, _check_argv

log = logging.getLogger("ai_sysadmin.service")

DEFAULT_PORT = 22
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
#: the system-wide file (NixOS writes `programs.ssh.knownHosts` there)
GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
#: how long to wait for a killed remote command's channel to close before giving up on it
_CLOSE_WAIT = 2.0
#: the remote `timeout` of a command ends it this long after the client stopped waiting
_REMOTE_GRACE = 1.0
#: the remote shell's or sudo's words for a program that does not exist
_NOT_FOUND = re.compile(r"(command not found|not found|No such file or directory)\s*$", re.M)


class HostKeyError(TransportError):
    """The host's key is not the one recorded for it, or is not known and may not be trusted."""


@dataclass(frozen=True)
class SshTarget:
    """How to reach one host. ``None`` means: from the SSH config file, else OpenSSH's default.

    ``ssh_config`` is an OpenSSH client config file (``~/.ssh/config``) read through asyncssh's
    own parser: ``Hostname``, ``Port``, ``User``, ``IdentityFile``, ``ProxyJump`` and friends
    apply to ``host`` as an alias. Its ``UserKnownHostsFile`` is ignored: keys are always checked
    against ``known_hosts`` (``~/.ssh/known_hosts`` when unset) and ``global_known_hosts``, so
    no config file can turn host key checking off. Trust on first use records in
    ``known_hosts``.
    """

    host: str
    port: int | None = None
    user: str | None = None
    key_files: tuple[str, ...] = ()
    known_hosts: str | os.PathLike[str] | None = None
    global_known_hosts: str | os.PathLike[str] | None = GLOBAL_KNOWN_HOSTS
    trust_on_first_use: bool = False
    #: ``[user@]host[:port]`` (comma-separated for a chain) or a full target; None: ProxyJump
    jump: str | SshTarget | None = None
    ssh_config: str | os.PathLike[str] | None = None
    connect_timeout: float = 10.0
    sudo: bool = False
    #: sessions open at once on this host (sshd's MaxSessions defaults to 10)
    max_concurrent: int = 8
    keepalive_interval: float = 30.0
    #: OpenSSH ``Ciphers`` syntax (``^a,b`` puts a and b first); None: the config file's, else
    #: asyncssh's own order
    ciphers: str | None = None

    @property
    def known_hosts_path(self) -> Path:
        return Path(os.fspath(self.known_hosts or DEFAULT_KNOWN_HOSTS)).expanduser()

    @property
    def known_hosts_files(self) -> list[Path]:
        """Where keys are looked up: ``known_hosts``, then the global file when it exists."""
        files = [self.known_hosts_path]
        if self.global_known_hosts and os.path.exists(self.global_known_hosts):
            files.append(Path(os.fspath(self.global_known_hosts)))
        return files

    @property
    def config_paths(self) -> list[str]:
        # an explicit empty list: asyncssh would otherwise read ~/.ssh/config on its own
        return [str(Path(os.fspath(self.ssh_config)).expanduser())] if self.ssh_config else []


@dataclass(frozen=True)
class _Hop:
    """One connection of a route: the jump hosts first, the target last."""

    target: SshTarget
    label: str  # how messages name it


def _parse_jump(spec: str, base: SshTarget) -> list[SshTarget]:
    hops = []
    for item in spec.split(","):
        user, _, hostport = item.strip().rpartition("@")
        host, port = hostport, None
        if hostport.startswith("["):  # [v6addr]:port
            host, _, rest = hostport[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else None
        elif hostport.count(":") == 1:
            host, _, port_text = hostport.partition(":")
            port = int(port_text)
        if not host:
            raise TransportError(f"{base.host}: invalid jump host {item!r}")
        hops.append(SshTarget(
            host=host, port=port, user=user or None, key_files=base.key_files,
            known_hosts=base.known_hosts, global_known_hosts=base.global_known_hosts,
            trust_on_first_use=base.trust_on_first_use,
            ssh_config=base.ssh_config, connect_timeout=base.connect_timeout,
            keepalive_interval=base.keepalive_interval,
        ))
    return hops


def _known_hosts_text(paths: list[Path]) -> str:
    texts = []
    for path in paths:
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise TransportError(
                f"cannot read the known_hosts file {path}: {exc.strerror}"
            ) from exc
    return "\n".join(texts)


#: what asyncssh raises for settings it cannot use (a bad key file, an unknown cipher)
_INVALID_SETTINGS = (OSError, ValueError, asyncssh.Error)


@functools.lru_cache(maxsize=8)
def _parsed_known_hosts(text: str) -> asyncssh.SSHKnownHosts:
    """Parsed once per content: a fleet's connects share one file of a line per host, and
    parsing it for each host costs O(hosts^2) key decodes. A changed file is new content."""
    return asyncssh.import_known_hosts(text)


def _host_pattern(host: str, port: int) -> str:
    return host if port == DEFAULT_PORT else f"[{host}]:{port}"


def record_host_key(path: Path, host: str, port: int, key: asyncssh.SSHKey) -> str:
    """Append ``key`` for ``host:port`` to a known_hosts file; returns the line written."""
    alg, b64 = key.export_public_key("openssh").decode("ascii").split()[:2]
    line = f"{_host_pattern(host, port)} {alg} {b64}\n"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        needs_newline = False
        if size:
            handle.seek(size - 1)
            needs_newline = handle.read(1) != b"\n"
        handle.write((("\n" if needs_newline else "") + line).encode("ascii"))
    return line.strip()


class _Client(asyncssh.SSHClient):
    """Sees the key a server offers when it is not already trusted; notices a lost connection."""

    def __init__(self, hop: _Hop, known: asyncssh.SSHKnownHosts) -> None:
        self.hop = hop
        self.known = known
        self.offered: asyncssh.SSHKey | None = None
        self.host_known = False
        self.recorded: str | None = None
        self.lost = False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        # asyncssh calls this only for a key that known_hosts does not already trust
        self.offered = key
        lookup_port = None if port == DEFAULT_PORT else port
        trusted_keys, trusted_cas, *_ = asyncssh.match_known_hosts(
            self.known, host, addr, lookup_port
        )
        self.host_known = bool(trusted_keys or trusted_cas)
        if self.host_known or not self.hop.target.trust_on_first_use:
            return False
        path = self.hop.target.known_hosts_path
        try:
            self.recorded = record_host_key(path, host, port, key)
        except OSError as exc:
            log.error("%s: cannot record the host key in %s: %s", self.hop.label, path, exc)
            return False
        log.warning(
            "%s: trusted the host key %s on first use; recorded in %s",
            self.hop.label, key.get_fingerprint("sha256"), path,
        )
        return True


def _host_key_algs(
    known: asyncssh.SSHKnownHosts, options: asyncssh.SSHClientConnectionOptions
) -> list[str] | None:
    """Key types recorded for the host first, then every other type.

    asyncssh offers only the recorded types when the host is known, and a server that has none
    of them just hangs up: a changed key type would read "connection reset". Offering the rest
    after them keeps the recorded key in use whenever the server still has it, and otherwise
    gets the server's key to the check, which then refuses it by name and fingerprint.
    """
    host = options.host_key_alias or options.host
    port = None if options.port == DEFAULT_PORT else options.port
    keys = asyncssh.match_known_hosts(known, host, "", port)[0]
    if not keys:
        return None
    recorded = [alg for key in keys for alg in key.sig_algorithms]
    defaults = get_default_certificate_algs() + get_default_public_key_algs()
    return [a.decode("ascii") for a in dict.fromkeys([*recorded, *defaults])]


def _host_key_message(hop: _Hop, client: _Client, host: str, port: int) -> str:
    path = hop.target.known_hosts_path
    files = " and ".join(str(p) for p in hop.target.known_hosts_files)
    pattern = _host_pattern(host, port)
    if client.offered is None:
        return f"{hop.label}: the host key of {pattern} could not be verified; refusing to connect"
    key = client.offered
    offered = f"{key.get_algorithm()} key {key.get_fingerprint('sha256')}"
    if client.host_known:
        return (
            f"{hop.label}: HOST KEY MISMATCH for {pattern}: the server offered the {offered}, "
            f"but {files} hold a different key for it. Someone may be intercepting the "
            f"connection, or the host was reinstalled; refusing to connect. If the change is "
            f"expected, check the new fingerprint on the host (ssh-keygen -lf "
            f"/etc/ssh/ssh_host_*_key.pub), then remove the old entry with "
            f"`ssh-keygen -R '{pattern}' -f {path}` and add the new key."
        )
    return (
        f"{hop.label}: unknown host key for {pattern}: the server offered the {offered}, which "
        f"is not in {files}; refusing to connect. Check that fingerprint on the host "
        f"(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) and add the key to {path}, or turn on "
        f"trust on first use to record it on the next connection."
    )


class _LoopState:
    """What belongs to one event loop: the connections, the lock and the concurrency limit."""

    def __init__(self, limit: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.lock = asyncio.Lock()
        self.slots = asyncio.Semaphore(limit)
        self.conns: list[asyncssh.SSHClientConnection] = []  # jump hosts first, target last
        self.client: _Client | None = None
        self.remote_root: bool | None = None

    @property
    def alive(self) -> bool:
        return bool(self.conns) and self.client is not None and not self.client.lost


class SshTransport(Transport):
    """Run commands on one host over SSH, through one connection opened on first use."""

    #: the collector gathers a whole Snapshot with one remote command (monitor/remote_script.py)
    one_round_trip = True

    def __init__(self, target: SshTarget, name: str | None = None) -> None:
        if target.max_concurrent < 1:
            raise TransportError(f"{target.host}: max_concurrent must be at least 1")
        self.target = target
        self.host = name or target.host
        self._state: _LoopState | None = None
        self._connects = 0

    # -- connection ----------------------------------------------------------------------------

    @property
    def connects(self) -> int:
        """How many times a connection to the host was opened (reuse keeps this at 1)."""
        return self._connects

    def _loop_state(self) -> _LoopState:
        state = self._state
        if state is None or state.loop is not asyncio.get_running_loop():
            # connections belong to the loop that opened them: a new loop starts afresh
            if state is not None:
                for conn in state.conns:
                    with contextlib.suppress(Exception):
                        conn.abort()
            state = self._state = _LoopState(self.target.max_concurrent)
        return state

    def _route(self) -> list[_Hop]:
        target = self.target
        jump = target.jump
        if jump is None and target.ssh_config:
            configured = self._options(self._kwargs(target, tunnel=())).tunnel
            jump = configured if isinstance(configured, str) else None
        hops: list[SshTarget] = []
        if isinstance(jump, SshTarget):
            hops = [jump]
        elif jump:
            hops = _parse_jump(jump, target)
        route = [_Hop(h, f"{self.host} (via jump host {h.host})") for h in hops]
        return [*route, _Hop(target, self.host)]

    def _kwargs(self, target: SshTarget, tunnel: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "host": target.host,
            "config": target.config_paths,
            "tunnel": tunnel,  # None or a connection: never the config's ProxyJump behind our back
            "connect_timeout": target.connect_timeout,
            "keepalive_interval": target.keepalive_interval,
            # never None: that would turn host key checking off
            "known_hosts": _parsed_known_hosts(_known_hosts_text(target.known_hosts_files)),
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

    def _options(self, kwargs: dict[str, Any]) -> asyncssh.SSHClientConnectionOptions:
        """The settings as asyncssh resolves them with the config file (Hostname, Port, ...)."""
        try:
            return asyncssh.SSHClientConnectionOptions(**kwargs)
        except _INVALID_SETTINGS as exc:
            raise self._invalid(exc) from exc

    def _invalid(self, exc: Exception) -> TransportError:
        return TransportError(f"{self.host}: invalid SSH settings: {exc}")

    async def _connect_hop(
        self, hop: _Hop, tunnel: asyncssh.SSHClientConnection | None
    ) -> tuple[asyncssh.SSHClientConnection, _Client]:
        kwargs = self._kwargs(hop.target, tunnel)
        try:
            # in a thread: it reads and decodes key files, which a fleet does once per host
            options = await asyncssh.SSHClientConnectionOptions.construct(**kwargs)
        except _INVALID_SETTINGS as exc:
            raise self._invalid(exc) from exc
        known = kwargs["known_hosts"]
        algs = _host_key_algs(known, options)
        if algs:
            kwargs["server_host_key_algs"] = algs
        clients: list[_Client] = []

        def factory() -> _Client:
            clients.append(_Client(hop, known))
            return clients[-1]

        host, port = options.host, options.port
        where = f"{options.username}@{host}:{port}"
        try:
            # the connect timeout of asyncssh covers TCP, key exchange and authentication
            conn = await asyncssh.connect(**kwargs, client_factory=factory)
        except asyncssh.HostKeyNotVerifiable as exc:
            client = clients[-1] if clients else _Client(hop, known)
            raise HostKeyError(_host_key_message(hop, client, host, port)) from exc
        except asyncssh.KeyExchangeFailed as exc:
            if "host key" not in str(exc.reason):
                raise TransportError(f"{hop.label}: SSH to {where} failed: {exc.reason}") from exc
            files = " or ".join(str(p) for p in hop.target.known_hosts_files)
            raise HostKeyError(
                f"{hop.label}: the server at {_host_pattern(host, port)} offers no host key of "
                f"the types recorded for it in {files}; refusing to connect. If its keys really "
                f"changed, check the new fingerprint on the host and replace the old entry. "
                f"({exc.reason})"
            ) from exc
        except asyncssh.PermissionDenied as exc:
            raise TransportError(
                f"{hop.label}: authentication as {options.username!r} failed at {where}: "
                f"{exc.reason}"
            ) from exc
        except asyncssh.DisconnectError as exc:
            raise TransportError(f"{hop.label}: SSH to {where} failed: {exc.reason}") from exc
        except TimeoutError:
            raise TransportError(
                f"{hop.label}: no SSH connection to {where} within "
                f"{hop.target.connect_timeout:g} s"
            ) from None
        except OSError as exc:
            raise TransportError(
                f"{hop.label}: cannot connect to {where}: {exc.strerror or exc}"
            ) from exc
        except (asyncssh.Error, ValueError) as exc:
            raise TransportError(f"{hop.label}: SSH to {where} failed: {exc}") from exc
        return conn, clients[-1]

    async def _connection(self, state: _LoopState) -> asyncssh.SSHClientConnection:
        async with state.lock:
            if state.alive:
                return state.conns[-1]
            await self._close_state(state)
            opened: list[asyncssh.SSHClientConnection] = []
            try:
                for hop in self._route():
                    conn, client = await self._connect_hop(hop, opened[-1] if opened else None)
                    opened.append(conn)
                if self.target.sudo:
                    state.remote_root = await self._is_root(opened[-1])
            except BaseException:
                for conn in reversed(opened):
                    conn.abort()
                raise
            state.conns, state.client = opened, client
            self._connects += 1
            return opened[-1]

    async def _is_root(self, conn: asyncssh.SSHClientConnection) -> bool:
        """Whether the remote user is root already: then sudo is not needed."""
        try:
            who = await conn.run("id -u", check=False, timeout=self.target.connect_timeout)
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            raise TransportError(f"{self.host}: cannot run 'id -u' over SSH: {exc}") from exc
        return str(who.stdout).strip() == "0"

    async def _close_state(self, state: _LoopState) -> None:
        conns, state.conns, state.client, state.remote_root = state.conns, [], None, None
        for conn in reversed(conns):
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), _CLOSE_WAIT)

    async def close(self) -> None:
        state, self._state = self._state, None
        if state is not None and state.loop is asyncio.get_running_loop():
            await self._close_state(state)
        elif state is not None:
            for conn in state.conns:
                with contextlib.suppress(Exception):
                    conn.abort()

    # -- commands ------------------------------------------------------------------------------

    def _remote_argv(self, argv: tuple[str, ...], remote_root: bool | None) -> tuple[str, ...]:
        if self.target.sudo and not remote_root:
            return ("sudo", "-n", "--", *argv)
        return argv

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        """The argv as the remote host runs it (with ``sudo -n --`` when asked and not root).

        :meth:`run` puts it under coreutils' ``timeout`` as well: sshd cannot signal the
        commands of a root login, so a command the client gave up on would otherwise run on.
        """
        state = self._state
        return self._remote_argv(argv, state.remote_root if state else None)

    async def _open(
        self, state: _LoopState, cmd: tuple[str, ...], timeout: float | None = None
    ) -> asyncssh.SSHClientProcess:
        """A remote process for ``cmd``; a connection found dead is reopened once."""
        for attempt in (1, 2):
            conn = await self._connection(state)
            remote = self._remote_argv(cmd, state.remote_root)
            if timeout is not None:
                # ends the command (and its process group) a little after we stop waiting
                remote = ("timeout", "-k", "1", f"{timeout + _REMOTE_GRACE:g}", *remote)
            command = shlex.join(remote)
            try:
                return await conn.create_process(
                    command, stdin=asyncssh.DEVNULL, encoding="utf-8", errors="replace"
                )
            except (asyncssh.ChannelOpenError, asyncssh.DisconnectError,
                    asyncssh.ConnectionLost, BrokenPipeError, ConnectionError) as exc:
                # the command did not start: it is safe to try again on a fresh connection
                if attempt == 2 or (state.client is not None and not state.client.lost
                                    and isinstance(exc, asyncssh.ChannelOpenError)):
                    raise TransportError(
                        f"{self.host}: no SSH session for {cmd[0]!r}: {exc}"
                    ) from exc
                async with state.lock:
                    if state.conns and state.conns[-1] is conn:
                        await self._close_state(state)
        raise AssertionError("unreachable")

    async def _kill(self, proc: asyncssh.SSHClientProcess) -> None:
        # sshd signals the session's process group, except for root logins (no privilege
        # separation there): run() relies on the remote `timeout` instead
        with contextlib.suppress(Exception):
            proc.kill()
        with contextlib.suppress(Exception):
            proc.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait_closed(), _CLOSE_WAIT)

    async def run(self, argv: Sequence[str], timeout: float = 20.0) -> CommandResult:
        """Run ``argv`` on the host; connecting, a missing program or a timeout raise."""
        cmd = _check_argv(argv)
        state = self._loop_state()
        async with state.slots:
            started = time.monotonic()
            proc = await self._open(state, cmd, timeout)
            try:
                out, err = await asyncio.wait_for(proc.communicate(), timeout)
            except TimeoutError:
                await self._kill(proc)
                raise TransportError(
                    f"{self.host}: {' '.join(cmd)!r} timed out after {timeout:g} s"
                ) from None
            except asyncio.CancelledError:
                await self._kill(proc)
                raise
            except (asyncssh.Error, OSError) as exc:
                await self._kill(proc)
                raise TransportError(f"{self.host}: {cmd[0]!r} over SSH: {exc}") from exc
            code = proc.returncode
        if code is None:
            raise TransportError(f"{self.host}: the connection was lost while {cmd[0]!r} ran")
        stdout, stderr = str(out or ""), str(err or "")
        self._check_started(cmd, code, stderr)
        return CommandResult(cmd, code, stdout, stderr, time.monotonic() - started)

    def _check_started(self, cmd: tuple[str, ...], code: int, stderr: str) -> None:
        # same contract as a local process: a missing program is an error, not an exit code
        if code not in (1, 126, 127):
            return
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        name = cmd[0]
        by_shell = code in (126, 127) and name in last and _NOT_FOUND.search(last)
        by_sudo = (code == 1 and self.target.sudo and last.startswith(f"sudo: {name}:")
                   and "not found" in last)
        if by_shell or by_sudo:
            raise TransportError(f"{self.host}: cannot start {name!r}: {last}")

    async def stream_lines(self, argv: Sequence[str]) -> AsyncIterator[str]:
        """Lines of a long-running remote command, until it ends or the caller stops.

        When the caller stops, the session is closed: the command gets a signal where sshd
        can send one, else it ends at its next write (SIGPIPE).
        """
        cmd = _check_argv(argv)
        state = self._loop_state()
        async with state.slots:
            proc = await self._open(state, cmd)
            try:
                while True:
                    line = await proc.stdout.readline()
                    if not line:  # EOF
                        break
                    yield str(line).rstrip("\n")
            except (asyncssh.Error, OSError) as exc:
                raise TransportError(f"{self.host}: {cmd[0]!r} over SSH: {exc}") from exc
            finally:
                await self._kill(proc)
