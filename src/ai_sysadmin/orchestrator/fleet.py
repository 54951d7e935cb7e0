"""The managed fleet: this host, plus every remote host the operator manages, as transports."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Settings, machine_name
from ..errors import ConfigError
from ..here import this_machine_at
from ..hosts.inventory import HostSpec, configured_hosts, parse_target, ssh_config_hosts
from ..hosts.transport import Transport
from ..store import HostStore, IncidentStore

if TYPE_CHECKING:
    from ..hosts.ssh import TrustedKey
    from ..hosts.ssh_target import Reached, SshTarget

log = logging.getLogger("ai_sysadmin.service")
#: the managed hosts said not to be checked (:func:`checked_hosts`), once a process
_unchecked_said: set[tuple[str, str]] = set()


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
    """Configured hosts, then hosts the operator added or accepted (not removed ones), but
    for one whose machine another of them is, or that is this machine
    (:func:`checked_hosts`): each said in the log once a process."""
    specs, unchecked = checked_hosts(settings, hosts)
    for one in unchecked:
        _say_unchecked(one)
    return specs


@dataclass(frozen=True)
class Unchecked:
    """A managed host nothing checks (:func:`checked_hosts`), and why, as said after "NAME
    is not checked: "."""

    name: str
    target: str
    why: str


def checked_hosts(settings: Settings,
                  hosts: HostStore) -> tuple[list[HostSpec], list[Unchecked]]:
    """The managed remote hosts that are checked, and those that are not: one whose machine
    (:func:`machine`, where ~/.ssh/config sends it) a host before it reaches already, the
    config's first, then the store's oldest first; one that reaches this machine's own sshd.
    Each machine is checked once: under two names it had every incident twice, and two
    fixes could race on it."""
    removed = {h["name"] for h in hosts.with_status("removed")}
    specs = [s for s in configured_hosts(settings) if s.name not in removed]
    listed = {s.name for s in specs}
    for row in sorted(hosts.with_status("managed"), key=lambda r: float(r["first_seen"])):
        if row["source"] == "checked" or row["name"] in listed | removed or not row["target"]:
            continue
        spec = parse_target(row["target"], source=row["source"])
        specs.append(HostSpec(row["name"], spec.host, spec.port, spec.user,
                              source=row["source"]))
    checked: dict[Reached, HostSpec] = {}
    unchecked = []
    for spec in specs:
        where = machine(spec, settings)
        why = _not_checked(spec, where, checked.get(where))
        if why is not None:
            unchecked.append(Unchecked(spec.name, spec.target, why))
        else:
            checked[where] = spec
    return list(checked.values()), unchecked


def _not_checked(spec: HostSpec, where: Reached, first: HostSpec | None) -> str | None:
    """Why ``spec``, which reaches ``where``, is not checked (:class:`Unchecked`): ``first``
    reaches it already, or it is this machine's sshd; None where it is checked."""
    let_go = ("remove it from remote_systems" if spec.source == "config"
              else f"`systems remove {spec.name}` lets it go")
    sent = sent_to(spec, where)
    if not where.via and (here := this_machine_at(where.host, where.port)) is not None:
        return (f"it is this machine ({sent + '; ' if sent else ''}{here}), which every "
                f"check watches already; {let_go}")
    if first is None:
        return None
    both = "" if not sent and not sent_to(first, where) else \
        f" (~/.ssh/config sends both to {where.said()})"
    of = f"{first.name} in remote_systems" if first.source == "config" else first.name
    return f"it is the machine of {of}{both}, checked as {first.name}; {let_go}"


def sent_to(spec: HostSpec, where: Reached) -> str:
    """``~/.ssh/config sends web1 to web1.example.com:22``, where the config sends ``spec``
    elsewhere than it names; "" where it does not."""
    if (where.host, where.port, where.via) == (machine_name(spec.host), spec.port or 22, ""):
        return ""
    return f"~/.ssh/config sends {spec.host} to {where.said()}"


def machine(spec: HostSpec, settings: Settings) -> Reached:
    """The machine ``spec`` reaches: where its connection goes, as the one
    :func:`remote_transport` makes resolves it (:func:`hosts.ssh_target.reached`, its
    ~/.ssh/config read, nothing looked up)."""
    from ..hosts.ssh_target import reached

    return reached(ssh_target(spec, settings))


def machine_at(settings: Settings) -> Callable[[str], Reached | None]:
    """:func:`machine` of a stored target (None: one that reaches nothing), for the store's
    own check of twins (:meth:`HostStore.add`)."""
    def of(target: str) -> Reached | None:
        try:
            return machine(parse_target(target), settings)
        except ConfigError:
            return None
    return of


def unchecked_hosts(settings: Settings, hosts: HostStore) -> list[Unchecked]:
    """The managed hosts nothing checks (:func:`checked_hosts`), for `systems list` to say."""
    return checked_hosts(settings, hosts)[1]


def _say_unchecked(one: Unchecked) -> None:
    """A managed host that is not checked (:func:`checked_hosts`), said once a process, not
    at every look at the fleet."""
    if (one.name, one.why) in _unchecked_said:
        return
    _unchecked_said.add((one.name, one.why))
    log.warning("%s (%s) is not checked: %s", one.name, one.target, one.why,
                extra={"event": "host_twin"})


