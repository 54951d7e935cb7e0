"""Journal entries a check skipped to catch up with a flood, in a real journald: the journal
was read (its newest entries), so the check says what it skipped as a note with the count and
the span, and is not a check with a part not collected (``check`` exits 0, not 2)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_sysadmin.cli.check import exit_code
from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor import sections
from ai_sysadmin.orchestrator.checker import CheckReport, HostChecker
from ai_sysadmin.store import Database, IncidentStore
from tests.lab.daemon_runner import QUIET_HOST_WIDE

pytestmark = pytest.mark.lab

#: warnings, not errors: no burst, so a check that read them is healthy
LOG = ("import sys, syslog\n"
       "for n in range(int(sys.argv[1])):\n"
       "    syslog.syslog(syslog.LOG_WARNING, f'noticed: slow upstream {n}')\n")
WINDOW = 0.5


def test_entries_skipped_to_catch_up_are_a_note_and_the_check_stays_healthy(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(sections, "JOURNAL_CHUNK", 5)
    settings = Settings(ai_name="labtest", state_dir=tmp_path,
                        thresholds={**QUIET_HOST_WIDE, "journal_burst_window_seconds": WINDOW})
    checker = HostChecker(SandboxTransport(sandbox), settings,
                          IncidentStore(Database(settings.db_path)))
    # where the journal is now: a warning's cursor (read after in chunks; a time is not)
    sandbox.exec(["python3", "-c", LOG, "1"], check=True)
    _until(checker, lambda r: (r.snapshot.journal_cursor or "").startswith("s="), 10)
    sandbox.exec(["python3", "-c", LOG, "200"], check=True)
    with caplog.at_level(logging.INFO, logger="ai_sysadmin.orchestrator"):
        # 5 entries a check: once those read are older than half the window, it skips ahead
        report = _until(checker, lambda r: r.snapshot.journal_gap is not None, 30)
    gap = report.snapshot.journal_gap
    assert gap is not None and gap.entries is not None and gap.entries > 0
    assert report.errors == {}
    said = report.notes["journal_gap"]
    assert said.startswith(f"{gap.entries} journal entries (of any priority) logged in the ")
    assert "were skipped unread" in said
    assert report.findings == [] and report.healthy and exit_code(report) == 0
    logged = [r.getMessage() for r in caplog.records]
    assert f"{checker.host}: journal_gap: {said}" in logged
    assert not [m for m in logged if "not collected" in m]


def _until(checker: HostChecker, done: Callable[[CheckReport], bool],
           seconds: float) -> CheckReport:
    deadline = time.monotonic() + seconds
    while True:
        report = asyncio.run(checker.check("cli"))
        if done(report):
            return report
        assert time.monotonic() < deadline, f"no check skipped ahead within {seconds:g} s"
