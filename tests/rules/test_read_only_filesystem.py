"""A file system mounted read-write that stopped taking writes (the kernel's answer to an I/O
error) is one critical finding about its mount point; an image read-only from the start, a
read-only mount, and a table nobody read are not."""

from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import RuleContext, evaluate
from ai_sysadmin.monitor.rules.disk_space import DiskSpace
from ai_sysadmin.monitor.rules.read_only_filesystem import ReadOnlyFilesystem

from ._snapshots import GIB, NOW, Checks, context, healthy_snapshot, mount, only, snapshot

RULE = ReadOnlyFilesystem()


def looks(*mounts_of_each_look):  # type: ignore[no-untyped-def]
    """The rule over successive looks (as a checker makes them): each look's findings and
    whether it judged."""
    previous, found = None, {}
    seen = []
    for n, mounts in enumerate(mounts_of_each_look):
        snap = snapshot(mounts=mounts, taken_at=NOW + 60 * n)
        ctx = RuleContext(snap, previous=previous, found_before=found)
        findings = RULE.evaluate(ctx)
        seen.append(([f.subject for f in findings], RULE.judges(ctx)))
        previous, found = snap, {(f.rule, f.subject): f.severity for f in findings}
    return seen


def test_the_kernels_emergency_read_only_is_a_critical_finding_at_the_first_look():
    data = mount("/srv/data", source="/dev/sdb1", read_only=True, stopped="emergency_ro")
    finding = only(RULE.evaluate(context(snapshot(mounts=[mount("/"), data]))))
    assert finding.rule == "read_only_filesystem"
    assert finding.subject == "/srv/data"
    assert finding.severity is Severity.CRITICAL
    assert finding.summary == "/srv/data no longer takes writes"
    assert finding.evidence == (
        "/srv/data (ext4 on /dev/sdb1): the kernel made its file system read-only after an "
        "error (emergency_ro); it is mounted read-write",)


def test_a_file_system_the_kernel_shut_down_is_a_finding():
    down = mount("/var", read_only=True, stopped="shutdown")
    finding = only(RULE.evaluate(context(snapshot(mounts=[down]))))
    assert "shut its file system down" in finding.evidence[0]


def test_a_file_system_that_turned_read_only_under_its_read_write_mount_stays_found():
    writable = mount("/var/lib/db", fstype="btrfs", source="/dev/sdd1")
    turned = mount("/var/lib/db", fstype="btrfs", source="/dev/sdd1", read_only=True)
    seen = looks([mount("/"), writable], [mount("/"), turned], [mount("/"), turned],
                 [mount("/"), writable])
    assert seen == [([], True), (["/var/lib/db"], True), (["/var/lib/db"], True), ([], True)]


def test_an_image_read_only_from_the_first_look_is_never_found():
    # a squashfs mounted without -o ro: its file system read-only, its mount read-write
    image = mount("/mnt/image", fstype="squashfs", source="/dev/loop0", read_only=True)
    seen = looks([mount("/"), image], [mount("/"), image], [mount("/"), image])
    # the first look cannot tell an image from a disk that turned: it does not judge
    assert seen == [([], False), ([], True), ([], True)]


def test_another_file_system_mounted_on_the_point_is_not_a_turn():
    disk = mount("/mnt/usb", source="/dev/sdc1")
    image = mount("/mnt/usb", fstype="iso9660", source="/dev/sr0", read_only=True)
    assert looks([disk], [image]) == [([], True), ([], True)]


def test_a_read_only_mount_is_a_persons_choice_not_a_finding():
    chosen = mount("/mnt/backup", read_only=True, view_read_only=True)
    assert looks([mount("/mnt/backup")], [chosen]) == [([], True), ([], True)]


def test_a_mount_table_not_read_judges_nothing():
    # df answered, /proc/self/mountinfo did not: a mount's flags are not known
    unknown = mount("/", view_read_only=None)
    ctx = RuleContext(snapshot(mounts=[unknown]), previous=healthy_snapshot(NOW - 60),
                      found_before={("read_only_filesystem", "/"): Severity.CRITICAL})
    assert RULE.evaluate(ctx) == []
    assert not RULE.judges(ctx)  # its incident stays as it is


def test_a_full_file_system_whose_writes_stopped_is_not_also_a_disk_alert():
    full = mount("/srv", used_percent=98, read_only=True, stopped="emergency_ro")
    findings, judged = evaluate(context(snapshot(mounts=[full])))
    assert [f.rule for f in findings] == ["read_only_filesystem"]
    assert DiskSpace.name in judged


def subvolumes(*targets: str, read_only: bool = False, **flags):  # type: ignore[no-untyped-def]
    """Mounts of one btrfs (its subvolumes), listed in df's order."""
    return [mount(t, fstype="btrfs", source="/dev/nvme0n1p3", size=500 * GIB, inodes=0,
                  inodes_percent=0, read_only=read_only, **flags) for t in targets]


def test_a_btrfs_that_turned_read_only_is_one_incident_whatever_its_subvolumes(tmp_path):
    """Its subvolumes mounted at /, /home and /var: the kernel turned the one file system
    read-only, and a person is told once, about /, the evidence naming the others (as a
    full disk is), not three times; it is over when the file system takes writes again."""
    checks = Checks(tmp_path)
    boot = mount("/boot", fstype="vfat", inodes=0, inodes_percent=0)

    def look(n: int, read_only: bool):  # type: ignore[no-untyped-def]
        return checks.look(n, mounts=[*subvolumes("/var", "/", "/home", read_only=read_only),
                                      boot])

    checks.check(look(0, read_only=False))
    turned = checks.check(look(1, read_only=True))
    assert [f.subject for f in turned.findings if f.rule == RULE.name] == ["/"]
    checks.check(look(2, read_only=True))  # kept while it stays read-only
    [incident] = checks.incidents(RULE.name)
    assert (incident.subject, incident.state, incident.severity) == ("/", "open", "critical")
    assert incident.summary == "/ no longer takes writes"
    assert incident.evidence == [
        "/ (btrfs on /dev/nvme0n1p3): mounted read-write, but its file system is read-only, "
        "as the kernel makes one after an error (errors=remount-ro)",
        "the same file system is also mounted at /home, /var"]
    checks.check(look(3, read_only=False))
    assert checks.states(RULE.name) == {"/": "resolved"}


def test_a_btrfs_is_said_once_by_its_shortest_mount_point_that_took_writes():
    """The kernel stopped a btrfs mounted at /srv, /data and, read-only by a person's
    choice, /ro: one finding at the first look, about /srv (/ro, shorter, never took
    writes), naming the others; the same when it turned read-only under its mounts."""
    chosen = subvolumes("/ro", read_only=True, view_read_only=True, stopped="emergency_ro")
    stopped = [*subvolumes("/data", "/srv", read_only=True, stopped="emergency_ro"), *chosen]
    finding = only(RULE.evaluate(context(snapshot(mounts=stopped))))
    assert finding.subject == "/srv"
    assert finding.evidence[-1] == "the same file system is also mounted at /data, /ro"

    before = [*subvolumes("/srv"), *subvolumes("/ro", read_only=True, view_read_only=True)]
    after = [*subvolumes("/srv", read_only=True),
             *subvolumes("/ro", read_only=True, view_read_only=True)]
    assert looks(before, after, after, before) == [
        ([], True), (["/srv"], True), (["/srv"], True), ([], True)]
