"""A host removed with `systems remove` while the daemon runs is checked no more: it opens no
incident and costs no LLM call (the daemon built its transports at start)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.knowledge.context import KnowledgeRecall
from ai_sysadmin.llm.backends import make_backend
from ai_sysadmin.llm.client import DirectLLM
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.daemon import Daemon
from ai_sysadmin.orchestrator.investigator import Investigator
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import Database, HostStore, IncidentStore
from ai_sysadmin.store.outbox import EVENT_STATES, Outbox
from tests.support.polling import until
from tests.support.scripted_model import ScriptedModel, Step, call, say

FAILED = Finding("web9", "failed_unit", "nginx.service", Severity.CRITICAL,
                 "nginx.service has failed", ("nginx.service: active=failed",))


class DeadHost:
    """A machine that takes the SSH connection and says nothing until let go, then hangs up:
    what a check of a dead host waits out (ssh.connect_timeout), held as long as a test needs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.held = asyncio.Event()
        self.let_go = asyncio.Event()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.held.set()
        await self.let_go.wait()
        writer.close()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[DeadHost]:
        server = await asyncio.start_server(self._answer, sock=self.sock)
        try:
            yield self
        finally:
            self.let_go.set()
            server.close()


def _told(store: IncidentStore) -> list[str]:
    """What the notifier would send (the outbox), by kind."""
    return [e.kind for e in Outbox.events(store.db.conn, EVENT_STATES)]


def test_a_host_removed_while_the_daemon_runs_is_checked_no_more(cli, settings, store) -> None:
    daemon = Daemon(Runtime(settings, store, [LocalTransport("here"), LocalTransport("web9")]))
    assert cli("systems", "add", "--no-probe", "web9")[0] == 0
    assert cli("systems", "remove", "web9")[0] == 0

    async def one_pass() -> None:
        for checker in daemon.checkers:
            await daemon.check_host(checker, "interval")

    asyncio.run(one_pass())

    checkers = daemon.runtime.checkers
    assert checkers["web9"].previous is None
    assert checkers["here"].previous is not None
    assert HostStore(store.db).get("web9")["last_check"] is None


def test_a_removed_host_is_followed_no_more_while_the_others_are(cli, settings, store) -> None:
    # the daemon follows each host's journal (an SSH session on a remote one): a host
    # removed while it runs must not keep one open, or reconnect to it forever
    import time

    running = settings.model_copy(update={"check_interval": 1.0,
                                          "agent": settings.agent.model_copy(
                                              update={"investigate": False})})
    daemon = Daemon(Runtime(running, store, [LocalTransport("here"), LocalTransport("web9")]))
    assert cli("systems", "add", "--no-probe", "web9")[0] == 0

    async def run_then_remove() -> tuple[bool, bool, bool]:
        task = asyncio.create_task(daemon.run())
        deadline = time.monotonic() + 20
        while set(daemon._following) != {"here", "web9"}:
            assert time.monotonic() < deadline, "the followers never started"
            await asyncio.sleep(0.02)
        web9 = daemon._following["web9"]
        assert cli("systems", "remove", "web9")[0] == 0
        while "web9" in daemon._following or not all(t.done() for t in web9):
            assert time.monotonic() < deadline, "the removed host is still followed"
            await asyncio.sleep(0.02)
        here_followed = not any(t.done() for t in daemon._following["here"])
        daemon.stop_event.set()
        await asyncio.wait_for(task, 15)
        return all(t.cancelled() for t in web9), here_followed, "here" in daemon._following

    cancelled, here_followed, here_kept = asyncio.run(run_then_remove())
    assert cancelled and here_followed and here_kept


def test_this_machine_is_checked_even_if_an_old_database_says_removed(settings, store) -> None:
    here = short_hostname()  # the daemon's own machine, which `systems remove` refuses
    HostStore(store.db).upsert(here, target=None, source="checked", status="removed")
    daemon = Daemon(Runtime(settings, store, [LocalTransport(here)]))

    asyncio.run(daemon.check_host(daemon.checkers[0], "interval"))

    assert daemon.runtime.checkers[here].previous is not None
    assert HostStore(store.db).get(here)["last_check"] is not None  # and recorded


