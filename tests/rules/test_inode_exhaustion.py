import pytest

from ai_sysadmin.config import Thresholds
from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules.inode_exhaustion import InodeExhaustion
from ai_sysadmin.monitor.snapshot import Mount

from ._snapshots import context, healthy_snapshot, mount, only, snapshot

RULE = InodeExhaustion()


def test_healthy_mounts_give_no_finding():
    assert RULE.evaluate(context(healthy_snapshot())) == []


def test_inode_exhaustion_with_free_space_is_a_finding():
    maildir = Mount("/dev/sdb1", "ext4", "/var/mail", 10**12, 10**9, 10**11, 6_553_600, 6_553_000)
    snap = snapshot(mounts=[mount("/"), maildir])

    finding = only(RULE.evaluate(context(snap)))

    assert finding.rule == "inode_exhaustion"
    assert finding.subject == "/var/mail"
    assert finding.severity is Severity.CRITICAL
    assert finding.summary == "/var/mail has used 99.9% of its inodes"
    assert finding.evidence == ("/var/mail (ext4): 6553000 of 6553600 inodes used",)


def test_file_systems_without_inode_counts_are_skipped():
    # btrfs and vfat report 0 inodes
    btrfs = Mount("/dev/nvme0n1p2", "btrfs", "/", 10**12, 10**9, 10**11, 0, 0)
    assert RULE.evaluate(context(snapshot(mounts=[btrfs]))) == []


@pytest.mark.parametrize(
    ("percent", "severity"),
    [
        (84.9, None),
        (85.0, Severity.WARNING),
        (94.9, Severity.WARNING),
        (95.0, Severity.CRITICAL),
    ],
)
def test_default_boundaries(percent, severity):
    snap = snapshot(mounts=[mount("/", inodes_percent=percent)])
    findings = RULE.evaluate(context(snap))
    assert [f.severity for f in findings] == ([severity] if severity else [])


def test_custom_thresholds():
    thresholds = Thresholds(inode_warn_percent=20, inode_critical_percent=30)
    snap = snapshot(
        mounts=[
            mount("/a", inodes_percent=19),
            mount("/b", inodes_percent=25),
            mount("/c", inodes_percent=30),
        ]
    )

    findings = RULE.evaluate(context(snap, thresholds=thresholds))

    assert [(f.subject, f.severity) for f in findings] == [
        ("/b", Severity.WARNING),
        ("/c", Severity.CRITICAL),
    ]


def test_disk_space_alone_does_not_trigger_inode_finding():
    snap = snapshot(mounts=[mount("/", used_percent=99, inodes_percent=5)])
    assert RULE.evaluate(context(snap)) == []


def test_a_read_only_file_system_with_every_inode_used_is_no_finding() -> None:
    squashfs = Mount("/dev/loop1", "squashfs", "/snap/core22/1380", 1000, 1000, 0, 29, 29,
                     read_only=True)
    assert RULE.evaluate(context(snapshot(mounts=[squashfs]))) == []


def test_one_file_system_mounted_twice_is_one_finding_naming_the_other_mount():
    """Two subvolumes of one file system (df lists each: its own device number), out of
    inodes: one incident, as for its space (tests/rules/test_disk_space.py)."""
    mail = [mount(target, inodes_percent=97, fstype="bcachefs", source="/dev/sdb")
            for target in ("/var/mail", "/srv/mail")]
    other = mount("/srv/spool", inodes_percent=97, fstype="bcachefs", source="/dev/sdc")
    found = RULE.evaluate(context(snapshot(mounts=[*mail, other])))
    assert [(f.subject, f.evidence[1:]) for f in found] == [
        ("/srv/mail", ("the same file system is also mounted at /var/mail",)),
        ("/srv/spool", ()),
    ]


def test_a_zfs_dataset_whose_inodes_follow_its_pools_free_space_is_not_judged():
    """ZFS makes inodes as it needs them: df's count is what is used plus what the free space
    could hold, so a pool that filled up shows every inode used, which is the disk's finding
    (tests/rules/test_disk_space.py), not one a dataset for inodes."""
    full = [Mount("rpool/root", "zfs", "/", 10**10, 10**10, 0, 123_456, 123_456),
            Mount("rpool/home", "zfs", "/home", 10**9, 10**9, 0, 9_876, 9_876)]
    assert RULE.evaluate(context(snapshot(mounts=full))) == []
