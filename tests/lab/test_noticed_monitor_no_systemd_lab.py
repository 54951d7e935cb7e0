"""A host without systemd as PID 1 (a container, a chroot, an old init): the rules of units
and of the journal have nothing to read there, and a check says so once, in its report and in
the daemon's log, so that nobody takes "no findings" for units that were checked."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.orchestrator.checker import HostChecker
from ai_sysadmin.store import Database, IncidentStore
from tests.lab.daemon_runner import QUIET_HOST_WIDE

#: root: the mount namespace of each command
pytestmark = pytest.mark.lab

#: the rules that read units, unit files, restart counts or the journal
UNIT_RULES = {"failed_unit", "crash_loop", "core_dump", "unit_load_error",
              "journal_error_burst"}


class WithoutSystemd(LocalTransport):
    """This machine, each command in a mount namespace of its own whose /run is an empty
    tmpfs: no /run/systemd/system, which is how systemctl, journalctl and the remote script
    tell that systemd is not PID 1 (sd_booted), whatever this machine runs."""

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        return ("unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                'mount -t tmpfs none /run && exec "$@"', "sh", *argv)


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_a_host_without_systemd_says_once_that_its_units_were_not_checked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, one_round_trip: bool,
) -> None:
    settings = Settings(ai_name="labtest", state_dir=tmp_path, thresholds=QUIET_HOST_WIDE)
    transport = WithoutSystemd("nosystemd")
    transport.one_round_trip = one_round_trip
    checker = HostChecker(transport, settings, IncidentStore(Database(settings.db_path)))
    with caplog.at_level(logging.INFO, logger="ai_sysadmin.orchestrator"):
        report = asyncio.run(checker.check("cli"))
    assert report.snapshot.systemd_running is False
    # a fact about the host, not a part that could not be collected
    assert not {"units", "unit_files", "restarts", "journal"} & set(report.errors)
    assert not [f for f in report.findings if f.rule in UNIT_RULES]
    said = [note for note in report.notes.values() if "systemd" in note]
    assert said == ["systemd does not run here: failed units, crash loops, unit files, core "
                    "dumps and the journal were not checked"]
    logged = [r.getMessage() for r in caplog.records if "systemd does not run" in r.getMessage()]
    assert logged == [f"nosystemd: units: {said[0]}"]
