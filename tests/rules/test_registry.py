import dataclasses
from pathlib import Path

import pytest

from ai_sysadmin.monitor import rules as rules_package
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.monitor.rules import (
    RULES,
    RULES_BY_NAME,
    Rule,
    RuleContext,
    check_registry,
    evaluate,
    required_by,
)
from ai_sysadmin.monitor.sections import SECTIONS_BY_NAME
from ai_sysadmin.monitor.snapshot import (
    BootChange,
    ClockSync,
    FilesystemErrors,
    Load,
    MdArray,
    Mount,
    Process,
    ServiceResult,
    Snapshot,
    SwapCounters,
    TaskCount,
    ZombieParent,
)

from ._snapshots import (
    NOW,
    certificate,
    context,
    entry,
    healthy_snapshot,
    memory,
    mount,
    unit,
)

ALL_NAMES = {r.name for r in RULES}


class Boom(Rule):
    name = "boom"
    requires = ("memory",)
    description = "Always raises."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        raise RuntimeError("bad arithmetic")


class Always(Rule):
    name = "always"
    requires = ("memory",)
    description = "Always finds something."

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        return [self.finding(ctx, "thing", Severity.INFO, "always there", ["quoted"])]


def test_every_rule_has_a_unique_name_and_is_registered_by_it():
    names = [r.name for r in RULES]
    assert len(names) == len(set(names)), "names are unique"
    # every rule module of the package is registered (a new file that is not fails here)
    modules = {p.stem for p in Path(rules_package.__file__).parent.glob("*.py")
               if p.stem not in ("__init__", "base")}
    assert modules == {type(r).__module__.rsplit(".", 1)[-1] for r in RULES}
    assert {name: type(rule) for name, rule in RULES_BY_NAME.items()} == {
        r.name: type(r) for r in RULES
    }


def test_every_rule_requires_sections_the_collection_table_fills():
    # a misspelt section would make the rule skip every snapshot, silently
    fields = {f.name for f in dataclasses.fields(Snapshot)}
    for rule in RULES:
        # only host_unreachable judges every snapshot, by design
        assert rule.requires or rule.name == "host_unreachable", rule.name
        assert set(rule.requires) <= set(SECTIONS_BY_NAME) & fields, rule.name
        assert rule.description, rule.name
    assert required_by("restarts") == ("crash_loop", "core_dump", "unit_needs_reload")
    assert required_by("certificates") == ("certificate_expiry",)
    assert set(required_by("units")) == {"failed_unit", "crash_loop", "unit_load_error"}
    assert required_by("os") == ()


def test_a_rule_requiring_a_section_nothing_collects_is_refused_at_registration():
    class Misspelt(Always):
        name = "misspelt"
        requires = ("memroy",)

    with pytest.raises(ValueError, match="'misspelt' requires \\['memroy'\\]"):
        check_registry((Always(), Misspelt()))
    with pytest.raises(ValueError, match="two detection rules are named 'always'"):
        check_registry((Always(), Always()))


def test_a_rule_of_the_host_judges_nothing_in_a_container_and_must_read_whether_it_is_one():
    class OfTheHost(Always):
        name = "of_the_host"
        requires = ("load", "container")
        of_the_host = True

    snap = healthy_snapshot()
    assert evaluate(context(snap), rules=(OfTheHost(),))[1] == {"of_the_host"}
    snap.container = "lxc"  # its /proc is its host's: the host, checked itself, reports it
    assert evaluate(context(snap), rules=(OfTheHost(),)) == ([], set())

    class Blind(OfTheHost):
        name = "blind"
        requires = ("load",)

    with pytest.raises(ValueError, match="'blind' is of the host"):
        check_registry((Blind(),))


def test_healthy_snapshot_is_judged_by_every_rule_with_no_finding():
    earlier = healthy_snapshot(taken_at=NOW - 300)
    findings, judged = evaluate(context(healthy_snapshot(), previous=earlier))
    assert findings == []
    assert judged == ALL_NAMES


#: what rules measured against an earlier look cannot judge on a first look alone
MEASURED = {"crash_loop", "swap_thrash", "runaway_process", "oom_kill"}


def test_a_first_look_leaves_the_measured_rules_unjudged_but_reports_what_they_find():
    """A fresh `check` (or a restarted daemon) has no earlier snapshot: a restart count that
    is not rising right now, a rate, say nothing of health, so their incidents stay open;
    what a first look does show (a unit restarting now) still counts."""
    findings, judged = evaluate(context(healthy_snapshot()))
    assert findings == [] and judged == ALL_NAMES - MEASURED
    snap = healthy_snapshot()
    snap.units = [*snap.units, unit("worker.service", "activating", "auto-restart")]
    snap.restarts = {**snap.restarts, "worker.service": 8}
    findings, judged = evaluate(context(snap))
    assert [f.rule for f in findings] == ["crash_loop"] and "crash_loop" not in judged
    # an earlier look whose restart counts were not read is no earlier look for it
    earlier = healthy_snapshot(taken_at=NOW - 300)
    earlier.restarts = None
    assert "crash_loop" not in evaluate(context(healthy_snapshot(), previous=earlier))[1]


def test_a_burst_window_seen_in_part_is_not_judged():
    window = 300.0
    for covered, judges in ((0.0, False), (window - 1, False), (window, True), (None, True)):
        ctx = RuleContext(healthy_snapshot(), previous=healthy_snapshot(taken_at=NOW - 300),
                          window_covered=covered)
        assert ("journal_error_burst" in evaluate(ctx)[1]) is judges, covered


