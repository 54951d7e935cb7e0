import pytest

from ai_sysadmin.config import Thresholds
from ai_sysadmin.monitor import parsers
from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import RuleContext, evaluate
from ai_sysadmin.monitor.rules.disk_space import DiskSpace
from ai_sysadmin.monitor.rules.inode_exhaustion import InodeExhaustion
from ai_sysadmin.monitor.snapshot import Mount

from ._snapshots import GIB, context, healthy_snapshot, mount, only, snapshot

RULE = DiskSpace()


def test_healthy_mounts_give_no_finding():
    assert RULE.evaluate(context(healthy_snapshot())) == []


def test_full_file_system_is_one_finding_about_its_mount_point():
    full = Mount("/dev/vda", "ext4", "/var", 1000, 970, 30, 100, 10)
    snap = snapshot(mounts=[mount("/"), full, mount("/home", used_percent=60)])

    finding = only(RULE.evaluate(context(snap)))

    assert finding.rule == "disk_space"
    assert finding.subject == "/var"
    assert finding.severity is Severity.CRITICAL
    assert finding.summary == "/var is 97% full"
    assert finding.evidence == ("/var (ext4 on /dev/vda): 970 B of 1000 B used, 30 B free",)


def test_reserved_blocks_count_as_used_like_df():
    # ext4 keeps 5% for root: used + avail < size; df shows 100% when avail is 0
    reserved = Mount("/dev/sda2", "ext4", "/srv", 1000, 950, 0, 100, 10)
    finding = only(RULE.evaluate(context(snapshot(mounts=[reserved]))))
    assert finding.summary == "/srv is 100% full"
    assert finding.severity is Severity.CRITICAL


@pytest.mark.parametrize(
    ("percent", "severity"),
    [
        (84.9, None),
        (85.0, Severity.WARNING),
        (94.9, Severity.WARNING),
        (95.0, Severity.CRITICAL),
        (100.0, Severity.CRITICAL),
    ],
)
def test_default_boundaries(percent, severity):
    findings = RULE.evaluate(context(snapshot(mounts=[mount("/", used_percent=percent)])))
    assert [f.severity for f in findings] == ([severity] if severity else [])


def test_custom_thresholds():
    thresholds = Thresholds(disk_warn_percent=50, disk_critical_percent=70)
    snap = snapshot(mounts=[mount("/a", 49), mount("/b", 50), mount("/c", 69), mount("/d", 70)])

    findings = RULE.evaluate(context(snap, thresholds=thresholds))

    assert [(f.subject, f.severity) for f in findings] == [
        ("/b", Severity.WARNING),
        ("/c", Severity.WARNING),
        ("/d", Severity.CRITICAL),
    ]


def test_empty_file_system_is_not_full():
    empty = Mount("tmpfs", "tmpfs", "/run/empty", 0, 0, 0, 0, 0)
    assert RULE.evaluate(context(snapshot(mounts=[empty]))) == []


def test_evidence_reads_in_human_units() -> None:
    gib = 1024 ** 3
    big = Mount("/dev/nvme0n1p2", "ext4", "/", 100 * gib, int(96.5 * gib), int(3.5 * gib), 1, 1)
    finding = only(RULE.evaluate(context(snapshot(mounts=[big]))))
    assert finding.evidence == ("/ (ext4 on /dev/nvme0n1p2): 96.5 GiB of 100.0 GiB used, "
                                "3.5 GiB free",)


def test_a_full_read_only_file_system_is_no_finding() -> None:
    image = Mount("/dev/loop0", "erofs", "/usr", 1000, 1000, 0, 100, 100, read_only=True)
    disc = Mount("/dev/sr0", "udf", "/media/dvd", 1000, 1000, 0, 0, 0, read_only=True)
    assert RULE.evaluate(context(snapshot(mounts=[image, disc]))) == []


