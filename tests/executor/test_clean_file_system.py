"""A clean_directory is judged against the file system its incident is about, as the disk rules
group mounts: a ZFS pool's datasets, a btrfs's subvolumes and a bind mount are the file system
of their pool, device or source, whichever mount point df names for the path."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.parsers import parse_df
from ai_sysadmin.monitor.rules.disk_space import DiskSpace
from ai_sysadmin.store import IncidentStore
from tests.rules._snapshots import HOST, context, snapshot

HEADER = "Filesystem        Type     1B-blocks        Used       Avail  Inodes   IUsed Mounted on\n"

#: a Debian root-on-ZFS host whose pool (rpool) filled up: /var/tmp is a dataset of its own,
#: as the OpenZFS guide makes it; its boot pool (bpool) is full too
ZFS = """\
rpool/ROOT/debian zfs    48318382080 48318382080           0 1843215 1843215 /
rpool/home        zfs    21474836480 21474836480           0  402117  402117 /home
rpool/var/tmp     zfs    32212254720 32212254720           0    8731    8731 /var/tmp
bpool/BOOT/debian zfs     1879048192  1879048192           0     412     412 /boot
tmpfs             tmpfs   3355443200     1572864  3353870336  819200     912 /run
"""
ZFS_MOUNTS = """\
24 1 0:23 / / rw,relatime shared:1 - zfs rpool/ROOT/debian rw,xattr,noacl
51 24 0:46 / /home rw,relatime shared:27 - zfs rpool/home rw,xattr,noacl
53 24 0:48 / /var/tmp rw,relatime shared:29 - zfs rpool/var/tmp rw,xattr,noacl
55 24 0:50 / /boot rw,nodev,relatime shared:31 - zfs bpool/BOOT/debian rw,xattr,noacl
26 24 0:25 / /run rw,nosuid,nodev,noexec,relatime shared:5 - tmpfs tmpfs rw,size=3276800k
"""

#: an openSUSE host: /, /var and /home are subvolumes of one btrfs, 97 % full; its EFI
#: partition is full too
BTRFS = """\
/dev/sda2         btrfs  42949672960 41875931136  1073741824       0       0 /
/dev/sda2         btrfs  42949672960 41875931136  1073741824       0       0 /home
/dev/sda2         btrfs  42949672960 41875931136  1073741824       0       0 /var
/dev/sda1         vfat     535805952   524288000    11517952       0       0 /boot/efi
"""
BTRFS_MOUNTS = """\
59 1 0:29 /@/.snapshots/1/snapshot / rw,relatime shared:1 - btrfs /dev/sda2 rw,subvolid=266
70 59 0:29 /@/home /home rw,relatime shared:33 - btrfs /dev/sda2 rw,subvolid=264
72 59 0:29 /@/var /var rw,relatime shared:35 - btrfs /dev/sda2 rw,subvolid=258
68 59 8:1 / /boot/efi rw,relatime shared:31 - vfat /dev/sda1 rw,fmask=0022
"""

#: /data, a disk 97 % full, holds the cache /var/cache is a bind mount of: df's table leaves
#: the bind out (one device number), df of a path in it names it; the root disk is full too
BIND = """\
/dev/vda1         ext4   21474836480 20803747840   671088640 1310720  181223 /
/dev/vdb          ext4  107374182400 104152956928 3221225472 6553600   12000 /data
"""
BIND_MOUNTS = """\
23 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
40 23 254:16 / /data rw,relatime shared:20 - ext4 /dev/vdb rw
41 23 254:16 /cache /var/cache rw,relatime shared:20 - ext4 /dev/vdb rw
"""

#: a full tmpfs at /srv/cache, bound at /srv/c: df's table lists it there alone (nearer the
#: root), df of a path in it names /srv/cache; the mount table says they are one
TMPFS_BIND = """\
/dev/vda1         ext4   21474836480  2147483648 19327352832 1310720  181223 /
cachefs           tmpfs      1024000     1015808        8192 3085471       2 /srv/c
"""
TMPFS_BIND_MOUNTS = """\
23 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
40 23 0:56 / /srv/cache rw,relatime - tmpfs cachefs rw,size=1000k
41 23 0:56 / /srv/c rw,relatime - tmpfs cachefs rw,size=1000k
"""

#: a pool 97 % full; /srv/cache, a dataset of it, is full by a quota of its own (5 GiB)
QUOTA = """\
tank/root         zfs    13958643712 10737418240  3221225472  981220  120331 /
tank/srv          zfs    78383153152 75161927680  3221225472 6291456 4410012 /srv
tank/srv/cache    zfs     5368709120  5368709120           0  210344  210344 /srv/cache
tank/var/tmp      zfs     4294967296  1073741824  3221225472 6291456     412 /var/tmp
"""
QUOTA_MOUNTS = """\
24 1 0:23 / / rw,relatime shared:1 - zfs tank/root rw,xattr,noacl
51 24 0:46 / /srv rw,relatime shared:27 - zfs tank/srv rw,xattr,noacl
52 51 0:47 / /srv/cache rw,relatime shared:28 - zfs tank/srv/cache rw,xattr,noacl
53 24 0:48 / /var/tmp rw,relatime shared:29 - zfs tank/var/tmp rw,xattr,noacl
"""


def line(table: str, target: str) -> str:
    return next(text for text in table.splitlines(keepends=True) if text.split()[-1] == target)


class FullHost(LocalTransport):
    """A host whose df really runs, here, printing ``table`` (and, for a path, ``mounted``,
    its own line) and whose mount table is ``mountinfo``."""

    def __init__(self, tmp: Path, table: str, mounted: str, mountinfo: str) -> None:
        super().__init__(HOST)
        self.table, self.mounted = tmp / "table", tmp / "mounted"
        self.table.write_text(HEADER + table)
        self.mounted.write_text(HEADER + mounted)
        self.mountinfo = mountinfo

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        if argv[0] == "df":
            return ("cat", str(self.mounted if "--" in argv else self.table))
        return argv

    async def read_file(self, path: str, timeout: float = 20.0) -> str | None:
        if path == "/proc/self/mountinfo":
            return self.mountinfo
        return await super().read_file(path, timeout)


@pytest.mark.parametrize(("table", "mountinfo", "mounted", "path", "subject", "risk", "why"), [
    # /var/tmp is a dataset of the full pool the incident is about: cleaning it frees the pool
    (ZFS, ZFS_MOUNTS, line(ZFS, "/var/tmp"), "/var/tmp", "/", "medium", ""),
    # the boot pool is another pool
    (ZFS, ZFS_MOUNTS, line(ZFS, "/var/tmp"), "/var/tmp", "/boot", "high",
     "the incident is about disk_space of /boot, not the space on / (/var/tmp is there)"),
    # /var is a subvolume of the btrfs the incident about / is
    (BTRFS, BTRFS_MOUNTS, line(BTRFS, "/var"), "/var/cache", "/", "medium", ""),
    (BTRFS, BTRFS_MOUNTS, line(BTRFS, "/var"), "/var/cache", "/boot/efi", "high",
     "disk_space of /boot/efi, not the space on /"),
    # /var/cache is a bind mount of /data's disk
    (BIND, BIND_MOUNTS, line(BIND, "/data").replace("/data", "/var/cache"), "/var/cache",
     "/data", "medium", ""),
    (BIND, BIND_MOUNTS, line(BIND, "/data").replace("/data", "/var/cache"), "/var/cache",
     "/", "high", "disk_space of /, not the space on /data"),
    # the incident names the mount df's table lists; the path is in the other one of it
    (TMPFS_BIND, TMPFS_BIND_MOUNTS, line(TMPFS_BIND, "/srv/c").replace("/srv/c", "/srv/cache"),
     "/srv/cache/x", "/srv/c", "medium", ""),
    # what is deleted in a dataset its quota holds is its pool's free space too
    (QUOTA, QUOTA_MOUNTS, line(QUOTA, "/srv/cache"), "/srv/cache", "/", "medium", ""),
    (QUOTA, QUOTA_MOUNTS, line(QUOTA, "/srv/cache"), "/srv/cache", "/srv/cache", "medium", ""),
    # but not the other way round: the quota stays as full
    (QUOTA, QUOTA_MOUNTS, line(QUOTA, "/var/tmp"), "/var/tmp", "/srv/cache", "high",
     "disk_space of /srv/cache, not the space on /"),
], ids=["zfs-pool", "zfs-other-pool", "btrfs-subvolume", "btrfs-other-disk", "bind-mount",
        "bind-other-disk", "tmpfs-bind", "zfs-quota-for-pool", "zfs-quota-own",
        "zfs-pool-for-quota"])
def test_a_clean_on_the_file_system_of_the_incident_is_its_fix_whichever_mount_holds_it(
        tmp_path: Path, settings: Settings, store: IncidentStore, table: str, mountinfo: str,
        mounted: str, path: str, subject: str, risk: str, why: str) -> None:
    """The incident is one the disk_space rule opens on the host's df table; the clean of a
    path on the same file system runs unasked at auto-full (medium), one elsewhere is a
    person's (high), whatever mount point df names for the path."""
    found = DiskSpace().evaluate(context(snapshot(mounts=parse_df(HEADER + table))))
    incident_id = store.record_check(HOST, [f for f in found if f.subject == subject],
                                     {"disk_space"}).opened[0]
    settings = settings.model_copy(update={"safety": settings.safety.model_copy(
        update={"clean_paths": ["/var/tmp", "/var/cache", "/srv/cache"]})})
    host = FullHost(tmp_path, table, mounted, mountinfo)
    action = asyncio.run(Executor(settings, store, {HOST: host}).propose(
        HOST, "clean_directory", {"path": path, "older_than_days": 7},
        incident_id=incident_id))
    assert action.risk == risk, action.reason
    assert why in action.reason
    assert ("needs a person" in action.reason) == (risk == "high")

