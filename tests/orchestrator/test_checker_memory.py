"""What a checker that starts (a restarted daemon, a fresh `check`) takes up from the store:
what the checks before it found, so that it judges as they would have."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.orchestrator.checker import HostChecker
from ai_sysadmin.store import Database, IncidentStore

#: df of one 1 GB file system at /srv, as full as the file ``used`` says (in percent)
DF = """#!/bin/sh
echo "Filesystem Type 1B-blocks Used Avail Inodes IUsed Mounted on"
used=$(cat {used})
echo "/dev/vdb ext4 1000000000 $((used * 10000000)) $(((100 - used) * 10000000)) 1000 10 /srv"
"""


def test_a_disk_that_warned_keeps_its_margin_across_a_restart_of_the_daemon(
        tmp_path: Path) -> None:
    """/srv warned at 86 % (the level is 85, the margin 2): at 84 % the daemon keeps the
    incident, and so does a daemon started again, instead of resolving it, to reopen it at
    the next 85 %."""
    used, df = tmp_path / "used", tmp_path / "df"
    df.write_text(DF.format(used=used))
    df.chmod(0o755)
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", programs={"df": str(df)})
    assert (settings.thresholds.disk_warn_percent,
            settings.thresholds.clear_margin_percent) == (85, 2)
    store = IncidentStore(Database(settings.db_path))

    def state() -> str:
        (incident,) = [i for i in store.incidents(None) if i.rule == "disk_space"]
        return incident.state

    def check(checker: HostChecker, percent: int) -> None:
        used.write_text(f"{percent}\n")
        report = asyncio.run(checker.check("interval"))
        assert "mounts" not in report.errors and "disk_space" in report.judged_rules

    before = HostChecker(LocalTransport("web1"), settings, store)
    check(before, 86)
    assert state() == "open"
    check(before, 84)
    assert state() == "open"
    restarted = HostChecker(LocalTransport("web1"), settings, store)
    check(restarted, 84)
    assert state() == "open"
    check(restarted, 82)
    assert state() == "resolved"
