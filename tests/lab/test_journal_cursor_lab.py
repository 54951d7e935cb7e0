"""Where a check reads the journal from, when the stored position is gone: journald vacuumed
the file holding it, or it comes from another journal (a volatile journal after a reboot, a
cloned machine) stamped ahead of the host's clock. No entry after it is skipped, and a check
never stays blind."""

from __future__ import annotations

import asyncio
import time

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.collector import SINCE_PREFIX, Collector
from ai_sysadmin.monitor.sections import JournalQuery
from ai_sysadmin.monitor.snapshot import Snapshot

pytestmark = pytest.mark.lab


def log(sandbox: Sandbox, *messages: str) -> None:
    for message in messages:
        sandbox.exec(["logger", "-t", "cursortest", "-p", "user.err", message], check=True)


def read(sandbox: Sandbox, settings: Settings, cursor: str | None) -> Snapshot:
    return asyncio.run(Collector(SandboxTransport(sandbox), settings).collect(
        JournalQuery(after_cursor=cursor)))


def mine(snapshot: Snapshot) -> list[str]:
    return [e.message for e in snapshot.journal or [] if e.identifier == "cursortest"]


def read_until(sandbox: Sandbox, settings: Settings, cursor: str | None,
               last: str) -> Snapshot:
    """Read from ``cursor`` until the entry ``last`` is there (journald writes a moment
    after logger returns)."""
    deadline = time.monotonic() + 30
    while True:
        snapshot = read(sandbox, settings, cursor)
        if last in mine(snapshot) or time.monotonic() > deadline:
            return snapshot
        time.sleep(0.05)


def test_entries_after_a_vacuumed_position_are_all_read(lab_settings: Settings) -> None:
    with Sandbox() as sandbox:
        log(sandbox, "E1", "E2", "E3")
        position = read_until(sandbox, lab_settings, None, "E3").journal_cursor
        sandbox.exec(["journalctl", "--rotate"], check=True)
        log(sandbox, "E4", "E5", "E6")
        read_until(sandbox, lab_settings, position, "E6")
        sandbox.exec(["journalctl", "--rotate"], check=True)
        sandbox.exec(["journalctl", "--vacuum-files=2"], check=True)
        after = read(sandbox, lab_settings, position)
    assert mine(after) == ["E4", "E5", "E6"]


def test_a_position_still_there_is_not_read_twice(
    sandbox: Sandbox, lab_settings: Settings
) -> None:
    log(sandbox, "F1")
    position = read_until(sandbox, lab_settings, None, "F1").journal_cursor
    log(sandbox, "F2")
    after = read_until(sandbox, lab_settings, position, "F2")
    assert mine(after) == ["F2"]
    assert "journal" not in after.errors


def test_a_position_ahead_of_the_hosts_clock_is_left_for_now_not_kept(
    sandbox: Sandbox, lab_settings: Settings
) -> None:
    log(sandbox, "G1")
    real = read_until(sandbox, lab_settings, None, "G1").journal_cursor
    assert real is not None
    # another journal's position (its own ids), an hour ahead of this host's clock
    fields = dict(part.split("=", 1) for part in real.split(";"))
    fields.update(s="0123456789abcdef0123456789abcdef", b="fedcba9876543210fedcba9876543210",
                  t=format(int(fields["t"], 16) + 3600 * 10**6, "x"))
    foreign = ";".join(f"{key}={value}" for key, value in fields.items())
    stuck = read(sandbox, lab_settings, foreign)
    assert "ahead of the host's clock" in stuck.errors["journal"]
    assert stuck.journal_cursor != foreign
    log(sandbox, "G2")
    after = read_until(sandbox, lab_settings, stuck.journal_cursor, "G2")
    assert "G2" in mine(after)


def test_a_time_position_ahead_of_the_hosts_clock_is_left_for_now_not_kept(
    sandbox: Sandbox, lab_settings: Settings
) -> None:
    """A since: position (a first check on a host with no warning entry yet, a rejected
    cursor) stored before the host's clock was set back an hour: every error logged until the
    clock passed it again was stamped before it, and never read."""
    ahead = f"{SINCE_PREFIX}{time.time() + 3600:.6f}"
    stuck = read(sandbox, lab_settings, ahead)
    assert "ahead of the host's clock" in stuck.errors["journal"]
    assert stuck.journal_cursor is not None and stuck.journal_cursor != ahead
    log(sandbox, "H1")
    after = read_until(sandbox, lab_settings, stuck.journal_cursor, "H1")
    assert "H1" in mine(after)
    assert "journal" not in after.errors