def test_overlays_of_one_file_system_seen_nowhere_else_are_one_finding():
    overlays = [mount(f"/var/lib/docker/overlay2/{n}/merged", used_percent=97, size=50 * GIB,
                      fstype="overlay", source="overlay") for n in "abc"]
    other = mount("/srv", used_percent=97, size=20 * GIB)
    found = RULE.evaluate(context(snapshot(mounts=[*overlays, other])))
    assert sorted(f.subject for f in found) == ["/srv", "/var/lib/docker/overlay2/a/merged"]


def test_a_disk_that_warned_is_well_again_only_a_margin_below_the_level():
    """A volume that hovers at the warning level is one incident, not one a check."""
    hovering = snapshot(mounts=[mount("/srv", used_percent=84.98)])
    assert RULE.evaluate(context(hovering)) == []
    found = RuleContext(hovering, found_before={("disk_space", "/srv"): Severity.WARNING})
    assert [f.subject for f in RULE.evaluate(found)] == ["/srv"]
    well = snapshot(mounts=[mount("/srv", used_percent=82.9)])
    assert RULE.evaluate(RuleContext(well, found_before=found.found_before)) == []
    # another rule's finding or another mount's holds nothing
    other = RuleContext(hovering, found_before={("inode_exhaustion", "/srv"): Severity.WARNING,
                                                ("disk_space", "/"): Severity.WARNING})
    assert RULE.evaluate(other) == []


def test_only_the_disks_own_critical_finding_keeps_its_critical_margin():
    """The margin itself: tests/rules/test_critical_margin.py. Another rule's critical
    finding of the same mount, or another mount's, holds nothing; a margin of 0 none."""
    def severity(pct: float, before: Severity, key: tuple[str, str]) -> list[Severity]:
        snap = snapshot(mounts=[mount("/srv", used_percent=pct)])
        return [f.severity for f in RULE.evaluate(RuleContext(snap, found_before={key: before}))]

    assert severity(94.9, Severity.CRITICAL, ("disk_space", "/srv")) == [Severity.CRITICAL]
    assert severity(94.9, Severity.CRITICAL, ("inode_exhaustion", "/srv")) == [Severity.WARNING]
    assert severity(94.9, Severity.CRITICAL, ("disk_space", "/")) == [Severity.WARNING]
    strict = Thresholds(clear_margin_percent=0)
    snap = snapshot(mounts=[mount("/srv", used_percent=94.9)])
    ctx = RuleContext(snap, strict, found_before={("disk_space", "/srv"): Severity.CRITICAL})
    assert [f.severity for f in RULE.evaluate(ctx)] == [Severity.WARNING]


#: df on a Fedora/openSUSE-style btrfs layout: every subvolume has a device number of its
#: own, so df lists each with the one file system's figures (read a moment apart: the used
#: count of a busy disk moves between two reads); beside it a /boot and two tmpfs
BTRFS_DF = """\
Filesystem     Type          1B-blocks         Used       Avail  Inodes IUsed Mounted on
/dev/nvme0n1p3 btrfs      107374182400 103079215104  4294967296       0     0 /home
devtmpfs       devtmpfs        4194304            0     4194304 2026190   712 /dev
tmpfs          tmpfs       16614215680    104857600 16509358080 4056205    93 /dev/shm
/dev/nvme0n1p3 btrfs      107374182400 103079215104  4294967296       0     0 /
/dev/nvme0n1p3 btrfs      107374182400 103079219200  4294963200       0     0 /var
/dev/nvme0n1p3 btrfs      107374182400 103079219200  4294963200       0     0 /opt
/dev/nvme0n1p3 btrfs      107374182400 103079219200  4294963200       0     0 /.snapshots
/dev/nvme0n1p2 ext4         1020702720    980000000    40702720   65536   402 /boot
tmpfs          tmpfs       16614215680  16509358080   104857600 4056205    93 /tmp
"""


