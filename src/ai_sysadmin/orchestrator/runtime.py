"""The runtime: everything the daemon and every command assemble from the settings, in one place.

Built lazily: ``check`` of this host never builds the remote transports (nor imports asyncssh),
``approve`` reaches every managed host, the daemon takes all of it. Commands differ only in what
they ask for, never in how it is built, so a fix approved from the CLI runs on the same hosts,
with the same checkers and facts, as one the daemon runs on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..agent.prompt import HostFacts
from ..config import Settings, short_hostname
from ..errors import AiSysadminError, StoreError, TransportError
from ..hosts.inventory import HostSpec, configured_hosts
from ..hosts.open_files import make_room
from ..hosts.osinfo import read_os_release
from ..hosts.transport import LocalTransport, Transport
from ..monitor.collector import NIXOS_SYSTEM_PROFILE
from ..monitor.snapshot import Snapshot
from ..redact import redact_cut
from ..store import HostStore, IncidentStore
from .checker import HostChecker, fleet_checkers
from .fleet import managed_specs, remote_transport

if TYPE_CHECKING:  # `check` builds neither: each loads when first asked for (CLI start time)
    from ..agent.context import ToolContext
    from ..executor import Executor
    from ..hosts.ssh import TrustedKey
    from ..knowledge.context import KnowledgeRecall
    from ..notify import Notifier
    from ..store.actions import Action


log = logging.getLogger("ai_sysadmin.decisions")
#: how long closing waits for lessons still being written
LESSON_TIMEOUT_SECONDS = 30.0


class Runtime:
    """Settings, store, the managed hosts' transports, their checkers, host facts and the
    executor. ``transports``: given explicitly (tests, the fault lab), else this host plus
    every managed remote host. ``consumer``: whose journal cursors the checkers move;
    ``actor``: who the audit log names for what its transports decide alone (a host key
    trusted on first use): the daemon, or the person whose command runs."""

    def __init__(self, settings: Settings, store: IncidentStore | None = None,
                 transports: Iterable[Transport] | None = None,
                 consumer: str = "daemon", actor: str = "daemon") -> None:
        self.settings = settings
        self.store = store
        self.consumer = consumer
        self.actor = actor
        self._given = list(transports) if transports is not None else None
        #: lessons being written to the knowledge base, and the writes themselves, whose
        #: threads a cancel does not stop (awaited by close)
        self._lessons: set[asyncio.Future[Any]] = set()
        #: action -> why its lesson last failed, as logged: a knowledge base that stays
        #: broken (a damaged vector index) is said once, not at every housekeeping
        self._unlearned: dict[int, str] = {}
        #: the registration (``hosts.first_seen``) each host's transport was built for: one
        #: that differs is the host added again since, maybe another machine (:meth:`reach`)
        self._built_for: dict[str, float] = {}
        #: told each host renewed (:meth:`renew`), with its old checker and the fresh one:
        #: the daemon's loops and followers of the host
        self.renewal_listeners: list[Callable[[HostChecker, HostChecker], None]] = []
        #: hosts removed that :meth:`hosts_now` let go already
        self._gone: set[str] = set()

    # -- hosts ----------------------------------------------------------------------------------
    @property
    def from_config(self) -> bool:
        """Whether its hosts are the config's and the store's (``run`` and every command),
        not given (tests, the fault lab: their fleet is what they gave)."""
        return self._given is None and self.store is not None

    @cached_property
    def local(self) -> Transport:
        return self._given[0] if self._given else LocalTransport(short_hostname())

    @cached_property
    def transports(self) -> dict[str, Transport]:
        # the registrations before the targets: a host added again in between is renewed
        # when first reached, never taken for the target read before its registration
        if self.from_config:
            assert self.store is not None
            # the hosts it checks because the config lists them are the config's: a host a
            # command checked before any daemon started, then dropped from the config, was
            # 'checked', which no start lets go: managed for good, checked by nothing. A
            # store that takes no write (a full disk) leaves that to the daemon's start
            with contextlib.suppress(StoreError):
                HostStore(self.store.db).mark_listed(
                    {spec.name for spec in configured_hosts(self.settings)}, self.actor)
        if self.store is not None:
            self._built_for = {h["name"]: float(h["first_seen"])
                               for h in HostStore(self.store.db).all()}
        if self._given is not None:
            return {t.host: t for t in self._given}
        specs = managed_specs(self.settings, HostStore(self.store.db)) if self.store else []
        remote = [remote_transport(s, self.settings, self._key_trusted)
                  for s in specs if s.name != self.local.host]
        make_room(len(remote))
        return {t.host: t for t in (self.local, *remote)}

    def transport(self, host: str | None = None) -> Transport:
        """This host (without building the others), or a managed one by name."""
        if host is None or host == self.local.host:
            return self.local
        found = self.transports.get(host)
        if found is None:
            raise AiSysadminError(f"{host} is not a managed host; managed: "
                                  f"{', '.join(sorted(self.transports))} (add one with "
                                  "`systems add`)")
        return found

    async def reach(self, host: str) -> Transport | None:
        """``host``'s transport, built for the host's registration now: one built for an
        earlier one (``systems remove``, then ``systems add``: maybe another machine, at
        another target) is renewed first, with its checker (:meth:`renew`). None: not a
        managed host here. The one way the executor and the investigations reach a host: a
        transport built at the daemon's start reached the removed machine until the host's
        next check renewed it."""
        if host == self.local.host:
            return self.local
        if host not in self.transports:
            return None
        if (added := await asyncio.to_thread(self.added_again, host)) is not None:
            await self.renew(host, added)
        return self.transports.get(host)

    async def hosts_now(self) -> dict[str, Transport]:
        """The transports of the hosts managed now, as the store has them (a conversation
        asks before each question: it stays open while hosts are removed and added). A host
        removed since is let go (:meth:`let_go`) and left out, one added since is taken on
        (:meth:`take_on`), one added again is renewed (:meth:`reach`). Given transports
        (tests, the fault lab) are all there is."""
        if not self.from_config:
            return dict(self.transports)
        assert self.store is not None
        managed = await asyncio.to_thread(self.managed_now)
        for host in [h for h in self.transports if h not in managed and h not in self._gone]:
            self._gone.add(host)
            await self.let_go(host)
        now: dict[str, Transport] = {}
        for host, spec in managed.items():
            self._gone.discard(host)  # added again: reach renews it
            if host in self.transports:
                transport = await self.reach(host)
            elif (registered := await asyncio.to_thread(self.store.registration,
                                                        host)) is not None:
                transport = (await self.take_on(host, registered, spec)).transport
            else:  # no row, so no host the store added: the config's, known at the start
                continue
            if transport is not None:
                now[host] = transport
        return now

    def added_again(self, host: str) -> float | None:
        """``host``'s registration (``hosts.first_seen``) where it is not the one its
        transport was built for: added again since; None where it is (a host first recorded
        by its first check was not added again), and for this machine, never removed. A
        blocking read."""
        if host == self.local.host or self.store is None:
            return None
        now = self.store.registration(host)
        if now is None:
            return None
        known = self._built_for.setdefault(host, now)
        return now if now != known else None

    # -- checks and facts -----------------------------------------------------------------------
    @cached_property
    def checkers(self) -> dict[str, HostChecker]:
        built = fleet_checkers(list(self.transports.values()), self.settings, self.store,
                               self.consumer)
        return {c.host: c for c in built}

    def managed_now(self) -> dict[str, HostSpec | None]:
        """Every host this runtime would check were it built now, as the store says now (a
        blocking read: the daemon asks from a worker thread): the given transports' hosts
        (tests, the fault lab: their fleet is what they gave), else this host and each
        managed remote host, with its spec (None: a transport that is given, or this host)."""
        if self._given is not None:
            return {t.host: None for t in self._given}
        specs = managed_specs(self.settings, HostStore(self.store.db)) if self.store else []
        return {self.local.host: None, **{s.name: s for s in specs if s.name != self.local.host}}

    async def take_on(self, host: str, registered: float,
                      spec: HostSpec | None = None) -> HostChecker:
        """A transport and checker for ``host``, managed since the others were built
        (``systems add``, ``systems accept``) as its registration ``registered``: built as
        the fleet's, sharing their limit of hosts collected at once, their recorder and
        their listeners (the daemon's triage and host profiles, which every checker of the
        fleet has). The executor and the investigations, which look hosts up in these dicts,
        reach it from now on. A host known already is renewed (:meth:`renew`)."""
        if host in self.checkers:
            return await self.renew(host, registered, spec)
        like = next(iter(self.checkers.values()))  # this host's, at least: always checked
        checker = self._check_through(self._transport_of(host, spec), like)
        self._built_for[host] = registered
        return checker

    async def renew(self, host: str, registered: float,
                    spec: HostSpec | None = None) -> HostChecker:
        """A fresh transport and checker for ``host``, added again (``systems add`` after
        ``systems remove``) as its registration ``registered`` since they were built: it may
        be another machine, at another target, and nothing the old checker kept (journal
        cursor, last snapshot, restart counts) is this one's. The listeners are told
        (:attr:`renewal_listeners`), the old transport is closed; the executor and the
        investigations, which reach hosts through these dicts, reach the new one. One
        renewed for ``registered`` already (an investigation reached it first, or a check
        its follower woke) is left as it is."""
        old = self.checkers[host]
        if self._built_for.get(host) == registered:
            return old
        transport = self._transport_of(host, spec)  # raises: nothing changed, tried again
        self._built_for[host] = registered
        fresh = self._check_through(transport, old)
        for listener in self.renewal_listeners:
            listener(old, fresh)
        if old.transport is not transport:
            with contextlib.suppress(Exception):  # a dead SSH session is no reason to stay
                await old.transport.close()
        return fresh

    def _transport_of(self, host: str, spec: HostSpec | None) -> Transport:
        """The given transport of ``host``, else one to ``spec`` or, without it, to the
        target the store has for it now."""
        transport = next((t for t in self._given or () if t.host == host), None)
        if transport is not None:
            return transport
        if spec is None:
            assert self.store is not None, "only a host the store manages is taken on"
            spec = next((s for s in managed_specs(self.settings, HostStore(self.store.db))
                         if s.name == host), None)
            if spec is None:
                raise AiSysadminError(f"{host} is not a managed host")
        return remote_transport(spec, self.settings, self._key_trusted)

    async def _key_trusted(self, key: TrustedKey) -> None:
        """A host key trusted on first use, in the audit log (``logs audit``): from now on
        the key that host must show, a security decision as much as any fix."""
        if self.store is None:  # `check --no-store`: nothing recorded
            return
        via = f" of its jump host {key.via}" if key.via else ""
        detail = (f"{key.key_type} {key.fingerprint}{via} trusted on first use, recorded in "
                  f"{key.known_hosts}")
        try:
            await asyncio.to_thread(self.store.audit, self.actor, "host.key_trusted",
                                    f"host:{key.host}", detail)
        except StoreError as exc:
            # the key is in known_hosts all the same: the connection goes on, and the log
            # (the terminal's warning too) keeps what the audit log could not
            log.error("%s: the host key %s trusted on first use is not in the audit log: %s",
                      key.host, key.fingerprint, exc, extra={"event": "audit_failed"})

    def _check_through(self, transport: Transport, like: HostChecker) -> HostChecker:
        """A checker of ``transport``'s host sharing ``like``'s turns, recorder and
        listeners, in place of any it had."""
        fresh = HostChecker(transport, self.settings, self.store, self.consumer, like.turns,
                            like.recorder)
        fresh.listeners.extend(like.listeners)
        self.transports[transport.host], self.checkers[transport.host] = transport, fresh
        if self._given is None:  # a host taken on since: its connection needs room too
            make_room(len(self.transports) - 1)
        return fresh

    async def let_go(self, host: str) -> None:
        """Close the connection to ``host``, removed (``systems remove``): nothing checks it
        again in this process. Its transport stays known (a fix approved for it is refused
        by the store, not by a missing name) and connects no more: a tool call of an
        investigation or a chat that still holds it is refused, not a login nothing closes.
        Added again, the host gets a fresh one (:meth:`renew`)."""
        transport = self.__dict__.get("transports", {}).get(host)
        if transport is None or transport is self.local:
            return
        try:
            await transport.let_go()
        except Exception as exc:  # a connection that is gone already is let go all the same
            log.info("%s: closing its connection: %s", host, redact_cut(str(exc), 200),
                     extra={"host": host})
        checker = self.__dict__.get("checkers", {}).get(host)
        if checker is not None:
            await checker.forget()

    def checker_for(self, host: str) -> HostChecker:
        try:
            return self.checkers[host]
        except KeyError:
            raise AiSysadminError(f"{host} is not a managed host") from None

    def facts(self, host: str) -> HostFacts:
        """What the system prompt may say about a host: validated tokens of its last snapshot
        (:meth:`load_facts` reads them when there is none yet)."""
        checker = self.checkers.get(host) if "checkers" in self.__dict__ else None
        return _facts(host, checker.previous if checker else None)

    async def load_facts(self, host: str) -> HostFacts:
        known = self.facts(host)
        if known.os_id is not None:
            return known
        transport = self.transport(host)
        info = await read_os_release(transport, self.settings.command_timeout)
        generation, systemd = None, None
        with contextlib.suppress(TransportError):
            link = await transport.run(["readlink", "--", NIXOS_SYSTEM_PROFILE])
            parts = link.stdout.strip().rsplit("-", 2)
            generation = parts[-2] if link.ok and len(parts) == 3 else None
            booted = await transport.run(["test", "-d", "/run/systemd/system"])
            systemd = booted.returncode == 0
        return HostFacts(host, info.id, info.version_id, generation, systemd)

    # -- acting and talking ---------------------------------------------------------------------
    @cached_property
    def executor(self) -> Executor:
        from ..executor import Executor

        if self.store is None:
            raise AiSysadminError("the executor needs the state database")
        executor = Executor(self.settings, self.store, self.transports, self.checker_for,
                            reach=self.reach)
        executor.outcome_listeners.append(self.learn)
        return executor

    @cached_property
    def knowledge(self) -> KnowledgeRecall:
        """Past incidents, knowledge and the config repository; ChromaDB opens on first use
        (one per process and store: the investigator shares it)."""
        from ..knowledge.context import shared

        return shared(self.settings, self.facts)

    async def learn(self, action: Action) -> None:
        """An action that ran, verified or failed, becomes knowledge, in the background: a
        lesson (the store's first open costs seconds) never holds up the fix's caller, whose
        investigation must be over before the incident can be investigated again."""
        if action.incident_id is None or self.store is None \
                or not self.settings.knowledge.enabled:
            return
        task = asyncio.get_running_loop().create_task(self._learn(action.id))
        self._lessons.add(task)
        task.add_done_callback(self._lessons.discard)

    async def _learn(self, action_id: int) -> None:
        from ..store.actions import ActionStore

        assert self.store is not None
        try:  # kept first: a knowledge base that fails, or an end meanwhile, loses nothing
            await asyncio.to_thread(ActionStore(self.store.db).lesson_due, action_id)
        except Exception as exc:
            log.warning("action %d: its lesson is not kept to be tried again: %s", action_id,
                        exc, extra={"action": action_id, "event": "lesson_not_kept"})
        await self._teach(action_id)

    async def learn_due(self) -> int:
        """The lessons a knowledge base that failed did not take (``lessons_due``), oldest
        first, until the knowledge base fails again; how many were learned. The daemon's
        housekeeping. A lesson refused for what it holds is passed over: it would be refused
        at every try, and every lesson after it waited behind it, never learned."""
        if self.store is None or not self.settings.knowledge.enabled:
            return 0
        from pydantic import ValidationError

        from ..store.actions import ActionStore

        learned = 0
        for action_id in await asyncio.to_thread(ActionStore(self.store.db).lessons_due):
            failed = await self._teach(action_id)
            if failed is None:
                learned += 1
            elif not isinstance(failed, ValidationError):
                break  # the knowledge base is down: each next try would wait out its timeout
        return learned

    async def _teach(self, action_id: int) -> Exception | None:
        """The knowledge base learns what ``action_id`` did; what failed, and it stays due,
        when it did not (logged with why)."""
        from ..store.actions import ActionStore

        assert self.store is not None
        actions = ActionStore(self.store.db)
        try:
            action = await asyncio.to_thread(actions.get, action_id)
            if action.incident_id is not None:
                incident = await asyncio.to_thread(self.store.get, action.incident_id)
                # the first lesson opens the knowledge base (seconds): a stop meanwhile
                # waits for the write, and says it stopped once it is done
                writing = asyncio.ensure_future(
                    asyncio.to_thread(self.knowledge.learn, incident, action))
                self._lessons.add(writing)
                writing.add_done_callback(self._lessons.discard)
                await asyncio.shield(writing)
        except Exception as exc:  # a knowledge base that is down costs a delay, not the lesson
            if self._unlearned.get(action_id) != str(exc):
                self._unlearned[action_id] = str(exc)
                log.warning("action %d: not learned yet, tried again at each housekeeping: "
                            "%s", action_id, redact_cut(str(exc), 500),
                            extra={"action": action_id, "event": "learn_failed"})
            with contextlib.suppress(Exception):  # the store may be what fails
                await asyncio.to_thread(actions.lesson_failed, action_id,
                                        redact_cut(str(exc), 500))
            return exc
        await asyncio.to_thread(actions.lesson_learned, action_id)
        self._unlearned.pop(action_id, None)
        return None

    @cached_property
    def notifier(self) -> Notifier:
        """The outbox's delivery (the daemon) and sending at once (`notify`); its channels
        are built, and httpx or Apprise imported, only when first used."""
        from ..notify import Notifier

        if self.store is None:
            raise AiSysadminError("notifications need the state database")
        return Notifier(self.settings, self.store.db)

    def tool_context(self, host: str | None = None, incident_id: int | None = None
                     ) -> ToolContext:
        """Tools reach every managed host; ``host`` is the one they look at when the model
        names none (this host unless the conversation is about another)."""
        from ..agent.context import ToolContext

        return ToolContext(self.settings, self.transports, host or self.local.host, self.store,
                           incident_id, knowledge=self.knowledge)

    async def close(self) -> None:
        """Close what was opened (SSH connections belong to the event loop that made them)."""
        if self._lessons:  # what was learned is kept: written before the process ends
            await asyncio.wait(self._lessons, timeout=LESSON_TIMEOUT_SECONDS)
        opened = self.__dict__.get("transports") or {"local": self.local}
        await asyncio.gather(*(t.close() for t in opened.values()), return_exceptions=True)


def _facts(host: str, snap: Snapshot | None) -> HostFacts:
    if snap is None:
        return HostFacts(host)
    return HostFacts(host, snap.os.id if snap.os else None,
                     snap.os.version_id if snap.os else None, snap.nixos_generation,
                     snap.systemd_running)
