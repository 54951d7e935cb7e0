"""A full file system's disk findings keep one name however its other mounts come and go, and
never name a file a container runtime bound from it: judged on real df tables and mount
tables (tests/fixtures/mounts/), read through the mounts section as a check reads them.

How the fixtures were made, in the fault lab (``Sandbox``), each table with
``df -B1 --output=source,fstype,size,used,avail,itotal,iused,target`` and
``cat /proc/self/mountinfo``:

- ``backups``: ``mount -t tmpfs -o size=1000k backupdisk /srv/backups/data``, filled to
  99.2 % (``dd ... bs=1k count=990``);
- ``backups_bound``: then ``mount --bind /srv/backups/data /bk``: df lists it at /bk alone;
- ``backups_covered``: then ``mount -t tmpfs -o size=2m coverfs /srv``, which hides
  /srv/backups/data;
- ``container``: a 64 MiB tmpfs ``ctrdisk`` at /var/lib/ctr holding an overlay's upper and
  work directories (``lowerdir=/``, mounted at /var/lib/ctr/merged) and the files
  ``c1/hosts``, ``c1/hostname``, ``c1/resolv.conf``, bound onto the overlay's /etc/hosts,
  /etc/hostname and /etc/resolv.conf as a container runtime binds them, proc on its /proc;
  the tables read inside ``chroot /var/lib/ctr/merged``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import CommandResult
from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import RuleContext
from ai_sysadmin.monitor.rules.disk_space import DiskSpace
from ai_sysadmin.monitor.sections import SECTIONS_BY_NAME, JournalQuery, Plan
from ai_sysadmin.monitor.snapshot import Snapshot

TABLES = Path(__file__).resolve().parent.parent / "fixtures" / "mounts"
RULE = DiskSpace()


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    return Plan(Settings(ai_name="hal", state_dir=tmp_path / "state"), JournalQuery(), True)


def collected(name: str, plan: Plan) -> Snapshot:
    """The mounts section of a check that read the fixture ``name``'s tables."""
    section = SECTIONS_BY_NAME["mounts"]
    df, table = (source.argv for source in section.sources(plan))
    snap = Snapshot("lab", 1.0)
    section.take([
        CommandResult(df, 0, (TABLES / f"{name}.df").read_text(encoding="utf-8"), "", 0.0),
        CommandResult(table, 0, (TABLES / f"{name}.mountinfo").read_text(encoding="utf-8"),
                      "", 0.0)], snap, plan)
    assert "mounts" not in snap.errors
    return snap


def disk(snap: Snapshot, *named: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """The disk findings, judged with a live incident about each of ``named``."""
    ctx = RuleContext(snap, found_before={("disk_space", n): Severity.CRITICAL for n in named})
    return [(f.subject, f.summary, f.evidence) for f in RULE.evaluate(ctx)]


def test_a_full_disk_keeps_its_name_while_a_bind_mount_of_it_comes_and_goes(
        plan: Plan) -> None:
    """df lists backupdisk at /bk, nearer the root, once it is bound there: the finding
    stays about /srv/backups/data, and its incident stays one (a new name resolved it, the
    disk 99.2 % full, and opened another)."""
    alone, bound = collected("backups", plan), collected("backups_bound", plan)
    assert "/bk" in {m.target for m in bound.mounts or []}  # df's own choice moved
    figures = "/srv/backups/data (tmpfs on backupdisk): 992.0 KiB of 1000.0 KiB used, 8.0 KiB free"
    assert disk(alone) == [("/srv/backups/data", "/srv/backups/data is 99.2% full",
                            (figures,))]
    assert disk(bound) == [("/srv/backups/data", "/srv/backups/data is 99.2% full",
                            (figures, "the same file system is also mounted at /bk"))]
    # the mount it was known by hidden (a tmpfs mounted on /srv): the one still in view
    assert [subject for subject, _, _ in disk(collected("backups_covered", plan))] == ["/bk"]


def test_a_live_incident_keeps_the_name_it_has(plan: Plan) -> None:
    """Whichever mount df lists: an incident about /srv/backups/data goes on as one, and so
    does one an earlier check named /bk (as checks before this choice named it)."""
    bound = collected("backups_bound", plan)
    assert [s for s, _, _ in disk(bound, "/srv/backups/data")] == ["/srv/backups/data"]
    assert disk(bound, "/bk")[0][:2] == ("/bk", "/bk is 99.2% full")
    assert disk(bound, "/bk")[0][2][1] == \
        "the same file system is also mounted at /srv/backups/data"
    # a name the file system no longer shows holds nothing
    assert [s for s, _, _ in disk(collected("backups", plan), "/bk")] == ["/srv/backups/data"]


def test_in_a_container_the_disk_under_its_root_is_about_its_root_not_etc_hosts(
        plan: Plan) -> None:
    """The container sees the disk its overlay root lies on only as the files its runtime
    bound (/etc/hosts, ...), which df lists it at, the overlay with the same figures left
    out: the finding is about "/", the files named as mounts of the same file system."""
    snap = collected("container", plan)
    assert {m.target for m in snap.mounts or []} == {"/", "/etc/hosts"}
    assert disk(snap) == [("/", "/ is 96.8% full", (
        "/ (tmpfs on ctrdisk): 62.0 MiB of 64.0 MiB used, 2.0 MiB free",
        "the same file system is also mounted at /etc/hostname, /etc/hosts, "
        "/etc/resolv.conf"))]
    # an incident opened as /etc/hosts before goes on as it was, until it resolves
    assert [s for s, _, _ in disk(snap, "/etc/hosts")] == ["/etc/hosts"]
