"""A flood of errors faster than the checks read the journal, in a real journald: the checks
skip ahead to the newest entries, say what they skipped, and the burst stays open while the
flood lasts, then resolves once it stops."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor import sections
from ai_sysadmin.monitor.findings import Finding
from ai_sysadmin.orchestrator.checker import CheckReport, HostChecker
from ai_sysadmin.store import IncidentStore
from ai_sysadmin.store.db import Database

pytestmark = pytest.mark.lab

FLOOD = "flood.service"
#: about 200 errors a second, far more than 5 a check (the chunk here)
LOOP = ("import sys, time\n"
        "while True:\n"
        "    print('<3>flood: upstream refused', flush=True)\n"
        "    time.sleep(0.005)\n")
WINDOW = 2.0
#: far more than a quiet machine needs to fall a window behind (about a second): only a
#: loop that never skips fails at it
SKIPPED_WITHIN = 60.0


def burst(report: CheckReport) -> Finding | None:
    found = [f for f in report.findings if f.rule == "journal_error_burst" and f.subject == FLOOD]
    return found[0] if found else None


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_a_flood_faster_than_the_checks_keeps_its_burst_open_and_says_what_was_skipped(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    one_round_trip: bool,
) -> None:
    monkeypatch.setattr(sections, "JOURNAL_CHUNK", 5)
    settings = Settings(ai_name="labtest", state_dir=tmp_path,
                        thresholds={"journal_burst_window_seconds": WINDOW,
                                    "journal_error_burst": 5})
    store = IncidentStore(Database(settings.db_path))
    with Sandbox() as sb:
        transport = SandboxTransport(sb)
        transport.one_round_trip = one_round_trip
        checker = HostChecker(transport, settings, store)
        asyncio.run(checker.check("interval"))  # where the journal is now: a cursor
        sb.exec(["systemd-run", f"--unit={FLOOD}", "-p", "LogRateLimitIntervalSec=0",
                 "python3", "-c", LOOP], check=True)
        try:
            first = _until(checker, lambda report: burst(report) is not None, 30,
                           "the flood's burst to open")
            # the flood goes on for three windows' time, and until a check has fallen far
            # enough behind to skip ahead (on a loaded machine journald takes the flood in
            # slower, and the reads fall behind later): every check still sees the burst
            during: list[CheckReport] = [first]
            with caplog.at_level(logging.INFO, logger="ai_sysadmin.orchestrator"):
                start = time.monotonic()
                while time.monotonic() < start + 3 * WINDOW or not any(
                        "journal_gap" in r.notes for r in during):
                    assert time.monotonic() < start + SKIPPED_WITHIN, \
                        f"no check skipped ahead within {SKIPPED_WITHIN:g} s of the flood"
                    during.append(asyncio.run(checker.check("interval")))
        finally:
            sb.exec(["systemctl", "stop", FLOOD])
        assert all(burst(report) is not None for report in during), [
            (sorted(r.errors), len(r.snapshot.journal or [])) for r in during]
        skipped = [r for r in during if "journal_gap" in r.notes]
        assert skipped, "no check skipped ahead"
        for report in skipped:
            said = report.notes["journal_gap"]
            assert "journal_gap" not in report.errors  # read: a note, not a part not collected
            assert "skipped unread" in said and report.snapshot.journal_gap is not None
            assert f"not counted: {said}" in burst(report).evidence  # type: ignore[union-attr]
        assert any(": journal_gap: " in r.getMessage() and "skipped unread" in r.getMessage()
                   for r in caplog.records)
        # stopped: the burst resolves once its window has passed
        _until(checker, lambda report: burst(report) is None, 30, "the burst to resolve")


def _until(checker: HostChecker, done: object, seconds: float, what: str) -> CheckReport:
    """Check until ``done(report)``; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        report = asyncio.run(checker.check("interval"))
        if done(report):  # type: ignore[operator]
            return report
        assert time.monotonic() < deadline, f"waited {seconds:g} s for {what}"


#: a few errors a second, steadily
STEADY = ("import time\n"
          "while True:\n"
          "    print('<3>flood: upstream refused', flush=True)\n"
          "    time.sleep(0.2)\n")


def test_a_check_that_has_seen_part_of_the_window_leaves_the_burst_open(
        tmp_path: object) -> None:
    """Two `check`s one after the other: the second reads the journal from where the first
    left off, none of the burst the daemon opened; too little of the window to say it is over.

    The burst's source is paused (SIGSTOP) before the first look: a steady one logs on while
    the looks run, and on a loaded machine, where a look takes seconds, the second read as
    many entries as the threshold, which no longer shows a partial window left alone. The
    window is long enough to hold the burst until the daemon's next check, however slow."""
    window = 60.0
    settings = Settings(ai_name="labtest", state_dir=tmp_path,
                        thresholds={"journal_burst_window_seconds": window,
                                    "journal_error_burst": 10})
    store = IncidentStore(Database(settings.db_path))
    with Sandbox() as sb:
        transport = SandboxTransport(sb)
        daemon = HostChecker(transport, settings, store)
        asyncio.run(daemon.check("interval"))
        sb.exec(["systemd-run", f"--unit={FLOOD}", "python3", "-c", STEADY], check=True)
        try:
            opened = _until(daemon, lambda report: burst(report) is not None, 30,
                            "the burst to open")
            [incident] = [i for i in store.incidents() if i.rule == "journal_error_burst"]
            assert opened.outcome and incident.id in opened.outcome.opened
            sb.exec(["systemctl", "kill", "--signal=SIGSTOP", FLOOD], check=True)
            looks = [asyncio.run(HostChecker(transport, settings, store, consumer="check")
                                 .check("cli")) for _ in range(2)]
            later = asyncio.run(daemon.check("interval"))
        finally:
            sb.exec(["systemctl", "stop", FLOOD])
    second = looks[1]
    assert not [e for e in second.snapshot.journal or [] if e.source == FLOOD]
    assert "journal_error_burst" not in second.judged_rules
    assert second.outcome and second.outcome.resolved == []
    assert burst(later) is not None and store.get(incident.id).state == "open"
