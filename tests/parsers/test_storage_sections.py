"""The sections storage redundancy is judged from, as a check reads them: each ZFS pool's
state by the section's own sh script over a directory laid out as /proc/spl/kstat/zfs is
(OpenZFS 0.8 and later, and ZFS on Linux before it, which keeps no state there), the
container systemd says the host runs in, whose /proc/mdstat and /proc/spl are its host's, and
the mounts, df's table matched to the mount table's flags."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import TransportError
from ai_sysadmin.hosts.transport import CommandResult
from ai_sysadmin.monitor.parsers import SYSTEMD_CONTAINER, ZFS_KSTAT, mount_types
from ai_sysadmin.monitor.rules import RuleContext
from ai_sysadmin.monitor.rules.disk_space import DiskSpace
from ai_sysadmin.monitor.sections import SECTIONS_BY_NAME, JournalQuery, Plan
from ai_sysadmin.monitor.snapshot import Snapshot


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    return Plan(Settings(ai_name="hal", state_dir=tmp_path / "state"), JournalQuery(), True)


def zfs_section(kstat: Path, plan: Plan) -> Snapshot:
    """The zfs_pools section of a check whose /proc/spl/kstat/zfs is ``kstat``: the
    section's script run by sh here, its paths then written as the host's would be."""
    section = SECTIONS_BY_NAME["zfs_pools"]
    (source,) = section.sources(plan)
    assert source.argv[-1] == ZFS_KSTAT
    done = subprocess.run([*source.argv[:-1], str(kstat)], capture_output=True, text=True,
                          timeout=10, check=False)
    snap = Snapshot("here", 1.0)
    section.take([CommandResult(source.argv, done.returncode,
                                done.stdout.replace(str(kstat), ZFS_KSTAT), done.stderr, 0.0)],
                 snap, plan)
    return snap


def pool(kstat: Path, name: str, state: str | None) -> None:
    """A pool's kstat directory; with a state file unless ``state`` is None (before 0.8)."""
    (kstat / name).mkdir(parents=True)
    (kstat / name / "txgs").write_text("txg birth state ndirty\n")
    if state is not None:
        (kstat / name / "state").write_text(f"{state}\n")


def test_each_pools_state_is_read_and_the_kstat_files_beside_them_are_no_pools(
        tmp_path: Path, plan: Plan) -> None:
    kstat = tmp_path / "zfs"
    pool(kstat, "rpool", "ONLINE")
    pool(kstat, "backup: old disks", "DEGRADED")
    (kstat / "arcstats").write_text("13 1 0x01 123 33456 1 2\n")
    snap = zfs_section(kstat, plan)
    assert snap.zfs_pools == {"rpool": "ONLINE", "backup: old disks": "DEGRADED"}
    assert snap.notes == {}


def test_zfs_loaded_without_pools_is_judged_and_without_zfs_is_not(
        tmp_path: Path, plan: Plan) -> None:
    kstat = tmp_path / "zfs"
    kstat.mkdir()
    (kstat / "arcstats").write_text("13 1 0x01 123 33456 1 2\n")
    assert zfs_section(kstat, plan).zfs_pools == {}
    assert zfs_section(tmp_path / "no-zfs", plan).zfs_pools is None


@pytest.mark.parametrize("rpool", [None, "ONLINE"], ids=["all-unread", "one-unread"])
def test_a_pool_whose_state_cannot_be_read_leaves_every_pool_unjudged_and_says_which(
        tmp_path: Path, plan: Plan, rpool: str | None) -> None:
    """ZFS on Linux 0.7 (Ubuntu 18.04, CentOS 7) has each pool's directory, no state in it:
    judged on the others, a pool never read would pass for healthy."""
    kstat = tmp_path / "zfs"
    pool(kstat, "rpool", rpool)
    pool(kstat, "tank", None)
    snap = zfs_section(kstat, plan)
    assert snap.zfs_pools is None and "zfs_pools" not in snap.errors
    unread = "tank" if rpool else "rpool, tank"
    assert snap.notes == {"zfs_pools": (
        f"the state of ZFS pool(s) {unread} could not be read from "
        "/proc/spl/kstat/zfs/POOL/state (OpenZFS before 0.8 keeps none there): their health "
        "was not checked; `zpool status` tells")}


@pytest.mark.parametrize(("done", "container"), [
    (CommandResult(("cat", "--", SYSTEMD_CONTAINER), 0, "lxc\n", "", 0.0), "lxc"),
    (CommandResult(("cat", "--", SYSTEMD_CONTAINER), 0, "\n", "", 0.0), "unnamed"),
    (CommandResult(("cat", "--", SYSTEMD_CONTAINER), 1, "",
                   f"cat: {SYSTEMD_CONTAINER}: No such file or directory", 0.0), ""),
], ids=["lxc", "unnamed", "no-container"])
def test_the_container_is_what_systemd_wrote_in_its_file_and_none_where_there_is_none(
        plan: Plan, done: CommandResult, container: str) -> None:
    section = SECTIONS_BY_NAME["container"]
    # a file the shell's builtins read: no process, and no guard to test
    assert [(s.argv, s.guard) for s in section.sources(plan)] == [
        (("cat", "--", "/run/systemd/container"), None),
        (("cat", "--", "/proc/self/mountinfo"), None)]  # which /proc files are its own
    snap = Snapshot("here", 1.0)
    section.take([done, TransportError("cat: /proc/self/mountinfo: Permission denied")], snap,
                 plan)
    assert snap.container == container and snap.collected("container")
    assert snap.proc_mounted is None  # not known: whatever it read counts as its own


#: df and /proc/self/mountinfo as a host wrote them (coreutils 9.1, Linux 6.1) for two full
#: 1 MiB tmpfs remounted read-only, at "disc<TAB>one" and "disc_two": df writes the tab as
#: "?", the mount table as \011
DF_TAB = """\
Filesystem              Type        1B-blocks        Used       Avail   Inodes  IUsed Mounted on
img                     tmpfs         1048576     1048576           0  3085471      2 \
/tmp/cap-monitor/m/disc?one
img                     tmpfs         1048576     1048576           0  3085471      2 \
/tmp/cap-monitor/m/disc_two
"""
MOUNTINFO_TAB = """\
87 52 0:56 / /tmp/cap-monitor/m/disc\\011one ro,relatime - tmpfs img ro,size=1024k
88 52 0:57 / /tmp/cap-monitor/m/disc_two ro,relatime - tmpfs img ro,size=1024k
"""


def test_a_read_only_mount_point_named_with_a_tab_is_read_only_and_no_full_disk(
        plan: Plan) -> None:
    """Matched by the name df writes: a full read-only image at such a point was judged a
    writable disk, 100% full, critical."""
    section = SECTIONS_BY_NAME["mounts"]
    df, mountinfo = (source.argv for source in section.sources(plan))
    snap = Snapshot("here", 1.0)
    section.take([CommandResult(df, 0, DF_TAB, "", 0.0),
                  CommandResult(mountinfo, 0, MOUNTINFO_TAB, "", 0.0)], snap, plan)
    assert [(m.target, m.read_only, m.view_read_only) for m in snap.mounts or []] == [
        ("/tmp/cap-monitor/m/disc?one", True, True),
        ("/tmp/cap-monitor/m/disc_two", True, True)]
    assert DiskSpace().evaluate(RuleContext(snap)) == []
    assert mount_types(MOUNTINFO_TAB) == {"/tmp/cap-monitor/m/disc?one": "tmpfs",
                                          "/tmp/cap-monitor/m/disc_two": "tmpfs"}
