"""The journal burst window of a host's checker: what stays in it across checks."""

from __future__ import annotations

from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.snapshot import CpuTimes, JournalEntry, Snapshot
from ai_sysadmin.orchestrator.checker import HostChecker

BOOT = 1_700_000_000


def snapshot(uptime: float, *stamps: float) -> Snapshot:
    """A check's snapshot at ``BOOT + uptime`` on the host's clock, with entries so stamped."""
    entries = [JournalEntry(f"c{uptime}-{n}", stamp, 3, "error", unit="app.service")
               for n, stamp in enumerate(stamps)]
    return Snapshot(host="web1", taken_at=0.0, cpu=CpuTimes(1, 2, 1, boot_time=BOOT),
                    uptime_seconds=uptime, journal=entries)


def test_an_entry_stamped_ahead_of_the_host_clock_neither_counts_nor_holds_the_window(
        tmp_path: Path) -> None:
    settings = Settings(ai_name="hal", state_dir=tmp_path)
    window_s = settings.thresholds.journal_burst_window_seconds
    checker = HostChecker(LocalTransport("web1"), settings, None)
    # a journal-remote sender whose clock runs a day ahead, then a day of checks
    ahead = BOOT + 1000 + 86_400
    first = checker._slide_window(snapshot(1000, ahead, BOOT + 999))
    assert [e.timestamp for e in first] == [BOOT + 999]
    now = 1000.0
    for _ in range(288):
        now += 300
        window = checker._slide_window(snapshot(now, *(BOOT + now - 1 - k for k in range(10))))
    assert len(window) == 10 and all(BOOT + now - window_s <= e.timestamp <= BOOT + now
                                     for e in window)
    assert len(checker.window) == 10


def test_entries_of_the_window_survive_until_they_are_older_than_it(tmp_path: Path) -> None:
    settings = Settings(ai_name="hal", state_dir=tmp_path)
    window_s = settings.thresholds.journal_burst_window_seconds
    checker = HostChecker(LocalTransport("web1"), settings, None)
    first = checker._slide_window(snapshot(1000, BOOT + 990, BOOT + 995))
    assert [e.timestamp for e in first] == [BOOT + 990, BOOT + 995]
    # a moment later the two still count, with the new one
    later = checker._slide_window(snapshot(1000 + window_s - 8, BOOT + 1000 + window_s - 9))
    assert [e.timestamp - BOOT for e in later] == [995, 1000 + window_s - 9]


def test_entries_read_again_count_once(tmp_path: Path) -> None:
    """A check whose store write failed (a full disk) left its entries in the window and the
    stored cursor where it was: the next check reads the same entries again. 12 errors are
    12, not a burst of 24."""
    settings = Settings(ai_name="hal", state_dir=tmp_path)
    checker = HostChecker(LocalTransport("web1"), settings, None)
    twelve = snapshot(1000, *(BOOT + 940 + n for n in range(12)))
    assert len(checker._slide_window(twelve)) == 12
    again = snapshot(1060, BOOT + 1050)
    again.journal = [*(twelve.journal or []), *(again.journal or [])]
    assert len(checker._slide_window(again)) == 13
