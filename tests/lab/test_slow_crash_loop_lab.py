"""A crash loop slower than the checks: a service that runs a while between crashes is one
incident while systemd keeps restarting it, not one per crash, and it ends once the restarts
have stopped for crash_loop_window_seconds."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.orchestrator.checker import CheckReport, HostChecker
from ai_sysadmin.store import Database, IncidentStore
from tests.lab.daemon_runner import QUIET_HOST_WIDE

pytestmark = pytest.mark.lab

#: runs 1.5 s, then fails; restarted 100 ms later, until /var/tmp/mended exists
SLOW = """\
[Unit]
StartLimitIntervalSec=0

[Service]
ExecStart=/bin/sh -c 'test -e /var/tmp/mended && exec sleep infinity; sleep 1.5; exit 1'
Restart=on-failure
RestartSec=100ms
"""
WINDOW = 5.0


def restarts(report: CheckReport) -> int:
    return (report.snapshot.restarts or {}).get("slow.service", 0)


def test_a_slow_crash_loop_stays_one_incident_until_its_restarts_stop(tmp_path: Path) -> None:
    settings = Settings(ai_name="labtest", state_dir=tmp_path, thresholds={
        **QUIET_HOST_WIDE, "crash_loop_window_seconds": WINDOW})
    limit = settings.thresholds.crash_loop_restarts
    store = IncidentStore(Database(settings.db_path))

    def incident_state() -> str | None:
        found = [i for i in store.incidents(None) if i.rule == "crash_loop"]
        return found[0].state if found else None

    async def watch(sb: Sandbox) -> None:
        checker = HostChecker(SandboxTransport(sb), settings, store)
        # checks come back to back, several between two crashes
        reports = [await checker.check("interval")]
        while restarts(reports[-1]) < limit + 3:
            reports.append(await checker.check("interval"))
            assert len(reports) < 500, "the unit never restarted"
            if incident_state() is not None:
                assert incident_state() == "open", "it resolved between two crashes"
        between = [r for before, r in zip(reports, reports[1:], strict=False)
                   if restarts(before) == restarts(r) >= limit]
        assert between, "no check fell between two crashes"

        sb.exec(["touch", "/var/tmp/mended"], check=True)  # the next run stays up
        last = reports[-1]
        deadline = time.monotonic() + WINDOW + 30
        while incident_state() == "open":
            report = await checker.check("interval")
            if restarts(report) != restarts(last):
                last = report  # the loop's last restart, seen by this check
            assert time.monotonic() < deadline, "it never resolved"
        # once the restarts had stopped for the window, not at the first quiet check
        assert report.snapshot.taken_at - last.snapshot.taken_at >= WINDOW - 1
        assert sb.exec(["systemctl", "is-active", "slow.service"]).stdout.strip() == "active"

    with Sandbox() as sb:
        apply(sb, "install_unit", {"name": "slow.service", "text": SLOW})
        apply(sb, "start_unit", {"name": "slow.service"})
        asyncio.run(watch(sb))
    (incident,) = [i for i in store.incidents(None) if i.rule == "crash_loop"]
    assert incident.subject == "slow.service" and incident.state == "resolved"
    states = [e.to_state for e in store.get(incident.id, history=None).events if e.to_state]
    assert states == ["open", "resolved"]


def test_a_crash_loop_seen_before_the_clock_was_set_back_ends_once_its_restarts_stop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's clock ran a year ahead (this process's, stepped as libfaketime would)
    while the unit looped, until it was mended; NTP sets the clock right. The incident
    resolves once the restarts have stopped for the window on the clock as it is now, where
    the rises stamped a year ahead kept the loop found until the clock caught up."""
    # a wider window than the loop's test: its quiet seconds below must stay within it on a
    # busy machine whose checks are slow
    window = 3 * WINDOW
    settings = Settings(ai_name="labtest", state_dir=tmp_path, thresholds={
        **QUIET_HOST_WIDE, "crash_loop_window_seconds": window})
    limit = settings.thresholds.crash_loop_restarts
    store = IncidentStore(Database(settings.db_path))
    real = time.time

    def incident_state() -> str | None:
        found = [i for i in store.incidents(None) if i.rule == "crash_loop"]
        return found[0].state if found else None

    async def watch(sb: Sandbox) -> None:
        checker = HostChecker(SandboxTransport(sb), settings, store)
        with monkeypatch.context() as ahead:
            ahead.setattr(time, "time", lambda: real() + 365 * 86400)
            report = await checker.check("interval")
            while restarts(report) < limit + 1 or incident_state() != "open":
                report = await checker.check("interval")
                assert restarts(report) < limit + 20, "no crash loop found"
            sb.exec(["touch", "/var/tmp/mended"], check=True)  # the next run stays up
            last = report  # the check that saw the last restart: 2 s later, none since
            while report.snapshot.taken_at - last.snapshot.taken_at < 2.0:
                report = await checker.check("interval")
                if restarts(report) != restarts(last):
                    last = report
                assert restarts(report) < limit + 20, "it never stayed up"
        assert incident_state() == "open"  # its restarts stopped a moment ago
        deadline = time.monotonic() + window + 30
        while incident_state() == "open":
            await checker.check("interval")
            assert time.monotonic() < deadline, "it never resolved"

    with Sandbox() as sb:
        apply(sb, "install_unit", {"name": "slow.service", "text": SLOW})
        apply(sb, "start_unit", {"name": "slow.service"})
        asyncio.run(watch(sb))
    (incident,) = [i for i in store.incidents(None) if i.rule == "crash_loop"]
    assert incident.state == "resolved"
