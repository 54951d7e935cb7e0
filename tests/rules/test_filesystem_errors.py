"""A file system whose kernel driver recorded errors needs a person even while it takes
writes: a standing count is a warning on its mount point, new errors are critical; a
count of 0, a host without ext4 or btrfs, and a look that could not read the counts say
nothing."""

from dataclasses import replace

from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import evaluate
from ai_sysadmin.monitor.rules.filesystem_errors import FilesystemErrors
from ai_sysadmin.monitor.snapshot import FilesystemErrors as Counted

from ._snapshots import NOW, context, healthy_snapshot, only, snapshot

RULE = FilesystemErrors()
DAY = 86_400.0


def ext4(errors: int, last: float | None = None, target: str = "/srv/data",
         name: str = "sdb1") -> Counted:
    first = None if last is None else last - DAY
    return Counted("ext4", name, target, errors, first, last)


def judge(*counts: Counted, before: list[Counted] | None = None,  # type: ignore[no-untyped-def]
          rose_after: dict[str, float] | None = None):
    previous = None if before is None else snapshot(fs_errors=before, taken_at=NOW - 60)
    ctx = context(snapshot(fs_errors=list(counts)), previous=previous)
    if rose_after is not None:
        ctx = replace(ctx, fs_errors_rose_after=rose_after)
    return RULE.evaluate(ctx)


def test_a_standing_ext4_error_count_is_a_warning_naming_the_mount_count_and_last_error():
    finding = only(judge(ext4(0, target="/", name="vda"), ext4(3, last=NOW - 3 * DAY)))
    assert finding.rule == "filesystem_errors"
    assert finding.subject == "/srv/data"
    assert finding.severity is Severity.WARNING
    assert finding.summary == (
        "/srv/data: the kernel recorded 3 errors on this ext4 since its last fsck, the last "
        "at 2025-06-12 15:06:40 UTC; it needs an fsck")
    assert finding.evidence == (
        "/sys/fs/ext4/sdb1/errors_count: 3; ext4 mounted at /srv/data",
        "first error at 2025-06-11 15:06:40 UTC, last error at 2025-06-12 15:06:40 UTC")


def test_a_count_that_rose_since_the_last_look_is_critical():
    old = NOW - 3 * DAY
    finding = only(judge(ext4(5, last=old), before=[ext4(3, last=old)]))
    assert finding.severity is Severity.CRITICAL
    assert "5 errors on this ext4 since its last fsck, 2 new since the last check" in \
        finding.summary
    assert finding.evidence[0].startswith(
        "/sys/fs/ext4/sdb1/errors_count: 5 (3 at the previous check)")
    # the same count at the next look: standing again, the same incident's subject
    again = only(judge(ext4(5, last=old), before=[ext4(5, last=old)]))
    assert (again.subject, again.severity) == (finding.subject, Severity.WARNING)


def test_an_error_of_the_last_hour_is_critical_at_a_first_look():
    assert only(judge(ext4(1, last=NOW - 600))).severity is Severity.CRITICAL
    assert only(judge(ext4(1, last=NOW - 7200))).severity is Severity.WARNING


def test_no_count_and_no_file_system_find_nothing_and_judge():
    for counts in ([ext4(0)], []):  # no errors; a host without ext4 or btrfs
        snap = snapshot(fs_errors=counts)
        findings, judged = evaluate(context(snap))
        assert "filesystem_errors" in judged
        assert [f for f in findings if f.rule == "filesystem_errors"] == []


def test_counts_not_read_judge_nothing_so_no_incident_resolves():
    snap = healthy_snapshot()
    snap.fs_errors = None
    snap.errors["fs_errors"] = "/proc/self/mountinfo could not be read"
    findings, judged = evaluate(context(snap, previous=healthy_snapshot(NOW - 60)))
    assert "filesystem_errors" not in judged and findings == []


def test_a_file_system_not_mounted_where_the_check_looks_is_not_judged_there():
    """A container sees its host's sysfs: the host's disk is the host's check's."""
    btrfs = Counted("btrfs", "4f6c0f8e", "", 1, detail=("devid 1: read_errs 1",))
    assert judge(ext4(2, last=NOW - 60, target="", name="sdc1"), btrfs) == []


def test_btrfs_device_errors_are_a_warning_and_critical_when_they_rise():
    detail = ("devid 2: write_errs 3", "devid 2: corruption_errs 1")
    now = Counted("btrfs", "4f6c0f8e", "/data", 4, detail=detail)
    finding = only(judge(now, before=[now]))
    assert (finding.subject, finding.severity) == ("/data", Severity.WARNING)
    assert finding.summary.startswith("/data: btrfs counted 4 device errors")
    assert finding.evidence == (
        "btrfs 4f6c0f8e, mounted at /data: 4 errors in its devices' error_stats "
        "(4 at the previous check)", *detail)
    earlier = Counted("btrfs", "4f6c0f8e", "/data", 1)
    assert only(judge(now, before=[earlier])).severity is Severity.CRITICAL


def test_a_rise_stays_critical_for_the_hour_after_it_then_warns():
    """btrfs keeps no time of its errors: a disk failing now and then would flip between
    critical and warning at every rise, each flip a change of the incident."""
    now = Counted("btrfs", "4f6c0f8e", "/data", 4)
    for ago in (120.0, 3000.0):  # the next checks, within the hour
        finding = only(judge(now, before=[now], rose_after={"/data": NOW - ago}))
        assert finding.severity is Severity.CRITICAL
        assert "rising within the last hour" in finding.summary
        assert "its count rose within the last 3600 s" in finding.evidence
    after = only(judge(now, before=[now], rose_after={"/data": NOW - 3700}))
    assert after.severity is Severity.WARNING
    assert only(judge(now, before=[now], rose_after={"/other": NOW - 60})).severity \
        is Severity.WARNING


def test_device_names_swapped_by_a_reboot_are_no_rise():
    """The previous look is matched by mount point: sda1 and sdb1 may swap at a boot."""
    old = NOW - 3 * DAY
    before = [ext4(3, last=old, name="sdb1"), ext4(1, last=old, target="/", name="sda1")]
    now = [ext4(3, last=old, name="sda1"), ext4(1, last=old, target="/", name="sdb1")]
    found = judge(*now, before=before)
    assert {(f.subject, f.severity) for f in found} == {
        ("/srv/data", Severity.WARNING), ("/", Severity.WARNING)}
    assert "(3 at the previous check)" in next(
        f for f in found if f.subject == "/srv/data").evidence[0]
