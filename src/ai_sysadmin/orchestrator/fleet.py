"""The managed fleet: this host, plus every remote host the operator manages, as transports."""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from ..hosts.inventory import HostSpec, configured_hosts, parse_target, ssh_config_hosts
from ..hosts.transport import Transport
from ..store import HostStore


def ssh_config() -> Path:
    """The OpenSSH client config of whoever runs now, found as known_hosts and key files are
    (``~`` is $HOME when used): worked out on use, not at import, because a command root runs
    on a daemon's state becomes the daemon's user after this module loads (cli's
    ``as_state_owner``) and must reach hosts through the daemon's file, not root's."""
    return Path("~/.ssh/config").expanduser()


def _readable_ssh_config() -> Path | None:
    path = ssh_config()
    try:
        return path if path.is_file() else None
    except OSError:
        # a home this user may not enter (root's, which sudo kept) holds no config of its
        # own; one it may see but not read is still passed on, so a connect names it
        return None


def managed_specs(settings: Settings, hosts: HostStore) -> list[HostSpec]:
    """Configured hosts, then hosts the operator added or accepted (not removed ones)."""
    specs = {s.name: s for s in configured_hosts(settings)}
    removed = {h["name"] for h in hosts.with_status("removed")}
    for row in hosts.with_status("managed"):
        if row["source"] == "checked" or row["name"] in specs or not row["target"]:
            continue
        spec = parse_target(row["target"], source=row["source"])
        specs[row["name"]] = HostSpec(row["name"], spec.host, spec.port, spec.user,
                                      source=row["source"])
    return [s for name, s in specs.items() if name not in removed]


def discover_from_ssh_config(settings: Settings, hosts: HostStore) -> list[str]:
    if not settings.ssh.discover_ssh_config:
        return []
    return [name for name in ssh_config_hosts(ssh_config())
            if hosts.discover(name, "ssh config")]


def remote_transport(spec: HostSpec, settings: Settings) -> Transport:
    # asyncssh loads only when there is a remote host
    from ..hosts.ssh import SshTarget, SshTransport

    ssh = settings.ssh
    keys = [spec.key_file] if spec.key_file else ssh.key_files
    target = SshTarget(
        host=spec.host,
        # 22 may be the default of a bare "host": let ~/.ssh/config say otherwise
        port=spec.port if spec.port != 22 else None,
        user=spec.user or ssh.user,
        key_files=tuple(str(k) for k in keys),
        known_hosts=ssh.known_hosts,
        trust_on_first_use=ssh.trust_on_first_use,
        ssh_config=_readable_ssh_config() if ssh.use_ssh_config else None,
        connect_timeout=ssh.connect_timeout,
        sudo=spec.sudo,
        max_concurrent=ssh.concurrency,
        ciphers=ssh.ciphers or None,
    )
    return SshTransport(target, name=spec.name)
