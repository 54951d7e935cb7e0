"""A clock systemd-timesyncd does not keep synchronised, as it records it in /run, read by a
real check of the fault lab (one remote script, as an SSH host is checked, or command by
command). timesyncd does not run in the lab (its unit's ConditionVirtualization=!container),
so the test makes what it makes: its runtime directory as it starts, and the stamp it
touches at each synchronisation, each with the time timesyncd would give it."""

from __future__ import annotations

import asyncio
import time

import pytest

from ai_sysadmin.config import Settings, Thresholds
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.monitor.parsers import TIMESYNC_DIR, TIMESYNC_STAMP
from ai_sysadmin.monitor.rules import RuleContext, evaluate

pytestmark = pytest.mark.lab

#: shorter than any uptime of a machine that runs tests, so a service "started" an hour ago
#: has waited past it whenever the machine booted
GRACE = 60.0


class Scripted(SandboxTransport):
    def __init__(self, sandbox: Sandbox, one_round_trip: bool) -> None:
        super().__init__(sandbox)
        self.one_round_trip = one_round_trip


def _clock(collector: Collector, settings: Settings) -> list[Finding]:
    snapshot = asyncio.run(collector.collect())
    assert "clock_sync" not in snapshot.errors, snapshot.errors
    findings, judged = evaluate(RuleContext(snapshot, settings.thresholds))
    assert "clock_unsynchronised" in judged  # nothing found is a verdict: an incident resolves
    return [f for f in findings if f.rule == "clock_unsynchronised"]


def _made(sandbox: Sandbox, path: str, seconds_ago: float) -> None:
    """``path`` last changed ``seconds_ago`` (the lab's clock is this machine's)."""
    sandbox.exec(["touch", "-c", "-d", f"@{time.time() - seconds_ago:.0f}", "--", path],
                 check=True)


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_a_clock_timesyncd_has_not_synchronised_is_a_warning_until_it_does(
        sandbox: Sandbox, lab_settings: Settings, one_round_trip: bool) -> None:
    settings = lab_settings.model_copy(
        update={"thresholds": Thresholds(clock_sync_grace_seconds=GRACE)})
    collector = Collector(Scripted(sandbox, one_round_trip), settings)
    assert _clock(collector, settings) == []  # the lab as it boots: no timesyncd to ask
    try:
        sandbox.exec(["mkdir", "-p", TIMESYNC_DIR], check=True)  # timesyncd just started
        assert _clock(collector, settings) == []  # within its grace
        _made(sandbox, TIMESYNC_DIR, 3600)  # started an hour ago, never synchronised since
        [found] = _clock(collector, settings)
        assert (found.subject, found.severity) == ("clock", Severity.WARNING)
        assert found.summary.startswith("the clock is not synchronised: systemd-timesyncd "
                                        "has not synchronised it since ")
        sandbox.write_file(TIMESYNC_STAMP, "")  # a synchronisation
        assert _clock(collector, settings) == []
        _made(sandbox, TIMESYNC_STAMP, 12 * 3600)  # and none for 12 hours
        [found] = _clock(collector, settings)
        assert found.summary == ("the clock is not synchronised: systemd-timesyncd last "
                                 "synchronised it 12 h ago")
    finally:
        sandbox.exec(["rm", "-rf", TIMESYNC_DIR])
    assert _clock(collector, settings) == []  # timesyncd stopped: nothing says either way
