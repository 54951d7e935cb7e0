"""Which mount points hold a read-only file system (and whether the kernel stopped its writes),
and whether /proc hides processes, from /proc/self/mountinfo as the kernel writes it."""

from __future__ import annotations

from pathlib import Path

from ai_sysadmin.monitor.parsers import (
    MountFlags,
    mount_flags,
    mount_places,
    proc_files_mounted,
    proc_hidepid,
)
from ai_sysadmin.monitor.snapshot import MountPoint

#: the mount tables tests/rules/test_disk_mounts.py judges (how they were made: there)
TABLES = Path(__file__).resolve().parent.parent / "fixtures" / "mounts"


def read_only_mount_points(mountinfo: str) -> set[str]:
    return {point for point, flags in mount_flags(mountinfo).items() if flags.read_only}

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 259:2 / / rw,relatime - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
31 27 7:0 / /snap/core22/1380 ro,nodev,relatime shared:12 - squashfs /dev/loop0 ro
40 27 0:48 / /tmp/.mount_Obsidi\\040K3f9Qx ro,nosuid,nodev,relatime shared:20 - fuse.Obsidian \
Obsidian.AppImage ro,user_id=1000,group_id=1000
41 27 259:2 /nix/store /nix/store ro,relatime - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
42 27 11:0 / /media/dvd ro,relatime - udf /dev/sr0 ro,iocharset=utf8
43 27 8:17 / /mnt/backup ro,relatime - ext4 /dev/sdb1 ro
44 27 8:33 / /mnt/backup rw,relatime - ext4 /dev/sdc1 rw
45 27 7:1 / /srv/data rw,relatime - ext4 /dev/loop1 rw,errors=remount-ro,emergency_ro
46 27 7:2 / /srv/scratch rw,relatime - ext4 /dev/loop2 rw,shutdown
47 27 8:49 / /var/lib/db rw,relatime - btrfs /dev/sdd1 ro,space_cache=v2
a line that is not one
"""


def test_read_only_file_systems_by_their_own_flag() -> None:
    assert read_only_mount_points(MOUNTINFO) == {
        "/snap/core22/1380",
        "/tmp/.mount_Obsidi K3f9Qx",  # \040 is a space, as df prints it
        "/media/dvd",
        "/srv/data",  # the kernel stopped its writes: nothing can fill it
        "/srv/scratch",
        "/var/lib/db",
    }


def test_the_kernels_word_for_writes_it_stopped_and_the_mounts_own_flag() -> None:
    flags = mount_flags(MOUNTINFO)
    # ext4 on recent kernels: a word of its own, the file system's rw flag left as it was
    assert flags["/srv/data"] == MountFlags(True, False, "emergency_ro")
    assert flags["/srv/scratch"] == MountFlags(True, False, "shutdown")
    # btrfs (and ext4 on older kernels): the file system read-only under a read-write mount
    assert flags["/var/lib/db"] == MountFlags(True, False)
    assert flags["/snap/core22/1380"] == MountFlags(True, True)
    assert flags["/nix/store"] == MountFlags(False, True)
    assert flags["/"] == MountFlags(False, False)


def test_a_read_only_view_of_a_writable_file_system_is_still_watched() -> None:
    # NixOS's /nix/store, a service's ProtectSystem=: the file system fills up elsewhere
    assert "/nix/store" not in read_only_mount_points(MOUNTINFO)


def test_a_point_mounted_over_is_judged_by_the_mount_in_use() -> None:
    assert "/mnt/backup" not in read_only_mount_points(MOUNTINFO)


def test_a_proc_that_hides_processes_says_how_and_from_whom() -> None:
    # what the kernel writes since 5.8, and before it (a number)
    hidden = MOUNTINFO + "89 22 0:56 / /proc rw,relatime - proc proc rw,gid=27,hidepid=invisible\n"
    assert proc_hidepid(hidden) == ("invisible", "27")
    older = MOUNTINFO + "89 22 0:56 / /proc rw,nosuid - proc proc rw,hidepid=2\n"
    assert proc_hidepid(older) == ("2", None)
    # the mount in use is the last one on /proc; one elsewhere (a container's) is not it
    shown = older + "90 22 0:57 / /proc rw - proc proc rw,hidepid=off\n" \
        + "91 27 0:58 / /srv/ct/proc rw - proc proc rw,hidepid=2\n"
    assert proc_hidepid(shown) is None
    assert proc_hidepid(MOUNTINFO) is None


#: an LXC container's table: lxcfs's files on its /proc, a read-only /proc/sys
LXCFS = """\
70 69 0:60 / / rw,relatime - overlay overlay rw
73 70 0:62 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
74 73 0:62 /sys /proc/sys ro,relatime - proc proc rw
80 73 0:55 /proc/loadavg /proc/loadavg rw,nosuid,nodev,relatime - fuse.lxcfs lxcfs rw
81 73 0:55 /proc/meminfo /proc/meminfo rw,nosuid,nodev,relatime - fuse.lxcfs lxcfs rw
"""


def test_the_proc_files_a_container_has_its_own_are_those_something_is_mounted_on() -> None:
    assert proc_files_mounted(LXCFS) == {"/proc/sys", "/proc/loadavg", "/proc/meminfo"}
    assert proc_files_mounted(MOUNTINFO) == set()  # a host: nothing on its /proc
    assert proc_files_mounted("") == set()


def test_files_under_a_proc_mounted_over_since_are_hidden() -> None:
    """A procfs mounted on /proc after lxcfs's files hides them: /proc/loadavg reads the
    machine's again, though the table still lists lxcfs's mount there."""
    remounted = LXCFS + "174 70 0:70 / /proc rw,relatime - proc proc rw\n"
    assert proc_files_mounted(remounted) == set()
    # and a file bound on the new one is shown through it
    bound = remounted + "175 174 0:55 /proc/loadavg /proc/loadavg rw - fuse.lxcfs lxcfs rw\n"
    assert proc_files_mounted(bound) == {"/proc/loadavg"}


def table(name: str) -> str:
    return (TABLES / f"{name}.mountinfo").read_text(encoding="utf-8")


def test_a_bind_mount_is_of_the_file_system_it_binds_wherever_df_lists_it() -> None:
    """df lists backupdisk once, at /bk (nearer the root) once it is bound there: the table
    says /bk and /srv/backups/data are one file system, the whole of it at each, and which
    was mounted first."""
    places = mount_places(table("backups_bound"))
    both = (MountPoint("/srv/backups/data", 51, True), MountPoint("/bk", 52, True))
    assert places["/bk"].mounted_at == places["/srv/backups/data"].mounted_at == both
    assert places["/bk"].file_system == places["/srv/backups/data"].file_system \
        == "0:56 backupdisk"
    assert places["/"].mounted_at == (MountPoint("/", 72, True),)
    # the lab's /dev/console is one file of the machine's devtmpfs, /proc/sys a part of proc
    assert places["/dev/console"].mounted_at == (MountPoint("/dev/console", 78, False),)
    assert MountPoint("/proc/sys", 74, False) in places["/proc"].mounted_at


def test_a_mount_under_a_directory_mounted_over_since_is_out_of_view() -> None:
    """A tmpfs mounted on /srv hides /srv/backups/data, still in the table: the file system
    is in view at /bk alone, which df lists."""
    places = mount_places(table("backups_covered"))
    assert places["/bk"].mounted_at == (MountPoint("/bk", 52, True),)
    assert places["/srv"].mounted_at == (MountPoint("/srv", 53, True),)
    # df reads the hidden one's point through what covers it; its own mount is kept for it
    assert MountPoint("/srv/backups/data", 51, True) in places["/srv/backups/data"].mounted_at


def test_a_container_sees_its_disk_only_as_the_files_its_runtime_binds() -> None:
    places = mount_places(table("container"))
    assert places["/etc/hosts"].mounted_at == (MountPoint("/etc/hosts", 56, False),
                                               MountPoint("/etc/hostname", 57, False),
                                               MountPoint("/etc/resolv.conf", 58, False))
    assert places["/"].mounted_at == (MountPoint("/", 54, True),)


def test_what_is_in_view_is_the_tree_not_the_order_of_the_table() -> None:
    """The kernel lists the /proc an initramfs made before the root it was moved onto (22
    before 27): it is in view all the same. Of two mounts at one point on one mount (a
    procfs mounted on lxcfs's /proc), the later is in use, and what was on the earlier is
    hidden with it."""
    assert mount_places(MOUNTINFO)["/proc"].mounted_at == (MountPoint("/proc", 22, True),)
    assert mount_places(MOUNTINFO)["/mnt/backup"].file_system == "8:33 /dev/sdc1"
    remounted = mount_places(LXCFS + "174 70 0:70 / /proc rw,relatime - proc proc rw\n")
    assert remounted["/proc"].mounted_at == (MountPoint("/proc", 174, True),)
    assert [at.point for at in remounted["/proc/loadavg"].mounted_at] == ["/proc/loadavg"]
    assert [at.point for at in remounted["/proc/meminfo"].mounted_at] == ["/proc/meminfo"]