def test_one_full_btrfs_mounted_as_subvolumes_is_one_finding_naming_its_other_mounts():
    """One full disk is one incident (and one investigation), not one a subvolume."""
    mounts = parsers.parse_df(BTRFS_DF)
    found = {f.subject: f for f in RULE.evaluate(context(snapshot(mounts=mounts)))}

    # the btrfs once, as "/"; /boot (another device) and the full /tmp (a tmpfs of the
    # same size as /dev/shm, another file system) each on their own
    assert sorted(found) == ["/", "/boot", "/tmp"]
    root = found["/"]
    assert root.summary == "/ is 96% full"
    assert root.evidence[1] == ("the same file system is also mounted at /.snapshots, /home, "
                                "/opt, /var")
    # whichever order df lists them in, the subject stays "/": its incident stays one
    reordered = list(reversed(mounts))
    assert sorted(f.subject for f in RULE.evaluate(context(snapshot(mounts=reordered)))) == \
        ["/", "/boot", "/tmp"]


def test_file_systems_alike_but_of_no_one_device_are_each_judged():
    full = [
        # two disks of one size, both full
        mount("/srv/a", used_percent=97, fstype="btrfs", source="/dev/sdb"),
        mount("/srv/b", used_percent=97, fstype="btrfs", source="/dev/sdc"),
        # two tmpfs of one name, size and fill: a tmpfs's name is any label, no device
        mount("/run/user/1000", used_percent=99, fstype="tmpfs", source="tmpfs"),
        mount("/run/user/1001", used_percent=99, fstype="tmpfs", source="tmpfs"),
    ]
    found = RULE.evaluate(context(snapshot(mounts=full)))
    assert sorted(f.subject for f in found) == ["/run/user/1000", "/run/user/1001", "/srv/a",
                                                "/srv/b"]
    assert all(len(f.evidence) == 1 for f in found)  # none said to be mounted elsewhere


def test_a_read_only_mount_of_a_device_does_not_speak_for_a_writable_one():
    """The shortest mount point speaks for a file system: one read-only (never full) must
    not hide a writable one it is not."""
    image = mount("/img", used_percent=100, fstype="ext4", source="/dev/loop0", read_only=True)
    data = mount("/srv/data", used_percent=97, fstype="ext4", source="/dev/loop0")
    assert [f.subject for f in RULE.evaluate(context(snapshot(mounts=[image, data])))] == \
        ["/srv/data"]


def test_a_file_system_at_many_mount_points_names_a_few_of_them():
    many = [mount(f"/var/lib/machines/m{n:02}", used_percent=97, fstype="btrfs",
                  source="/dev/sdb") for n in range(12)]
    finding = only(RULE.evaluate(context(snapshot(mounts=many))))
    assert finding.subject == "/var/lib/machines/m00"
    assert finding.evidence[1] == (
        "the same file system is also mounted at /var/lib/machines/m01, "
        "/var/lib/machines/m02, /var/lib/machines/m03, /var/lib/machines/m04, "
        "/var/lib/machines/m05 and 6 more")


#: df on a NixOS-style ZFS root whose pool filled up: each mounted dataset (a source with no
#: /dev/, its pool's name first) is listed with its own data and the pool's shared free space,
#: so every one is 100 % used; a docker dataset a container's (zfs storage driver)
ZFS_FULL_DF = """\
Filesystem     Type        1B-blocks         Used      Avail  Inodes   IUsed Mounted on
rpool/root     zfs      53687091200  53687091200          0 1234567 1234567 /
rpool/nix      zfs     107374182400 107374182400          0 2345678 2345678 /nix
rpool/home     zfs        524288000    524288000          0    9876    9876 /home
rpool/var      zfs        104857600    104857600          0     512     512 /var
rpool/var/log  zfs         10485760     10485760          0      64      64 /var/log
rpool/docker/3f zfs          131072       131072          0       6       6 /var/lib/docker/zfs/3f
tmpfs          tmpfs     8388608000         4096 8388603904 2048000      10 /run
/dev/nvme0n1p1 vfat       536870912     67108864  469762048       0       0 /boot
"""


