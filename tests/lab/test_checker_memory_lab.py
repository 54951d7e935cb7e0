"""What a checker knows of a host that its own process did not see: a fix that a person's
``approve`` (another process) ran, and a crash loop watched by the daemon before a restart.
Both come from the store, so the daemon judges as if it had seen them itself."""

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
BURST_WINDOW = 60.0


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
        await daemon.check("interval")
        # the daemon has watched a whole window, as if its first look was one ago (nothing
        # logged an error before): it judges bursts. The window is long, for a busy lab's
        # slow checks, and not waited out
        daemon._window_start -= BURST_WINDOW
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


#: runs 4 s, then fails; restarted 100 ms later: slower than the checks
SLOW = """\
[Unit]
StartLimitIntervalSec=0

[Service]
ExecStart=/bin/sh -c 'sleep 4; exit 1'
Restart=on-failure
RestartSec=100ms
"""


def test_a_slow_crash_loop_stays_one_incident_across_a_restart_of_the_daemon(
        tmp_path: Path) -> None:
    """The daemon restarts between two crashes of a loop it had found: the new one still
    knows the count rose within the window, so the loop is neither resolved by its first
    checks between the crashes nor reopened at the next crash."""
    settings = Settings(ai_name="hal", state_dir=tmp_path, thresholds={
        **QUIET_HOST_WIDE, "crash_loop_restarts": 2})
    store = IncidentStore(Database(settings.db_path))

    def restarts(sb: Sandbox) -> int:
        shown = sb.exec(["systemctl", "show", "-p", "NRestarts", "--value", "slow.service"])
        return int(shown.stdout.strip() or 0)

    async def scenario(sb: Sandbox) -> None:
        before = HostChecker(SandboxTransport(sb), settings, store, consumer="daemon")
        deadline = time.monotonic() + 40
        while only(store, "crash_loop") is None:
            assert time.monotonic() < deadline, "the loop was never found"
            await before.check("interval")
            await asyncio.sleep(0.3)
        # the daemon stops; it starts again just after a crash, 4 s before the next one
        seen = restarts(sb)
        deadline = time.monotonic() + 10
        while restarts(sb) == seen:
            assert time.monotonic() < deadline, "the unit was not restarted again"
            await asyncio.sleep(0.05)
        after = HostChecker(SandboxTransport(sb), settings, store, consumer="daemon")
        # checks back to back, until the new daemon has seen two crashes
        first = restarts(sb)
        deadline = time.monotonic() + 30
        while restarts(sb) < first + 2:
            report = await after.check("interval")
            assert time.monotonic() < deadline, "the unit stopped restarting"
            incident = only(store, "crash_loop")
            assert incident is not None and incident.state == "open", \
                "resolved between two crashes"
            assert [f.subject for f in report.findings if f.rule == "crash_loop"] \
                == ["slow.service"]

    with Sandbox() as sb:
        apply(sb, "install_unit", {"name": "slow.service", "text": SLOW})
        apply(sb, "start_unit", {"name": "slow.service"})
        asyncio.run(scenario(sb))
    incident = only(store, "crash_loop")
    assert incident is not None and incident.subject == "slow.service"
    assert states(store, incident) == ["open"]
