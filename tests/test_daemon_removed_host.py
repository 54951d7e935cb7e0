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
    assert cli("systems", "add", "web9")[0] == 0
    assert cli("systems", "remove", "web9")[0] == 0

    async def one_pass() -> None:
        for checker in daemon.checkers:
            await daemon.check_host(checker, "interval")

    asyncio.run(one_pass())

    checkers = daemon.runtime.checkers
    assert checkers["web9"].previous is None
    assert checkers["here"].previous is not None
    assert HostStore(store.db).get("web9")["last_check"] is None


def test_this_machine_is_checked_even_if_an_old_database_says_removed(settings, store) -> None:
    HostStore(store.db).upsert("here", target=None, source="checked", status="removed")
    daemon = Daemon(Runtime(settings, store, [LocalTransport("here")]))

    asyncio.run(daemon.check_host(daemon.checkers[0], "interval"))

    assert daemon.runtime.checkers["here"].previous is not None
