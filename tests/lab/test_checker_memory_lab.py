"""What a checker knows of a host that its own process did not see: a fix that a person's
``approve`` (another process) ran. It comes from the store, so the daemon judges as if it
had seen it itself."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.executor import Executor
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.orchestrator.checker import HostChecker
from ai_sysadmin.store import Database, Incident, IncidentStore
from tests.lab.daemon_runner import QUIET_HOST_WIDE

pytestmark = pytest.mark.lab

#: logs a burst of errors on its first run only; a later run is quiet until
#: /var/tmp/err-again exists, then logs one error more
NOISY = """
[Service]
ExecStart=/bin/sh -c 'if [ -e /var/tmp/was-noisy ]; then while [ ! -e /var/tmp/err-again ]; do sleep 0.1; done; echo "<3>cannot reach the database again"; exec sleep infinity; fi; touch /var/tmp/was-noisy; for i in $(seq 25); do echo "<3>cannot reach the database ($i)"; done; exec sleep infinity'
"""  # noqa: E501
BURST_WINDOW = 20.0


def only(store: IncidentStore, rule: str) -> Incident | None:
    found = [i for i in store.incidents(None) if i.rule == rule]
    assert len(found) <= 1, found
    return found[0] if found else None


def states(store: IncidentStore, incident: Incident) -> list[str]:
    return [e.to_state for e in store.get(incident.id, history=None).events if e.to_state]


def test_a_burst_fix_a_person_approved_in_another_process_resolves_the_daemons_incident(
        tmp_path: Path) -> None:
    """`hal-approve approve N` runs the fix in its own process: the daemon's checks still
    judge the burst by what its source logged since the fix, not by the errors the fix
    ended (still in the window): resolved at once, reopened when the source errs again."""
    settings = Settings(
        ai_name="hal", state_dir=tmp_path, autonomy_level="suggest",
        thresholds={**QUIET_HOST_WIDE, "journal_burst_window_seconds": BURST_WINDOW},
        safety={"verify_settle_seconds": 0.5, "verify_timeout": 8})
    store = IncidentStore(Database(settings.db_path))

    async def scenario(sb: Sandbox) -> None:
        daemon = HostChecker(SandboxTransport(sb), settings, store, consumer="daemon")
        first = await daemon.check("interval")
        # the daemon has watched a whole window: it judges bursts
        while time.time() - first.snapshot.taken_at <= BURST_WINDOW:
            await daemon.check("interval")
            await asyncio.sleep(1)
        began = time.time()
        apply(sb, "start_unit", {"name": "noisy.service"})
        deadline = time.monotonic() + 15
        while (incident := only(store, "journal_error_burst")) is None:
            assert time.monotonic() < deadline, "the burst was never found"
            await daemon.check("journal")
        assert incident.subject == "noisy.service"
        # the daemon's policy asks a person ...
        own = Executor(settings, store, {daemon.host: daemon.transport}, lambda _: daemon)
        action = await own.propose(daemon.host, "restart_unit", {"unit": "noisy.service"},
                                   incident_id=incident.id)
        assert action.state == "pending"
        # ... who approves with the CLI: another process, its own executor and checker
        approve = Executor(settings, store, {daemon.host: SandboxTransport(sb)})
        done = await approve.approve(action.id, "alice")
        assert done.state == "succeeded", done.result
        assert store.get(incident.id).state == "remediating"

        await daemon.check("interval")
        assert time.time() < began + BURST_WINDOW, "too slow: the errors left the window"
        # the errors the fix ended are all still in the window
        assert store.get(incident.id).state == "resolved"

        sb.exec(["touch", "/var/tmp/err-again"], check=True)
        deadline = time.monotonic() + 10
        while store.get(incident.id).state == "resolved":
            assert time.monotonic() < deadline, "a new error after the fix did not reopen it"
            await daemon.check("journal")
            await asyncio.sleep(0.2)
        assert time.time() < began + BURST_WINDOW, "too slow: the errors left the window"

    with Sandbox() as sb:
        apply(sb, "install_unit", {"name": "noisy.service", "text": NOISY})
        asyncio.run(scenario(sb))
    incident = only(store, "journal_error_burst")
    assert incident is not None and incident.state == "reopened"
    assert states(store, incident)[-4:] == [
        "awaiting_approval", "remediating", "resolved", "reopened"]

