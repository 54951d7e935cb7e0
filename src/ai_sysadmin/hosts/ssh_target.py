"""Where a host is and how to reach it: the target, its jump hosts, the known_hosts files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import TransportError

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


@dataclass(frozen=True)
class Hop:
    """One connection of a route: the jump hosts first, the target last."""

    target: SshTarget
    label: str  # how messages name it


def parse_jump(spec: str, base: SshTarget) -> list[SshTarget]:
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
