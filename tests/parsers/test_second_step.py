"""The rows read in a check's second step, from what its first found: which bad unit files
lead to no file, and the newest journal entries where the checks fell behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import TransportError
from ai_sysadmin.hosts.transport import CommandResult
from ai_sysadmin.monitor import parsers, sections
from ai_sysadmin.monitor.sections import SECTIONS_BY_NAME, JournalQuery, Plan
from ai_sysadmin.monitor.snapshot import Snapshot

LOADS, GAP = SECTIONS_BY_NAME["unit_file_loads"], SECTIONS_BY_NAME["journal_gap"]
NOW = 1_700_000_000.0
WINDOW = 300.0


def plan(tmp_path: Path, cursor: str | None = None) -> Plan:
    settings = Settings(ai_name="hal", state_dir=tmp_path,
                        thresholds={"journal_burst_window_seconds": WINDOW})
    return Plan(settings, JournalQuery(after_cursor=cursor), runs_as_root=True)


def done(returncode: int, stdout: str = "", stderr: str = "") -> CommandResult:
    return CommandResult(("x",), returncode, stdout, stderr, 0.01)


def test_a_bad_file_systemd_says_nothing_of_stays_bad(tmp_path: Path) -> None:
    snap = Snapshot("h", NOW, systemd_running=True,
                    unit_files={"gone.service": "bad", "gone@.service": "bad",
                                "typo.service": "bad", "sshd.service": "enabled"})
    [source, delta] = LOADS.sources_then(snap, plan(tmp_path))
    # a template is asked about by an instance: systemctl show refuses a template's name
    assert source.argv[-4:] == ("--", "gone.service", "gone@ai-sysadmin-check.service",
                                "typo.service")
    # and which links hide a unit file of their name (none here)
    assert delta.argv == ("systemd-delta", "--no-pager", "--type=redirected", "systemd/system")
    shown = ("Id=gone.service\nLoadState=not-found\n\n"
             "Id=gone@ai-sysadmin-check.service\nLoadState=not-found\n")
    with pytest.raises(TransportError, match="systemctl show: Failed to get properties"):
        LOADS.take([done(1, shown, "Failed to get properties: Access denied\n"), done(0)],
                   snap, plan(tmp_path))
    assert snap.unit_files == {"gone.service": "not-found", "gone@.service": "not-found",
                               "typo.service": "bad", "sshd.service": "enabled"}


def test_nothing_bad_asks_nothing(tmp_path: Path) -> None:
    snap = Snapshot("h", NOW, unit_files={"sshd.service": "enabled"})
    assert LOADS.sources_then(snap, plan(tmp_path)) == ()


def entry(n: int, at: float, journal: str = "abc") -> str:
    return json.dumps({"__CURSOR": f"s={journal};i={n:x};b=b;m=1;t={int(at * 1e6):x};x=1",
                       "__REALTIME_TIMESTAMP": str(int(at * 1e6)), "PRIORITY": "3",
                       "MESSAGE": f"flood {n}", "_SYSTEMD_UNIT": "flood.service"})


def behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Snapshot, Plan]:
    """A check that read a full chunk (5 here) whose last entry is 200 s old."""
    monkeypatch.setattr(sections, "JOURNAL_CHUNK", 5)
    snap = Snapshot("h", NOW, systemd_running=True)
    snap.journal = parsers.parse_journal("\n".join(entry(n, NOW - 205 + n) for n in range(5)))
    snap.journal_cursor = snap.journal[-1].cursor
    return snap, plan(tmp_path, cursor="s=abc;i=0")


def test_a_check_that_fell_behind_reads_the_newest_and_says_what_it_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    snap, where = behind(tmp_path, monkeypatch)
    [source] = GAP.sources_then(snap, where)
    assert source.argv[-2:] == ("--boot", "--lines=5")  # the newest chunk, same filters
    newest = "\n".join(entry(n, NOW - 1009 + n) for n in range(1000, 1005))
    GAP.take([done(0, newest)], snap, where)
    assert [e.message for e in snap.journal or []][4:6] == ["flood 4", "flood 1000"]
    assert snap.journal_cursor == (snap.journal or [])[-1].cursor
    assert snap.journal_gap is not None and snap.journal_gap.entries == 995
    assert "journal_gap" not in snap.errors  # read: a note, not a part not collected
    assert snap.notes["journal_gap"].startswith(
        "995 journal entries (of any priority) logged in the 192 s between 2023-11-14 "
        "22:09:59 UTC and 2023-11-14 22:13:11 UTC were skipped unread")


def test_a_check_that_caught_up_meanwhile_skips_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    snap, where = behind(tmp_path, monkeypatch)
    newest = "\n".join(entry(n, NOW - 205 + n) for n in range(3, 8))
    GAP.take([done(0, newest)], snap, where)
    assert [e.message for e in snap.journal or []] == [f"flood {n}" for n in range(8)]
    assert snap.journal_gap is None and "journal_gap" not in snap.notes


def test_a_chunk_read_within_half_the_window_is_read_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    snap, where = behind(tmp_path, monkeypatch)
    snap.journal = parsers.parse_journal("\n".join(entry(n, NOW - 100 + n) for n in range(5)))
    assert GAP.sources_then(snap, where) == ()
    snap.journal = snap.journal[:4]  # not a full chunk: caught up
    assert GAP.sources_then(snap, plan(tmp_path, cursor="s=abc;i=0")) == ()
