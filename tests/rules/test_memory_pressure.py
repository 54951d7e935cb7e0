import pytest

from ai_sysadmin.config import Thresholds
from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import RuleContext
from ai_sysadmin.monitor.rules.memory_pressure import MemoryPressure
from ai_sysadmin.monitor.snapshot import Memory, Snapshot

from ._snapshots import context, healthy_snapshot, memory, only, snapshot

RULE = MemoryPressure()


def test_healthy_memory_gives_no_finding():
    assert RULE.evaluate(context(healthy_snapshot())) == []


def test_low_available_memory_is_a_finding_quoting_meminfo():
    mem = Memory(
        total_kb=16_000_000,
        available_kb=640_000,
        swap_total_kb=0,
        swap_free_kb=0,
        psi_some_avg60=12.5,
    )

    finding = only(RULE.evaluate(context(snapshot(memory=mem))))

    assert finding.rule == "memory_pressure"
    assert finding.subject == "memory"
    assert finding.severity is Severity.CRITICAL
    assert finding.summary == "memory pressure: 4.0% available"
    assert finding.evidence == (
        "MemAvailable 640000 kB of MemTotal 16000000 kB (4.0%)",
        "memory PSI some avg60=12.50",
    )


def test_without_psi_the_evidence_is_meminfo_only():
    finding = only(RULE.evaluate(context(snapshot(memory=memory(8, psi=None)))))
    assert finding.evidence == ("MemAvailable 1280000 kB of MemTotal 16000000 kB (8.0%)",)


@pytest.mark.parametrize(
    ("available", "severity"),
    [
        (10.0, None),
        (9.9, Severity.WARNING),
        (5.0, Severity.WARNING),
        (4.9, Severity.CRITICAL),
        (0.0, Severity.CRITICAL),
    ],
)
def test_default_boundaries(available, severity):
    findings = RULE.evaluate(context(snapshot(memory=memory(available))))
    assert [f.severity for f in findings] == ([severity] if severity else [])


def test_tasks_stalling_on_memory_warn_even_with_memory_available():
    finding = only(RULE.evaluate(context(snapshot(memory=memory(60, psi=40.0)))))
    assert finding.severity is Severity.WARNING
    assert "memory PSI some avg60=40.00" in finding.evidence


def test_psi_below_threshold_is_fine():
    assert RULE.evaluate(context(snapshot(memory=memory(60, psi=39.99)))) == []


def test_custom_thresholds():
    thresholds = Thresholds(
        memory_available_warn_percent=30,
        memory_available_critical_percent=20,
        memory_psi_some_avg60=5,
    )
    assert RULE.evaluate(context(snapshot(memory=memory(31, psi=4)), thresholds=thresholds)) == []
    warn = only(RULE.evaluate(context(snapshot(memory=memory(25)), thresholds=thresholds)))
    assert warn.severity is Severity.WARNING
    crit = only(RULE.evaluate(context(snapshot(memory=memory(19)), thresholds=thresholds)))
    assert crit.severity is Severity.CRITICAL
    stalled_snapshot = snapshot(memory=memory(90, psi=5))
    stalled = only(RULE.evaluate(context(stalled_snapshot, thresholds=thresholds)))
    assert stalled.severity is Severity.WARNING


def test_memory_reserved_as_huge_pages_is_not_memory_missing():
    # a KVM or database host that set 92 GiB of 100 aside as huge pages, 7 GiB of the rest
    # free: MemAvailable never counts the huge pages, used or not
    gib = 1024 * 1024
    reserved = Memory(total_kb=100 * gib, available_kb=7 * gib, swap_total_kb=0,
                      swap_free_kb=0, psi_some_avg60=0.0, hugetlb_kb=92 * gib)
    assert RULE.evaluate(context(snapshot(memory=reserved))) == []
    short = Memory(total_kb=100 * gib, available_kb=gib // 4, swap_total_kb=0,
                   swap_free_kb=0, psi_some_avg60=0.0, hugetlb_kb=92 * gib)
    finding = only(RULE.evaluate(context(snapshot(memory=short))))
    assert finding.severity is Severity.CRITICAL  # 3% of the 8 GiB it can give out
    assert "less 96468992 kB of huge pages" in finding.evidence[0]


