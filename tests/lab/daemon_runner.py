"""Run the daemon as ``ai-sysadmin run`` builds it, against a lab, until a condition holds."""

from __future__ import annotations

import asyncio
import time

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import Transport
from ai_sysadmin.lab import SandboxTransport
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.orchestrator.daemon import build_daemon
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import Database, IncidentStore


def run_daemon(settings: Settings, sb: Sandbox | None, until, timeout: float = 60,
               transports: list[Transport] | None = None):
    """(store, daemon) once ``until(store)`` holds; fails after ``timeout`` seconds."""
    store = IncidentStore(Database(settings.db_path))

    async def go():
        daemon = build_daemon(Runtime(settings, store, transports or [SandboxTransport(sb)]))
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


#: thresholds for daemon tests in the lab: load, memory and swap read the whole machine's /proc
#: (not namespaced), so a busy test machine must not open incidents the test does not expect
QUIET_HOST_WIDE = {
    "load_per_core_warn": 1000, "load_per_core_critical": 2000,
    "memory_available_warn_percent": 0, "memory_available_critical_percent": 0,
    "memory_psi_some_avg60": 100, "swap_thrash_pages_per_second": 1e12,
}
