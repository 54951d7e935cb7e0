import pytest

from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules.unit_load_error import UnitLoadError

from ._snapshots import context, healthy_snapshot, healthy_units, only, snapshot, unit

RULE = UnitLoadError()


def test_healthy_units_give_no_finding():
    assert RULE.evaluate(context(healthy_snapshot())) == []


@pytest.mark.parametrize("load", ["not-found", "masked", "stub", "merged"])
def test_absent_or_masked_units_are_not_broken(load):
    snap = snapshot(units=[unit("home.mount", "inactive", "dead", load=load)])
    assert RULE.evaluate(context(snap)) == []


def test_bad_setting_is_a_critical_finding():
    broken = unit("typo.service", "inactive", "dead", load="bad-setting")
    snap = snapshot(units=[*healthy_units(), broken])

    finding = only(RULE.evaluate(context(snap)))

    assert finding.rule == "unit_load_error"
    assert finding.subject == "typo.service"
    assert finding.severity is Severity.CRITICAL
    assert finding.summary == "the unit file of typo.service does not load (bad-setting)"
    assert finding.evidence == ("typo.service: LoadState=bad-setting active=inactive",)


def test_load_error_is_a_finding():
    snap = snapshot(units=[unit("app.socket", "inactive", "dead", load="error")])
    assert only(RULE.evaluate(context(snap))).summary == (
        "the unit file of app.socket does not load (error)"
    )
