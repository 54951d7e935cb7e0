import dataclasses

from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.monitor.rules import RULES, RULES_BY_NAME, Rule, RuleContext, evaluate
from ai_sysadmin.monitor.snapshot import Load, Mount, Process, Snapshot, SwapCounters

from ._snapshots import NOW, context, entry, healthy_snapshot, memory, unit

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
    assert len(names) == len(set(names)) == 11
    assert {name: type(rule) for name, rule in RULES_BY_NAME.items()} == {
        r.name: type(r) for r in RULES
    }


def test_every_rule_requires_real_snapshot_sections():
    # a misspelt section would make the rule skip every snapshot, silently
    sections = {f.name for f in dataclasses.fields(Snapshot)}
    for rule in RULES:
        # only host_unreachable judges every snapshot, by design
        assert rule.requires or rule.name == "host_unreachable", rule.name
        assert set(rule.requires) <= sections, rule.name
        assert rule.description, rule.name


def test_healthy_snapshot_is_judged_by_every_rule_with_no_finding():
    findings, judged = evaluate(context(healthy_snapshot()))
    assert findings == []
    assert judged == ALL_NAMES


def test_every_rule_fires_on_a_snapshot_with_every_fault():
    previous = healthy_snapshot(taken_at=NOW - 300)
    previous.units = [*previous.units, unit("worker.service", restarts=3)]
    snap = healthy_snapshot()
    snap.units = [
        *snap.units,
        unit("webapp.service", "failed", "failed"),
        unit("worker.service", "activating", "auto-restart", restarts=8),
        unit("typo.service", "inactive", "dead", load="bad-setting"),
    ]
    snap.mounts = [Mount("/dev/vda", "ext4", "/", 1000, 990, 10, 1000, 990)]
    snap.memory = memory(2)
    snap.swap = SwapCounters(previous.swap.pages_in + 300_000, previous.swap.pages_out)
    snap.load = Load(30.0, 25.0, 20.0)
    snap.processes = [Process(666, "bob", 99.0, 1.0, 1000, 3600, 3564, "/usr/bin/yes")]
    snap.journal = [entry(f"error {i}", 3, unit="nginx.service", n=i) for i in range(25)]

    findings, judged = evaluate(context(snap, previous=previous))

    assert judged == ALL_NAMES
    # every rule but host_unreachable: a host with all these faults answered, after all
    assert sorted({f.rule for f in findings}) == sorted(ALL_NAMES - {"host_unreachable"})
    assert all(f.host == "web1" for f in findings)


def test_rule_whose_section_failed_is_skipped_and_not_judged():
    snap = healthy_snapshot()
    snap.units = None
    snap.errors["units"] = "systemctl list-units: Failed to connect to bus"

    findings, judged = evaluate(context(snap))

    assert findings == []
    assert judged == ALL_NAMES - {"failed_unit", "crash_loop", "unit_load_error"}
    assert snap.errors == {"units": "systemctl list-units: Failed to connect to bus"}


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

    findings, judged = evaluate(context(snap), rules=(Boom(), Always()))

    assert judged == {"always"}
    assert [(f.rule, f.subject, f.summary) for f in findings] == [
        ("always", "thing", "always there")
    ]
    assert snap.errors == {"rule:boom": "RuntimeError: bad arithmetic"}
