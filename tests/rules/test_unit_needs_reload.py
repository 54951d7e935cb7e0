from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import evaluate
from ai_sysadmin.monitor.rules.unit_needs_reload import UnitNeedsReload

from ._snapshots import context, healthy_snapshot, only, snapshot

RULE = UnitNeedsReload()


def test_a_host_whose_units_are_loaded_as_written_has_no_finding():
    assert RULE.evaluate(context(healthy_snapshot())) == []


def test_a_service_edited_on_disk_without_a_daemon_reload_is_a_warning_naming_it():
    finding = only(RULE.evaluate(context(snapshot(needs_reload=frozenset({"webapp.service"})))))

    assert (finding.rule, finding.subject, finding.severity) == (
        "unit_needs_reload", "webapp.service", Severity.WARNING)
    assert finding.summary == (
        "the unit file of webapp.service changed on disk since systemd loaded it: systemd "
        "runs the old definition until `systemctl daemon-reload` loads the new one")
    assert finding.evidence == ("webapp.service: NeedDaemonReload=yes",)
    # a restart runs the old definition again: no automatic fix of the unit comes of it
    assert not RULE.subject_is_unit


def test_one_finding_a_service_so_each_is_its_own_incident():
    stale = frozenset({"worker@2.service", "api.service"})
    findings = RULE.evaluate(context(snapshot(needs_reload=stale)))
    assert [f.subject for f in findings] == ["api.service", "worker@2.service"]


def test_when_systemctl_show_failed_nothing_is_judged_so_no_incident_resolves():
    snap = healthy_snapshot()
    snap.restarts = None
    snap.needs_reload = None
    snap.errors["restarts"] = "systemctl show: Failed to get properties: Access denied"
    findings, judged = evaluate(context(snap))
    assert "unit_needs_reload" not in judged and findings == []


def test_a_reload_is_judged_healthy_once_systemd_says_no_service_needs_one():
    findings, judged = evaluate(context(healthy_snapshot()))
    assert "unit_needs_reload" in judged
    assert [f for f in findings if f.rule == "unit_needs_reload"] == []
