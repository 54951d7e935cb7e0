"""A fix waiting for a person on this machine: a journal vacuum (what the executor tests that
run a real `approve` process approve)."""

from __future__ import annotations

import asyncio

from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.store import Action, Database, IncidentStore


def pending_vacuum(settings: Settings) -> Action:
    """A pending ``vacuum_journal`` of this machine in ``settings``' store, which is closed
    after (a command of another process opens it)."""
    store = IncidentStore(Database(settings.db_path))
    host = short_hostname()
    action = asyncio.run(Executor(settings, store, {host: LocalTransport(host)}).propose(
        host, "vacuum_journal", {"max_size": "500M"}))
    assert action.state == "pending"
    store.db.close()
    return action
