"""A host removed with `systems remove` while the daemon runs is checked no more: it opens no
incident and costs no LLM call (the daemon built its transports at start)."""

from __future__ import annotations

import asyncio

from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.orchestrator.daemon import Daemon
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import HostStore


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
    HostStore(store.db).upsert("here", target=None, source="checked", status="removed")
    daemon = Daemon(Runtime(settings, store, [LocalTransport("here")]))

    asyncio.run(daemon.check_host(daemon.checkers[0], "interval"))

    assert daemon.runtime.checkers["here"].previous is not None


def test_housekeeping_settles_what_a_dead_approve_left_and_expires_answers(settings,
                                                                           store) -> None:
    """Every check interval, while the daemon runs: not only at its start."""
    import time

    from ai_sysadmin.executor import Executor

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