def test_a_full_zfs_pool_is_one_finding_about_its_shortest_mount_point_not_one_a_dataset():
    """The pool filled up, not each dataset: one incident (and one investigation), about "/"
    with the pool's figures, the other datasets named; and not a second one a dataset for
    inodes, which ZFS makes as it needs them (df counts what the free space could hold)."""
    mounts = parsers.parse_df(ZFS_FULL_DF)
    findings, _ = evaluate(context(snapshot(mounts=mounts)), (DiskSpace(), InodeExhaustion()))

    root = only(findings)
    assert (root.rule, root.subject, root.severity) == ("disk_space", "/", Severity.CRITICAL)
    assert root.summary == "/ is 100% full"
    assert root.evidence == (
        "/ (ZFS pool rpool): 150.6 GiB of 150.6 GiB used by its 6 mounted datasets, 0 B free",
        "the same ZFS pool also holds /home, /nix, /var, /var/lib/docker/zfs/3f, "
        "/var/log")
    # whichever order df lists them in, the subject stays "/"
    assert [f.subject for f in RULE.evaluate(context(snapshot(mounts=mounts[::-1])))] == ["/"]


def test_a_nearly_full_zfs_pool_is_judged_by_the_pool_not_its_smallest_dataset():
    """The root dataset holds little; the pool is 97 % full by what the others hold."""
    gib = GIB
    datasets = [Mount("tank/root", "zfs", "/", 4 * gib, 1 * gib, 3 * gib, 10**5, 10**4),
                Mount("tank/srv", "zfs", "/srv", 90 * gib, 87 * gib, 3 * gib, 10**6, 10**5),
                Mount("tank/home", "zfs", "/home", 13 * gib, 10 * gib, 3 * gib, 10**5, 10**4)]
    finding = only(RULE.evaluate(context(snapshot(mounts=datasets))))
    assert (finding.subject, finding.summary) == ("/", "/ is 97% full")


def test_a_zfs_dataset_full_by_its_own_quota_is_judged_on_its_own():
    """A quota leaves a dataset less room than its pool has: it fills up while the pool does
    not, and is its own incident; two pools are two."""
    gib = GIB
    datasets = [Mount("tank", "zfs", "/tank", 50 * gib, 1 * gib, 49 * gib, 10**5, 10**4),
                Mount("tank/users/ann", "zfs", "/home/ann", 10 * gib, 10 * gib, 0, 10**4, 10**4),
                Mount("tank/srv", "zfs", "/srv", 59 * gib, 10 * gib, 49 * gib, 10**5, 10**4),
                Mount("backup", "zfs", "/backup", 100 * gib, 97 * gib, 3 * gib, 10**5, 10**4),
                Mount("backup/old", "zfs", "/backup/old", 4 * gib, 1 * gib, 3 * gib, 10, 1)]
    found = {f.subject: f for f in RULE.evaluate(context(snapshot(mounts=datasets)))}
    assert sorted(found) == ["/backup", "/home/ann"]
    assert found["/home/ann"].evidence == (
        "/home/ann (zfs on tank/users/ann): 10.0 GiB of 10.0 GiB used, 0 B free",)
    assert found["/backup"].evidence[1] == "the same ZFS pool also holds /backup/old"


#: df on a Debian root-on-ZFS host whose pool filled up: rpool/srv/db carries a
#: refreservation of 20 GiB (1 GiB written), so df shows it the 19 GiB no other dataset may
#: take, beside the pool's 0 B every other one shows; bpool, the boot pool, has room
ZFS_FULL_RESERVED_DF = """\
Filesystem        Type     1B-blocks        Used       Avail  Inodes   IUsed Mounted on
rpool/ROOT/debian zfs    48318382080 48318382080           0 1843215 1843215 /
rpool/home        zfs    36507222016 36507222016           0  402117  402117 /home
rpool/var/log     zfs     2147483648  2147483648           0    1210    1210 /var/log
rpool/var/tmp     zfs     3221225472  3221225472           0     873     873 /var/tmp
rpool/srv/db      zfs    21474836480  1073741824 20401094656 39845401    1542 /srv/db
bpool/BOOT/debian zfs     1879048192   209715200  1669332992 3260702      24 /boot
tmpfs             tmpfs   3355443200     1572864  3353870336  819200     912 /run
"""