@dataclass(frozen=True)
class LetGo:
    """What ending the management of a host did (:func:`stop_managing`)."""

    #: its incidents closed (open, or resolved and not closed yet)
    closed: list[int]
    #: its fixes that waited for a person or for their turn, withdrawn
    withdrawn: int
    #: queued LLM requests of those incidents, cancelled
    cancelled: int
    #: why the queued LLM work was not cancelled (a queue that cannot be reached); None: it was
    queue_error: str | None = None

    def said(self) -> str:
        """``2 open incident(s) closed, 1 undecided fix(es) withdrawn``: what was done, as
        `systems remove` and the daemon say it."""
        return (f"{len(self.closed)} open incident(s) closed"
                + (f", {self.cancelled} queued LLM request(s) cancelled" if self.cancelled
                   else "")
                + (f", {self.withdrawn} undecided fix(es) withdrawn" if self.withdrawn else ""))


def stop_managing(settings: Settings, store: IncidentStore, name: str, reason: str,
                  who: str) -> LetGo:
    """Manage ``name`` no more (`systems remove`, or the daemon's start for a host the config
    no longer lists): its open incidents are closed with ``reason`` and their queued LLM work
    cancelled, its undecided fixes withdrawn. Nothing checks it again, so what is left open
    would be investigated, or wait for an approval, forever. Its incidents, their history and
    the audit stay. A host removed already is refused (:meth:`HostStore.remove`)."""
    from ..executor import Executor

    # all or nothing: one cut short (Ctrl-C, a locked database) must not leave a host that is
    # not managed with incidents still open or fixes still approvable
    with store.db.transaction():
        HostStore(store.db).remove(name, who)
        closed = store.close_host(name, reason, who)
        withdrawn = Executor(settings, store, {}).withdraw(reason, host=name, who=who)
    # another store, maybe another machine: what stays queued is only work saved, a closed
    # incident is never investigated
    cancelled, why = _cancel_llm_work(settings, closed)
    return LetGo(closed, len(withdrawn), cancelled, why)


def _cancel_llm_work(settings: Settings, incidents: list[int]) -> tuple[int, str | None]:
    """Cancel what is queued for these incidents: how many, and why none could be (a queue
    that cannot be reached only loses the saving)."""
    if not incidents:
        return 0, None
    from ..llm.queue import QueueError, open_queue

    try:
        queue = open_queue(settings)
    except QueueError as exc:
        return 0, str(exc)
    try:
        return sum(queue.cancel_keyed(f"incident:{i}") for i in incidents), None
    except QueueError as exc:  # one that fails midway (Redis gone): the rest stays queued
        return 0, str(exc)
    finally:
        queue.close()


@dataclass(frozen=True)
class ConfigFollowed:
    """What the daemon's start changed to follow the config's ``remote_systems``."""

    #: hosts listed again after they were managed no more: managed again, as new hosts
    listed_again: list[str]
    #: hosts the config listed and lists no more, with what ending their management did
    unlisted: dict[str, LetGo]


def follow_the_config(settings: Settings, store: IncidentStore,
                      who: str = "daemon") -> ConfigFollowed:
    """Make the store say what the config says, once, at the daemon's start (when it reads the
    config): a host that ``remote_systems`` listed and lists no more is managed no more, as
    `systems remove` leaves one (a config host is removed in the config, and nothing else
    would close its incidents: nothing checks it to resolve them); one removed and listed
    again is managed again, as a new host (maybe another machine). Only rows of hosts the
    config listed at a start are let go (:meth:`HostStore.mark_listed`): those `systems add`
    or `accept` manage, and this machine's, are the store's and stay as they are; so do hosts
    already followed: a second start changes nothing. Only the daemon's start calls it, and
    only where a config file was read: without one, every host would seem dropped."""
    hosts = HostStore(store.db)
    listed = {spec.name for spec in configured_hosts(settings)}
    hosts.mark_listed(listed, who)
    again = [name for name in hosts.removed_among(listed) if hosts.relist(name, who)]
    unlisted = {name: stop_managing(settings, store, name,
                                    f"{name} is no longer managed (not in remote_systems)", who)
                for name in hosts.unlisted(listed)}
    return ConfigFollowed(again, unlisted)


def discover_from_ssh_config(settings: Settings, hosts: HostStore) -> list[str]:
    if not settings.ssh.discover_ssh_config:
        return []
    return [name for name in ssh_config_hosts(ssh_config())
            if hosts.discover(name, "ssh config")]


def remote_transport(spec: HostSpec, settings: Settings,
                     key_trusted: Callable[[TrustedKey], Awaitable[None]] | None = None
                     ) -> Transport:
    """The SSH transport of a managed host; ``key_trusted``: told of each host key it
    trusts on first use, to audit it."""
    # asyncssh loads only when there is a remote host
    from ..hosts.ssh import SshTransport

    return SshTransport(ssh_target(spec, settings), name=spec.name, key_trusted=key_trusted)


def ssh_target(spec: HostSpec, settings: Settings) -> SshTarget:
    """How a managed host is reached: one making, for its transport and for the machine it
    is (:func:`machine`)."""
    from ..hosts.ssh_target import SshTarget

    ssh = settings.ssh
    keys = [spec.key_file] if spec.key_file else ssh.key_files
    return SshTarget(
        host=spec.host,
        # None where none was written: ~/.ssh/config may name one; a written one wins
        port=spec.port,
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
