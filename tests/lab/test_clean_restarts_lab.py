"""A service systemd restarts after clean exits (Restart=always: a getty after each logout, a
service that polls by exiting) is no crash loop; one under the same setting that fails is."""

from __future__ import annotations

import asyncio
import time

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.rules import RuleContext, evaluate
from ai_sysadmin.monitor.snapshot import Snapshot

pytestmark = pytest.mark.lab

UNIT = """\
[Unit]
StartLimitIntervalSec=0

[Service]
ExecStart=/bin/sh -c 'sleep 0.3; exit {code}'
Restart=always
RestartSec=100ms
"""


class Scripted(SandboxTransport):
    """The lab, collected by one remote script (as an SSH host is) or command by command."""

    def __init__(self, sandbox: Sandbox, one_round_trip: bool) -> None:
        super().__init__(sandbox)
        self.one_round_trip = one_round_trip


def restarts(sandbox: Sandbox, unit: str) -> int:
    out = sandbox.exec(["systemctl", "show", "--property=NRestarts", "--value", unit]).stdout
    return int(out.strip() or 0)


def once_both_restarted(sandbox: Sandbox, collector: Collector, more_than: int) -> Snapshot:
    deadline = time.monotonic() + 60
    while min(restarts(sandbox, u) for u in ("poller.service", "crashy.service")) <= more_than:
        assert time.monotonic() < deadline, "the services did not restart"
        time.sleep(0.05)
    return asyncio.run(collector.collect())


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_restarts_after_clean_exits_are_no_crash_loop_failures_are(
    sandbox: Sandbox, lab_settings: Settings, one_round_trip: bool
) -> None:
    sandbox.write_file("/etc/systemd/system/poller.service", UNIT.format(code=0))
    sandbox.write_file("/etc/systemd/system/crashy.service", UNIT.format(code=3))
    sandbox.exec(["systemctl", "daemon-reload"], check=True)
    sandbox.exec(["systemctl", "start", "poller.service", "crashy.service"], check=True)
    seen: list[set[str]] = []
    try:
        collector = Collector(Scripted(sandbox, one_round_trip), lab_settings)
        limit = lab_settings.thresholds.crash_loop_restarts
        first = once_both_restarted(sandbox, collector, limit)
        counted = min((first.restarts or {}).get(u, 0) for u in ("poller.service",
                                                                  "crashy.service"))
        # a failed run is known from what PID 1 wrote to the journal; on a busy machine
        # journald may not have stored it yet when the count rose: the next look has it
        deadline = time.monotonic() + 30
        while not seen or ("crashy.service" not in seen[-1] and time.monotonic() < deadline):
            second = once_both_restarted(sandbox, collector, counted)
            assert {"restarts", "journal"}.isdisjoint(second.errors)
            findings, judged = evaluate(RuleContext(second, lab_settings.thresholds,
                                                    previous=first))
            assert "crash_loop" in judged
            seen.append({f.subject for f in findings if f.rule == "crash_loop"})
            counted = min((second.restarts or {}).get(u, 0) for u in ("poller.service",
                                                                       "crashy.service"))
    finally:
        sandbox.exec(["systemctl", "stop", "poller.service", "crashy.service"])
    assert "crashy.service" in seen[-1]
    assert not any("poller.service" in looping for looping in seen), seen
