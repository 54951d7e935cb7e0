"""Run the daemon as ``ai-sysadmin run`` builds it, against a lab, until a condition holds."""

from __future__ import annotations

import asyncio
import time

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import Transport
from ai_sysadmin.lab import SandboxTransport
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.orchestrator.daemon import build_daemon
from ai_sysadmin.store import Database, IncidentStore


def run_daemon(settings: Settings, sb: Sandbox | None, until, timeout: float = 60,
               transports: list[Transport] | None = None):
    """(store, daemon) once ``until(store)`` holds; fails after ``timeout`` seconds."""
    store = IncidentStore(Database(settings.db_path))

    async def go():
        daemon = build_daemon(settings, store, transports or [SandboxTransport(sb)])
        running = asyncio.create_task(daemon.run())
        try:
            deadline = time.monotonic() + timeout
            while not until(store):
                assert time.monotonic() < deadline, "timed out"
                assert not running.done(), running.exception()
                await asyncio.sleep(0.05)
        finally:
            daemon.stop_event.set()
            await asyncio.wait_for(running, 30)
        return daemon

    daemon = asyncio.run(go())
    return store, daemon