def test_a_full_zfs_pool_with_a_reserved_dataset_is_one_finding_where_the_pool_is_listed():
    """A reservation keeps room for its dataset alone: where df lists the pool's own dataset
    (rpool, mounted at /rpool), its 0 B is the pool's free space, not the reserved dataset's
    19 GiB, and the pool is one incident (not one for each of /, /home, /var/log, /var/tmp)."""
    listed = ZFS_FULL_RESERVED_DF + "rpool zfs 98304 98304 0 6 6 /rpool\n"
    root = only(RULE.evaluate(context(snapshot(mounts=parsers.parse_df(listed)))))
    assert (root.subject, root.severity, root.summary) == ("/", Severity.CRITICAL,
                                                           "/ is 100% full")
    assert root.evidence[1] == (
        "the same ZFS pool also holds /home, /rpool, /srv/db, /var/log, /var/tmp")


def test_a_reservation_with_the_pool_unlisted_never_makes_a_pool_fuller_than_it_is():
    """Without the pool's own dataset, what the pool has free is the most any dataset shows:
    a reservation's room then stands for the pool's, and the full datasets are judged each
    by what df shows them (each full), never the pool by less room than it has."""
    found = {f.subject for f in RULE.evaluate(context(snapshot(
        mounts=parsers.parse_df(ZFS_FULL_RESERVED_DF))))}
    assert found == {"/", "/home", "/var/log", "/var/tmp"}


def test_datasets_full_by_their_quotas_do_not_make_a_pool_with_room_full():
    """Two backup datasets full to their quotas (0 B free each) outnumber the one dataset
    that shows the pool's 500 GiB: taken from what most show, the pool was "100 % full", and
    a clean of /data was planned for it, while the two full datasets went unsaid."""
    gib = GIB
    datasets = [Mount("tank/data", "zfs", "/data", 700 * gib, 200 * gib, 500 * gib, 10**8, 10**5),
                Mount("tank/backup/a", "zfs", "/backup/a", 50 * gib, 50 * gib, 0, 10**5, 10**5),
                Mount("tank/backup/b", "zfs", "/backup/b", 50 * gib, 50 * gib, 0, 10**5, 10**5)]
    found = {f.subject: f for f in RULE.evaluate(context(snapshot(mounts=datasets)))}
    assert sorted(found) == ["/backup/a", "/backup/b"]
    assert all(f.severity is Severity.CRITICAL for f in found.values())


#: df on a Proxmox VE host: five containers' disks (subvols, each held by its refquota) are
#: full, while the pool has 50 GiB free, which rpool itself, its root and its data dataset
#: show: fewer datasets than the full disks
PROXMOX_DF = """\
Filesystem       Type   1B-blocks       Used       Avail    Inodes IUsed Mounted on
rpool/ROOT/pve-1 zfs  59055800320 5368709120 53687091200 104857600 71234 /
rpool            zfs  53687197696     106496 53687091200 104857606     6 /rpool
rpool/ROOT       zfs  53687189504      98304 53687091200 104857606     7 /rpool/ROOT
rpool/data       zfs  53687189504      98304 53687091200 104857606     7 /rpool/data
""" + "".join(f"rpool/data/subvol-{n}-disk-0 zfs {size} {size} 0 {files} {files} "
              f"/rpool/data/subvol-{n}-disk-0\n"
              for n, size, files in ((101, 8 * GIB, 312014), (102, 8 * GIB, 295110),
                                     (103, 16 * GIB, 401270), (104, 4 * GIB, 120455),
                                     (105, 4 * GIB, 98001)))


def test_containers_full_by_their_quotas_do_not_make_a_pool_with_room_full():
    """More datasets show 0 B free (each container's quota) than show the pool's 50 GiB:
    the pool's own dataset, rpool, says what the pool has, and each full disk is its own
    incident, the pool none."""
    found = RULE.evaluate(context(snapshot(mounts=parsers.parse_df(PROXMOX_DF))))
    assert sorted(f.subject for f in found) == [
        f"/rpool/data/subvol-{n}-disk-0" for n in range(101, 106)]
