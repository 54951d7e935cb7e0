"""Where a host is and how to reach it: the target, its jump hosts, the known_hosts files,
its private keys (loaded once per content for the whole fleet)."""

from __future__ import annotations

import asyncio
import copy
import getpass
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote

import asyncssh
from asyncssh.config import SSHClientConfig

from ..config import join_target, machine_name
from ..errors import NotStarted

DEFAULT_PORT = 22
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
#: the system-wide file (NixOS writes `programs.ssh.knownHosts` there)
GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"


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


class Reached(NamedTuple):
    """The machine a target reaches: the host and port its connection goes to, as the target
    names them or its ssh config sends them (``Hostname``, ``Port``), and what it goes
    through, where anything: ``host`` is then as that jump host or proxy command sees it
    (``localhost`` behind a bastion is the bastion). Two targets that reach one are one
    machine (:func:`reached`)."""

    host: str
    port: int
    #: ``ProxyJump ...`` or ``ProxyCommand ...`` as the config or target says it; "": direct
    via: str = ""

    def said(self) -> str:
        """``127.0.0.1:22301``, ``[::1]:22``, ``db:22 through ProxyJump bastion``."""
        return join_target(None, self.host, self.port) + (f" through {self.via}"
                                                          if self.via else "")


def _machine_host(host: str) -> str:
    """A host as one machine has it: an address in one spelling (``0:0::1`` is ``::1``), a
    name in lowercase without a rooted dot."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return machine_name(host)


class _ReadConfig(SSHClientConfig):
    """asyncssh's own reading of a client config for one host, noting each file it read."""

    def parse(self, path: Path) -> None:
        self.__dict__.setdefault("read", []).append(str(path))
        super().parse(path)


#: what one resolution read: each file, and the directory holding it (where a file an
#: ``Include`` glob matches would appear), with its inode, size and change time
_ReadSignature = tuple[tuple[str, tuple[int, int, int] | None], ...]
_REACHED: dict[tuple[str, int | None, str | None, tuple[str, ...]],
               tuple[tuple[str, ...], _ReadSignature, Reached]] = {}
_REACHED_MAX = 4096


def _read_signature(files: Sequence[str]) -> _ReadSignature:
    places = dict.fromkeys(p for path in files for p in (path, os.path.dirname(path)))
    return tuple((p, _stat(p)) for p in places)


def reached(target: SshTarget) -> Reached:
    """Where ``target``'s connection goes, as :meth:`SshTransport._resolve` resolves it for
    the connection: asyncssh's reading of the ssh config for the target's host, port and
    user (a port written wins over ``Port``), without loading a key. Nothing is looked up
    (no DNS, no jump host asked): the config's words decide, so ``web1`` with ``Hostname
    web1.example.com`` is the machine ``web1.example.com`` is, while a name only DNS makes
    the same is another. A config that cannot be read leaves what the target names (the
    connection fails on it). Kept while the files it read are unchanged: a fleet asks for
    every host at each look, and reading a config of a few hundred hosts costs
    milliseconds for each."""
    paths = target.config_paths
    if not paths:
        return Reached(_machine_host(target.host), target.port or DEFAULT_PORT,
                       _via(target, None))
    key = (target.host, target.port, target.user, tuple(paths))
    kept = _REACHED.get(key)
    if kept is not None and _read_signature(kept[0]) == kept[1]:
        return kept[2]
    try:
        config = _ReadConfig.load(None, paths, False, False, False, getpass.getuser(),
                                  () if target.user is None else target.user, target.host,
                                  () if target.port is None else target.port)
    except (OSError, ValueError, KeyError, asyncssh.Error, TypeError, AttributeError,
            RecursionError):
        # TypeError, AttributeError: asyncssh's config reader is no documented API (its
        # options object, which is, loads every key the config names): one whose signature
        # changed in an upgrade leaves the names as written, the check before this one.
        # RecursionError: a config that includes itself, which asyncssh follows without end
        # (ssh stops at 16 deep); the connection says "invalid SSH settings" for its host
        return Reached(_machine_host(target.host), target.port or DEFAULT_PORT,
                       _via(target, None))
    host = config.get("Hostname", target.host)
    port = target.port if target.port is not None else config.get("Port", DEFAULT_PORT)
    where = Reached(_machine_host(str(host)), int(str(port)), _via(target, config))
    if len(_REACHED) >= _REACHED_MAX:
        _REACHED.clear()
    read = tuple(config.__dict__.get("read", ()))
    _REACHED[key] = (read, _read_signature(read), where)
    return where


def _via(target: SshTarget, config: SSHClientConfig | None) -> str:
    """What ``target`` is reached through (:attr:`Reached.via`): its jump host, else its
    config's ``ProxyJump`` (but one naming the host itself: ``Host *``'s, which
    :meth:`SshTransport._jump_hosts` drops too) or ``ProxyCommand``; "" where nothing."""
    jump = target.jump
    if isinstance(jump, SshTarget):
        return f"ProxyJump {join_target(jump.user, jump.host, jump.port)}"
    if jump is None and config is not None:
        jump = config.get("ProxyJump")
    if isinstance(jump, str) and jump.strip().lower() != "none":
        first = _jump_hop(jump.split(",")[0].strip())[1]
        if first.lower() != target.host.lower():
            return f"ProxyJump {jump}"
    command = None if config is None else config.get("ProxyCommand")
    return f"ProxyCommand {command}" if isinstance(command, str) else ""