def test_memory_the_zfs_cache_can_give_back_is_not_memory_missing():
    # a ZFS file server: the ARC holds 7 GiB above its floor, which the kernel's MemAvailable
    # never counts (openzfs/zfs#10255): 4% "available" is 26% in truth
    gib = 1024 * 1024
    zfs = Memory(total_kb=32 * gib, available_kb=gib + gib // 4, swap_total_kb=0,
                 swap_free_kb=0, psi_some_avg60=0.0, arc_reclaimable_kb=7 * gib)
    assert RULE.evaluate(context(snapshot(memory=zfs))) == []
    short = Memory(total_kb=32 * gib, available_kb=gib // 4, swap_total_kb=0,
                   swap_free_kb=0, psi_some_avg60=0.0, arc_reclaimable_kb=gib // 4)
    finding = only(RULE.evaluate(context(snapshot(memory=short))))
    assert finding.severity is Severity.CRITICAL  # 1.6%, ARC and all
    assert finding.evidence[0] == ("MemAvailable 262144 kB plus 262144 kB the ZFS ARC can give "
                                   "back of MemTotal 33554432 kB (1.6%)")


def test_available_memory_at_a_level_is_one_incident_that_changes_severity_once():
    """Available memory that hovers at 10 % (the warning level) or 5 % (critical) neither
    opens and resolves an incident nor turns it warning and critical again check after
    check: once it was reached, it is left only clear_margin_percent (2) above it."""
    def found(avail: float, before: Severity | None = None) -> list[Severity]:
        held = {} if before is None else {("memory_pressure", "memory"): before}
        snap = snapshot(memory=memory(available_percent=avail, psi=None))
        return [f.severity for f in RULE.evaluate(RuleContext(snap, found_before=held))]

    assert found(10.1) == [] and found(9.9) == [Severity.WARNING]
    assert found(10.1, Severity.WARNING) == [Severity.WARNING]
    assert found(11.9, Severity.WARNING) == [Severity.WARNING]
    assert found(12.1, Severity.WARNING) == []
    assert found(5.1) == [Severity.WARNING] and found(4.9) == [Severity.CRITICAL]
    assert found(5.1, Severity.WARNING) == [Severity.WARNING]
    assert found(6.9, Severity.CRITICAL) == [Severity.CRITICAL]
    assert found(7.1, Severity.CRITICAL) == [Severity.WARNING]
    # another rule's finding holds nothing
    snap = snapshot(memory=memory(available_percent=10.1, psi=None))
    other = {("disk_space", "memory"): Severity.CRITICAL}
    assert RULE.evaluate(RuleContext(snap, found_before=other)) == []


def test_a_finding_that_stalls_alone_made_is_not_held_by_the_memory_level():
    """Memory stalled (PSI) at 11 % available: a warning; the stalls over, still at 11 %,
    the host is well: the margin above the 10 % level holds only what that level found."""
    stalled = snapshot(memory=memory(available_percent=11.0, psi=50.0))
    calm = snapshot(memory=memory(available_percent=11.0, psi=0.0))
    found = {("memory_pressure", "memory"): Severity.WARNING}
    assert [f.severity for f in RULE.evaluate(context(stalled))] == [Severity.WARNING]
    assert RULE.evaluate(RuleContext(calm, previous=stalled, found_before=found)) == []
    # one the level found (9 % at the last look) is held within the margin, stalls or not
    short = snapshot(memory=memory(available_percent=9.0, psi=50.0))
    assert [f.severity for f in RULE.evaluate(
        RuleContext(calm, previous=short, found_before=found))] == [Severity.WARNING]


def test_stalls_that_hover_at_their_level_are_one_incident():
    """PSI some avg60 at 40 % (the level) and just under it, check after check: once the
    stalls were found, they are over only clear_margin_percent (2) points below the level;
    a finding the available memory alone made holds no stall below the level."""
    stalled = snapshot(memory=memory(available_percent=60.0, psi=40.5))
    hovering = snapshot(memory=memory(available_percent=60.0, psi=38.5))
    calmer = snapshot(memory=memory(available_percent=60.0, psi=37.9))
    found = {("memory_pressure", "memory"): Severity.WARNING}
    assert RULE.evaluate(context(hovering)) == []
    assert [f.severity for f in RULE.evaluate(
        RuleContext(hovering, previous=stalled, found_before=found))] == [Severity.WARNING]
    assert RULE.evaluate(RuleContext(calmer, previous=stalled, found_before=found)) == []
    # for as long as they hover: the look after the one that was held is held too
    assert [f.severity for f in RULE.evaluate(
        RuleContext(hovering, previous=hovering, found_before=found))] == [Severity.WARNING]
    # without the finding (another rule's, or none) the level is the level
    assert RULE.evaluate(RuleContext(hovering, previous=stalled, found_before={})) == []
    short = snapshot(memory=memory(available_percent=9.0, psi=10.0))
    assert RULE.evaluate(RuleContext(hovering, previous=short, found_before=found)) == []


def test_the_summary_names_the_stalls_where_they_made_the_finding():
    """A host with 62 % available whose tasks stall on memory 55 % of the time: what a
    person reads first says why, not only the memory that looks plentiful."""
    def summary(available: float, psi: float) -> str:
        snap = snapshot(memory=memory(available_percent=available, psi=psi))
        return only(RULE.evaluate(context(snap))).summary

    assert summary(62.0, 55.0) == ("memory pressure: tasks stalled waiting for memory 55.0% "
                                   "of the last minute (62.0% available)")
    assert summary(4.0, 55.0) == ("memory pressure: 4.0% available, tasks stalled waiting "
                                  "for memory 55.0% of the last minute")
    # stalls under their level made nothing: not named
    assert summary(4.0, 10.0) == "memory pressure: 4.0% available"


@pytest.mark.parametrize(("mounted", "summary"), [
    (frozenset(), None),  # the machine's memory and stalls: the machine's check's
    # lxcfs gives a container its own memory, not its own stalls
    (frozenset({"/proc/meminfo"}), "memory pressure: 4.0% available"),
    (frozenset({"/proc/pressure/memory"}),
     "memory pressure: tasks stalled waiting for memory 45.0% of the last minute"),
    (None, "memory pressure: 4.0% available, tasks stalled waiting for memory 45.0% of the "
     "last minute"),  # the mount table was not read: all counts as the host's
], ids=["container", "lxcfs", "stalls-only", "unknown"])
def test_a_container_judges_only_the_memory_files_that_are_its_own(
        mounted: frozenset[str] | None, summary: str | None) -> None:
    snap = snapshot(memory=memory(4, psi=45.0), container="lxc", proc_mounted=mounted)
    found = RULE.evaluate(context(snap))
    assert [f.summary for f in found] == ([summary] if summary else [])
    if summary and "available" not in summary:  # what is the machine's is not its evidence
        assert found[0].evidence == ("memory PSI some avg60=45.00",)
    assert RULE.judges(context(snap))  # nothing found is a verdict: an incident resolves


def test_a_containers_memory_level_is_held_whatever_the_machines_stalls() -> None:
    """lxcfs gives a container its own memory, never its own stalls: the machine stalling
    makes no finding of its memory a stalls-only one, which its level would not hold."""
    def look(psi: float, previous: Snapshot) -> tuple[Snapshot, list[str]]:
        snap = snapshot(memory=memory(11, psi=psi), container="lxc",
                        proc_mounted=frozenset({"/proc/meminfo"}))
        ctx = RuleContext(snapshot=snap, thresholds=Thresholds(), previous=previous,
                          found_before={("memory_pressure", "memory"): Severity.WARNING})
        return snap, [f.summary for f in RULE.evaluate(ctx)]

    first = snapshot(memory=memory(9, psi=0.0), container="lxc",
                     proc_mounted=frozenset({"/proc/meminfo"}))
    for machine_psi in (0.0, 50.0):
        second, found = look(machine_psi, first)  # within the margin above 10 %: held
        assert found == ["memory pressure: 11.0% available"]
        assert look(machine_psi, second)[1] == found, machine_psi