def test_every_rule_fires_on_a_snapshot_with_every_fault():
    previous = healthy_snapshot(taken_at=NOW - 300)
    previous.units = [*previous.units, unit("worker.service")]
    previous.restarts = {**previous.restarts, "worker.service": 3}
    snap = healthy_snapshot()
    snap.units = [
        *snap.units,
        unit("webapp.service", "failed", "failed"),
        unit("worker.service", "activating", "auto-restart"),
        unit("typo.service", "inactive", "dead", load="bad-setting"),
    ]
    snap.restarts = {**snap.restarts, "worker.service": 8}
    snap.mounts = [Mount("/dev/vda", "ext4", "/", 1000, 990, 10, 1000, 990,
                         view_read_only=False),
                   mount("/srv", read_only=True, stopped="emergency_ro")]
    snap.memory = memory(2)
    snap.swap = SwapCounters(previous.swap.pages_in + 300_000, previous.swap.pages_out)
    snap.load = Load(30.0, 25.0, 20.0)
    snap.processes = [Process(666, "bob", 99.0, 1.0, 1000, 3600, 3564, "/usr/bin/yes")]
    snap.journal = [entry(f"error {i}", 3, unit="nginx.service", n=i) for i in range(25)]
    snap.service_results = {"webapp.service": ServiceResult("core-dump", "dumped", 11, 4711)}
    snap.zombies = [ZombieParent(900, 40, "lazy parent", "reaper.service")]
    snap.certificates = [certificate("/etc/ssl/web.pem", days_left=-2)]
    snap.reboot = [BootChange("packages", "", "linux-image-6.1.0-28-amd64")]
    snap.needs_reload = frozenset({"webapp.service"})
    snap.oom_kills = {**previous.oom_kills, "postgresql.service": 3}
    snap.clock_sync = [ClockSync("systemd-timesyncd", None, NOW - 86_400)]
    snap.md_arrays = [MdArray("md0", "raid1", True, ("sdb1",), ("sda1",), (), 2, 1, "_U", "",
                              "")]
    snap.zfs_pools = {"tank": "DEGRADED"}
    snap.kernel_taint = 128
    snap.fs_errors = [FilesystemErrors("ext4", "vda", "/", 2)]
    snap.service_tasks = {"nginx.service": TaskCount(4900, 4915)}
    snap.kernel_limits = dataclasses.replace(snap.kernel_limits, files_open=9_000, files_max=10_000)

    findings, judged = evaluate(context(snap, previous=previous))

    assert judged == ALL_NAMES
    # every rule but host_unreachable: a host with all these faults answered, after all
    assert sorted({f.rule for f in findings}) == sorted(ALL_NAMES - {"host_unreachable"})
    assert all(f.host == "web1" for f in findings)


def test_rule_whose_section_failed_is_skipped_and_not_judged():
    snap = healthy_snapshot()
    snap.units = None
    snap.errors["units"] = "systemctl list-units: Failed to connect to bus"

    findings, judged = evaluate(context(snap, previous=healthy_snapshot(taken_at=NOW - 300)))

    assert findings == []
    assert judged == ALL_NAMES - {"failed_unit", "crash_loop", "unit_load_error"}
    assert snap.errors == {"units": "systemctl list-units: Failed to connect to bus"}


def test_without_restart_counts_crash_loop_has_not_judged_and_the_unit_rules_have():
    # `systemctl show` failed, `systemctl list-units` did not
    snap = healthy_snapshot()
    snap.units = [*snap.units, unit("worker.service", "activating", "auto-restart")]
    snap.restarts = None
    snap.errors["restarts"] = "systemctl show: Failed to get properties: Access denied"

    findings, judged = evaluate(context(snap, previous=healthy_snapshot(taken_at=NOW - 300)))

    # the same `systemctl show` tells how each service ended, and which need a reload: no
    # core dump and no stale unit definition is judged either
    assert judged == ALL_NAMES - {"crash_loop", "core_dump", "unit_needs_reload"}
    assert findings == []


def test_section_recorded_as_failed_is_skipped_even_if_partly_filled():
    snap = healthy_snapshot()
    snap.units = [unit("webapp.service", "failed", "failed")]
    snap.errors["units"] = "timed out"

    findings, judged = evaluate(context(snap))

    assert "failed_unit" not in judged
    assert findings == []


def test_rule_needing_two_sections_is_skipped_when_one_failed():
    snap = healthy_snapshot()
    snap.cpu = None
    snap.errors["cpu"] = "cannot read /proc/stat"
    snap.load = Load(100.0, 100.0, 100.0)

    findings, judged = evaluate(context(snap))

    assert "load_per_core" not in judged
    assert findings == []


def test_rule_that_raises_is_reported_and_the_others_still_run():
    snap = healthy_snapshot()

    ctx = context(snap)
    findings, judged = evaluate(ctx, rules=(Boom(), Always()))

    assert judged == {"always"}
    assert [(f.rule, f.subject, f.summary) for f in findings] == [
        ("always", "thing", "always there")
    ]
    assert snap.errors == {"rule:boom": "RuntimeError: bad arithmetic"}
    # what raised, for the checker to log its traceback
    assert isinstance(ctx.raised["boom"], RuntimeError)
