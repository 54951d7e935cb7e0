import pytest

from ai_sysadmin.config import Thresholds
from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import RuleContext
from ai_sysadmin.monitor.rules.disk_space import DiskSpace
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