@dataclass(frozen=True)
class Hop:
    """One connection of a route: the jump hosts first, the target last."""

    target: SshTarget
    label: str  # how messages name it


#: the scheme of a ProxyJump hop written as a URI (``ssh://admin@bastion:2222``)
_SSH_URI = "ssh://"


def parse_jump(spec: str, base: SshTarget) -> list[SshTarget]:
    """The jump hosts of a ProxyJump value as ssh reads it: ``[user@]host[:port]`` or
    ``ssh://[user@]host[:port]``, comma-separated for a chain visited in order; ``none``
    (any case): no jump host. A hop that is none of these is a :class:`NotStarted`."""
    if spec.strip().lower() == "none":
        return []
    hops = []
    for item in spec.split(","):
        user, host, port = _jump_hop(item.strip())
        if not host:
            raise NotStarted(f"{base.host}: invalid jump host {item.strip()!r}")
        if port is not None and not (port.isascii() and port.isdigit()
                                     and 0 < int(port) < 65536):
            raise NotStarted(f"{base.host}: invalid jump host {item.strip()!r}: the port "
                                 f"is not a number from 1 to 65535")
        hops.append(SshTarget(
            host=host, port=int(port) if port is not None else None, user=user or None,
            key_files=base.key_files, known_hosts=base.known_hosts,
            global_known_hosts=base.global_known_hosts,
            trust_on_first_use=base.trust_on_first_use,
            ssh_config=base.ssh_config, connect_timeout=base.connect_timeout,
            keepalive_interval=base.keepalive_interval,
        ))
    return hops


def _jump_hop(item: str) -> tuple[str, str, str | None]:
    """user, host and port (as written) of one hop: an empty user or host, no port (None)
    where not given; no host where the hop is no URI ssh takes."""
    if item.startswith(_SSH_URI):
        # ssh's URI: the user ends at the first "@", may be %-encoded and carry ";params"
        # (ignored, as ssh ignores them); no path but a lone "/"
        rest = item[len(_SSH_URI):].removesuffix("/")
        user, at, hostport = rest.partition("@")
        if not at:
            user, hostport = "", rest
        user = unquote(user.partition(";")[0])
        if "/" in rest or (at and not user):
            return "", "", None
    else:
        user, _, hostport = item.rpartition("@")
    host, port = hostport, None
    if hostport.startswith("["):  # [v6addr]:port
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif hostport.count(":") == 1:
        host, _, port = hostport.partition(":")
    return user, host, port


#: what a key file's loading reads: the key, the certificate and the public key beside it
_KeyFilesSignature = tuple[tuple[str, tuple[int, int, int] | None, ...], ...]
_LOADED: dict[_KeyFilesSignature, Sequence[asyncssh.SSHKeyPair]] = {}
_LOADING: dict[_KeyFilesSignature, asyncio.Future[Sequence[asyncssh.SSHKeyPair]]] = {}
_LOADED_MAX = 16


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _signature(paths: Sequence[str]) -> _KeyFilesSignature:
    return tuple((p, _stat(p), _stat(f"{p}-cert.pub"), _stat(f"{p}.pub")) for p in paths)


async def client_keys(paths: Sequence[str]) -> list[asyncssh.SSHKeyPair]:
    """The private keys (and their certificates) in ``paths``, as asyncssh loads them.

    Loaded in a thread once per content of the files, not once per connection: a fleet
    connects to every host at once with the same keys, and an RSA key costs ~0.1 s of CPU to
    load and check. Each call gets its own copies, because a connection sets the signature
    algorithm of the key pairs it uses. A changed file is new content; a file that cannot be
    loaded raises (``OSError``, ``ValueError`` or ``asyncssh.KeyImportError``) every time.
    """
    signature = _signature(paths)
    keys = _LOADED.get(signature)
    if keys is None:
        loop = asyncio.get_running_loop()
        pending = _LOADING.get(signature)
        if pending is None or pending.get_loop() is not loop:
            pending = loop.run_in_executor(None, asyncssh.load_keypairs, list(paths))
            _LOADING[signature] = pending

            def loaded(done: asyncio.Future[Sequence[asyncssh.SSHKeyPair]]) -> None:
                # a failure is not kept: the next connection tries the files again
                if _LOADING.get(signature) is done:
                    del _LOADING[signature]
                if not done.cancelled():
                    done.exception()  # whoever awaits it reads it; never "not retrieved"

            pending.add_done_callback(loaded)
        keys = await asyncio.shield(pending)
        if len(_LOADED) >= _LOADED_MAX:
            _LOADED.clear()
        _LOADED[signature] = keys
    return [copy.copy(key) for key in keys]
