"""A mount df could not read (a stale NFS handle, a FUSE mount the checking user may not
stat) is not a mount that is well: df exits 1, names it on stderr and prints the others. Its
incident stays open and the check says why, while the other mounts are judged as usual; one
never found before (gvfs, which refuses root) is said and blocks nothing."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from ai_sysadmin.cli.check import exit_code
from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.orchestrator.checker import CheckReport, HostChecker
from ai_sysadmin.store import Database, IncidentStore
from tests.support.machine import MACHINE_WIDE

GIB = 1024**3

#: a df whose answer the test sets: its table's lines in ``table``, what it says on stderr
#: (and then its exit 1) in ``stderr``
DF = """#!/bin/sh
echo "Filesystem Type 1B-blocks Used Avail Inodes IUsed Mounted on"
cat {dir}/table
if [ -s {dir}/stderr ]; then cat {dir}/stderr >&2; exit 1; fi
"""


def line(source: str, fstype: str, target: str, used_percent: int) -> str:
    size = 100 * GIB
    used = size * used_percent // 100
    return f"{source} {fstype} {size} {used} {size - used} 1000000 1000 {target}\n"


class Host:
    """This machine, checked with a df whose answer the test sets, and a store."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        df = tmp_path / "df"
        df.write_text(DF.format(dir=tmp_path))
        df.chmod(0o755)
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                            programs={"df": str(df)})
        self.store = IncidentStore(Database(settings.db_path))
        self.checker = HostChecker(LocalTransport("web1"), settings, self.store)

    def check(self, table: str, stderr: str = "") -> CheckReport:
        (self.dir / "table").write_text(table)
        (self.dir / "stderr").write_text(stderr)
        return asyncio.run(self.checker.check("interval"))

    def disk_incidents(self) -> dict[str, str]:
        return {i.subject: i.state for i in self.store.incidents(None) if i.rule == "disk_space"}


def disk_findings(report: CheckReport) -> list[str]:
    return [f.subject for f in report.findings if f.rule == "disk_space"]


def test_an_unread_mount_keeps_its_incident_and_the_other_mounts_are_judged(
        tmp_path: Path) -> None:
    host = Host(tmp_path)
    both_full = line("/dev/vda1", "ext4", "/", 96) + line("nas:/export", "nfs4", "/srv/nfs", 96)
    assert sorted(disk_findings(host.check(both_full))) == ["/", "/srv/nfs"]

    # / freed; the NFS server gone: df cannot stat /srv/nfs, and prints the rest
    second = host.check(line("/dev/vda1", "ext4", "/", 40), "df: /srv/nfs: Stale file handle\n")

    assert host.disk_incidents() == {"/": "resolved", "/srv/nfs": "open"}
    assert "mounts" not in second.errors
    assert second.notes["mounts"].startswith("df could not read /srv/nfs (Stale file handle)")
    # not called well: what was found there is not judged, and the check says so
    assert second.kept == [("disk_space", "/srv/nfs")]
    assert not second.healthy
    # what this busy machine itself shows (its load: a suite on two cores) is no matter here
    mine = [f for f in second.findings if f.rule in MACHINE_WIDE]
    assert exit_code(replace(second, findings=[f for f in second.findings if f not in mine])) == 2
    assert not second.judged("disk_space", "/srv/nfs")  # a fix's verification waits
    assert second.judged("disk_space", "/")

    # still unread: still open, its margin remembered
    host.check(line("/dev/vda1", "ext4", "/", 40), "df: /srv/nfs: Stale file handle\n")
    assert host.disk_incidents()["/srv/nfs"] == "open"

    # read again, and no longer full: resolved
    back = host.check(line("/dev/vda1", "ext4", "/", 40)
                      + line("nas:/export", "nfs4", "/srv/nfs", 40))
    assert host.disk_incidents() == {"/": "resolved", "/srv/nfs": "resolved"}
    assert "mounts" not in back.notes


def test_an_unread_mount_with_no_incident_is_said_and_blocks_nothing(
        tmp_path: Path) -> None:
    host = Host(tmp_path)
    report = host.check(line("/dev/vda1", "ext4", "/", 40),
                        "df: '/media/usb stick': Permission denied\n")
    assert report.notes["mounts"].startswith(
        "df could not read /media/usb stick (Permission denied)")
    assert report.kept == []
    assert disk_findings(report) == []
    assert "mounts" not in report.errors
    assert report.judged("disk_space", "/")