def test_a_check_in_flight_when_its_host_is_removed_opens_nothing(
        cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    """The check of a dead host waits out the SSH connect: `systems remove` (the host
    people remove) lands meanwhile, and what the check then finds must not open an
    incident nobody closes, tell anyone it is unreachable, nor be investigated."""
    with ScriptedModel([say("DIAGNOSIS: web9 is down.")]) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                            knowledge={"enabled": False},
                            llm={"backend": "openai", "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))

        async def go() -> list[int]:
            async with DeadHost().serving() as web9:
                added = await asyncio.to_thread(cli, "systems", "add", "--no-probe",
                                                f"web9@127.0.0.1:{web9.port}", "--name", "web9")
                assert added[0] == 0, added
                runtime = Runtime(settings, store)
                investigator = Investigator(
                    settings, store, runtime.transports,
                    lambda _: DirectLLM(make_backend(settings.llm)),
                    knowledge=KnowledgeRecall(settings))
                daemon = Daemon(runtime, investigator)
                check = asyncio.create_task(
                    daemon.check_host(runtime.checkers["web9"], "interval"))
                await asyncio.wait_for(web9.held.wait(), 30)  # connecting: past every test
                removed = await asyncio.to_thread(cli, "systems", "remove", "web9")
                assert removed[0] == 0, removed
                web9.let_go.set()  # the connect fails: the host is unreachable
                assert await asyncio.wait_for(check, 60)
                # the daemon's sweep of incidents nobody triaged, every few seconds
                picked = investigator.pick_up(await asyncio.to_thread(store.untriaged))
                await asyncio.gather(*investigator.running.values(), return_exceptions=True)
                await investigator.close()
                await runtime.close()
                return picked

        picked = asyncio.run(go())
        assert store.incidents(states=None, host="web9") == []
        assert _told(store) == []
        assert picked == [] and model.requests == []


def test_housekeeping_settles_what_a_dead_approve_left_and_expires_answers(settings,
                                                                           store) -> None:
    """Every check interval, while the daemon runs: not only at its start."""
    import time

    settings = settings.model_copy(update={"check_interval": 0.05})
    daemon = Daemon(Runtime(settings, store, [LocalTransport("here")]))
    executor = Executor(settings, store, {"here": LocalTransport("here")})
    approved = asyncio.run(executor.propose("here", "vacuum_journal", {"max_size": "500M"}))
    executor.actions.move(approved.id, "approved", "alice", "ok")
    lapsing = asyncio.run(executor.propose("here", "vacuum_journal", {"max_size": "400M"}))
    with store.db.transaction() as conn:  # alice's `approve` died; the other's TTL passed
        conn.execute("UPDATE actions SET owner='gone 1 1' WHERE id=?", (approved.id,))
        conn.execute("UPDATE actions SET expires_at=? WHERE id=?", (time.time() - 1,
                                                                    lapsing.id))

    async def a_few_intervals() -> None:
        loop = asyncio.create_task(daemon._housekeeping_loop(executor))
        deadline = time.monotonic() + 10
        while executor.actions.get(lapsing.id).state != "expired" or \
                executor.actions.get(approved.id).state != "pending":
            assert time.monotonic() < deadline and not loop.done()
            await asyncio.sleep(0.02)
        daemon.stop_event.set()
        await asyncio.wait_for(loop, 5)

    asyncio.run(a_few_intervals())
    assert executor.actions.get(approved.id).started_at is None  # a person's, never run


def test_an_incident_left_open_on_a_removed_host_is_investigated_by_nobody(
        tmp_path: Path) -> None:
    """A version that let a check in flight open one (above) left it open after the host was
    removed: the daemon, whose transports still reach the host, asks no LLM about it."""
    with ScriptedModel([say("DIAGNOSIS: nginx.service failed.")]) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                            knowledge={"enabled": False},
                            llm={"backend": "openai", "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        (left,) = store.record_check("web9", [FAILED], {"failed_unit"}).opened
        HostStore(store.db).set_status("web9", "removed")

        async def go() -> list[int]:
            investigator = Investigator(
                settings, store, {"web9": LocalTransport("web9")},
                lambda _: DirectLLM(make_backend(settings.llm)),
                knowledge=KnowledgeRecall(settings))
            picked = investigator.pick_up(await asyncio.to_thread(store.untriaged))
            investigator.schedule(left)  # as the daemon's start does with what was running
            await asyncio.gather(*investigator.running.values(), return_exceptions=True)
            await investigator.close()
            return picked

        picked = asyncio.run(go())
        assert picked == [] and model.requests == []
        assert store.get(left).state == "open" and store.get(left).diagnosis is None


def test_a_fix_approved_for_a_removed_host_runs_nowhere_and_asks_nobody(
        cli: Callable[..., tuple[int, str, str]], settings: Settings,
        store: IncidentStore) -> None:
    """The daemon's executor still holds the host's transport from its start: a fix decided
    after `systems remove` withdrew the others (for an incident a version before this one
    left open) is not run there, nor sent back to a person."""

    async def go() -> int:
        async with DeadHost().serving() as web9:
            web9.let_go.set()  # it hangs up at once: dead
            added = await asyncio.to_thread(cli, "systems", "add", "--no-probe",
                                            f"web9@127.0.0.1:{web9.port}", "--name", "web9")
            assert added[0] == 0, added
            runtime = Runtime(settings, store)
            executor = Executor(settings, store, runtime.transports)
            removed = await asyncio.to_thread(cli, "systems", "remove", "web9")
            assert removed[0] == 0, removed
            # the incident a check in flight opened after the remove, in a version that
            # let it
            with store.db.transaction() as conn:
                conn.execute("UPDATE hosts SET status='managed' WHERE name='web9'")
                (incident_id,) = store.record_check("web9", [FAILED], {"failed_unit"}).opened
                conn.execute("UPDATE hosts SET status='removed' WHERE name='web9'")
            action = executor.actions.create(
                incident_id=incident_id, proposal_id=None, host="web9", kind="restart_unit",
                params={"unit": "nginx.service"}, subject="nginx.service", risk="low",
                plan={"commands": [["systemctl", "restart", "nginx.service"]]},
                outcome="execute", reason="low risk at auto-safe", state="approved")
            ran = await executor.run(action.id)
            await runtime.close()
            return ran.id

    action_id = asyncio.run(go())
    assert Executor(settings, store, {}).actions.get(action_id).state == "not_needed"
    assert store.last_said(f"action:{action_id}") == "web9 is no longer managed: not run"
    assert "approval" not in _told(store)


def test_a_proposal_for_a_host_removed_while_it_was_investigated_asks_nobody(
        cli: Callable[..., tuple[int, str, str]], settings: Settings,
        store: IncidentStore) -> None:
    """The investigation outlived its incident (`systems remove` closed it): what it proposes
    is decided once, as not needed, without asking the host or a person."""

    async def go() -> tuple[int, bool]:
        async with DeadHost().serving() as web9:
            web9.let_go.set()
            added = await asyncio.to_thread(cli, "systems", "add", "--no-probe",
                                            f"web9@127.0.0.1:{web9.port}", "--name", "web9")
            assert added[0] == 0, added
            (incident_id,) = store.record_check("web9", [FAILED], {"failed_unit"}).opened
            runtime = Runtime(settings, store)
            executor = Executor(settings, store, runtime.transports)
            removed = await asyncio.to_thread(cli, "systems", "remove", "web9")
            assert removed[0] == 0, removed
            await executor.decide_and_act(incident_id, "web9", [
                {"kind": "restart_unit", "parameters": {"unit": "nginx.service"}}])
            await runtime.close()
            return incident_id, web9.held.is_set()

    incident_id, asked_the_host = asyncio.run(go())
    (action,) = Executor(settings, store, {}).actions.find()
    assert (action.state, action.incident_id) == ("not_needed", incident_id)
    assert action.reason == "web9 is no longer managed: not decided, nothing runs"
    assert not asked_the_host
    assert "approval" not in _told(store)


def test_a_host_removed_and_added_again_between_two_checks_is_checked_afresh(
        cli, settings, store) -> None:
    # the name may be another machine now: the daemon's checker of the removed one (its
    # journal cursor, snapshot, restart counts, transport) checks it no more
    assert cli("systems", "add", "--no-probe", "web9")[0] == 0
    daemon = Daemon(Runtime(settings, store, [LocalTransport("here"), LocalTransport("web9")]))
    old = daemon.runtime.checkers["web9"]

    async def check_web9() -> None:
        (checker,) = [c for c in daemon.checkers if c.host == "web9"]
        assert await daemon.check_host(checker, "interval")

    asyncio.run(check_web9())
    seen = old.previous
    assert seen is not None
    assert cli("systems", "remove", "web9")[0] == 0
    assert cli("systems", "add", "--no-probe", "web9")[0] == 0
    asyncio.run(check_web9())

    fresh = daemon.runtime.checkers["web9"]
    assert fresh is not old and old.previous is seen  # the old checker checked no more
    assert fresh.previous is not None and fresh in daemon.checkers and old not in daemon.checkers
    assert daemon._triage in fresh.listeners
    assert HostStore(store.db).get("web9")["last_check"] is not None
    asyncio.run(check_web9())  # once: the next checks are the fresh checker's own
    assert daemon.runtime.checkers["web9"] is fresh


def test_a_host_added_again_at_another_target_is_reached_there(cli, settings, store) -> None:
    assert cli("systems", "add", "--no-probe", "ops@web9:2222")[0] == 0
    runtime = Runtime(settings, store)
    assert runtime.transports["web9"].target.port == 2222
    assert cli("systems", "remove", "web9")[0] == 0
    assert cli("systems", "add", "--no-probe", "root@web9:2200")[0] == 0

    transport = asyncio.run(runtime.reach("web9"))

    assert runtime.transports["web9"] is transport
    assert runtime.checkers["web9"].transport is transport
    assert (transport.target.port, transport.target.user) == (2200, "root")


def test_a_running_daemon_follows_a_host_added_again_afresh_and_stops_cleanly(
        cli, settings, store) -> None:
    import time

    # checks at the start, then only when asked: a check between the remove and the add
    # would end web9's loop, as any removal does (the daemon's look for hosts managed
    # meanwhile then takes it on afresh: tests/ssh/test_host_added_while_running.py)
    running = settings.model_copy(update={"check_interval": 3600,
                                          "agent": settings.agent.model_copy(
                                              update={"investigate": False})})
    assert cli("systems", "add", "--no-probe", "web9")[0] == 0
    daemon = Daemon(Runtime(running, store, [LocalTransport("here"), LocalTransport("web9")]))
    old = daemon.runtime.checkers["web9"]

    async def run_then_add_again() -> tuple[list[asyncio.Task[None]], list[asyncio.Task[None]]]:
        task = asyncio.create_task(daemon.run())
        deadline = time.monotonic() + 20
        while set(daemon._following) != {"here", "web9"} or old.previous is None:
            assert time.monotonic() < deadline, "web9 was never checked"
            await asyncio.sleep(0.02)
        before = daemon._following["web9"]
        assert cli("systems", "remove", "web9")[0] == 0
        assert cli("systems", "add", "--no-probe", "web9")[0] == 0
        # what its journal follower's wake does: a check with the checker it was started with
        assert await daemon.check_host(old, "journal")
        assert daemon.runtime.checkers["web9"] is not old
        assert daemon.runtime.checkers["web9"].previous is not None and not task.done()
        after = daemon._following["web9"]
        daemon.stop_event.set()
        await asyncio.wait_for(task, 15)
        return before, after

    before, after = asyncio.run(run_then_add_again())
    assert all(t.cancelled() for t in before)
    assert after and not set(after) & set(before) and all(t.done() for t in after)


def test_a_host_let_go_ends_the_investigations_that_wait_for_the_model(
        cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    """`systems remove` while the model thinks about one of the host's incidents: once the
    daemon lets the host go, that investigation ends, and the model's answer runs none of its
    tool calls on a host nobody manages."""
    thinking = threading.Event()

    def answer_late(request: dict[str, object]) -> Step:
        assert thinking.wait(60), "never let go"
        return call("failed_units")

    with ScriptedModel([answer_late], then=say("DIAGNOSIS: nginx failed.")) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                            knowledge={"enabled": False},
                            llm={"backend": "openai", "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        assert cli("systems", "add", "--no-probe", "web9")[0] == 0
        (incident_id,) = store.record_check("web9", [FAILED], {"failed_unit"}).opened

        async def go() -> bool:
            runtime = Runtime(settings, store, [LocalTransport("here"), LocalTransport("web9")])
            investigator = Investigator(settings, store, runtime.transports,
                                        lambda _: DirectLLM(make_backend(settings.llm)),
                                        knowledge=KnowledgeRecall(settings))
            daemon = Daemon(runtime, investigator)
            try:
                investigator.schedule(incident_id)
                task = investigator.running[incident_id]
                await until(lambda: model.requests, what="the model asked")
                removed = await asyncio.to_thread(cli, "systems", "remove", "web9")
                assert removed[0] == 0, removed
                await daemon._forget("web9")  # what its loop does once it sees the removal
                return task.done()
            finally:
                thinking.set()
                await investigator.close()
                await runtime.close()

        ended = asyncio.run(go())
    assert ended
    assert len(model.requests) == 1
    assert store.get(incident_id).state == "closed"
