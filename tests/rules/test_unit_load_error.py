import pytest

from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import unit_load_error
from ai_sysadmin.monitor.rules.unit_load_error import UnitLoadError

from ._snapshots import context, entry, healthy_snapshot, healthy_units, only, snapshot, unit

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


def test_an_unreferenced_unit_file_systemd_cannot_parse_is_a_finding():
    snap = healthy_snapshot()
    snap.unit_files = {**(snap.unit_files or {}), "orphan.service": "bad"}
    typo = entry("/etc/systemd/system/orphan.service:1: Invalid section header '[Unit'",
                 priority=4, unit="init.scope", identifier="systemd")

    finding = only(RULE.evaluate(context(snap, journal_window=[typo])))

    assert finding.subject == "orphan.service"
    assert finding.summary == "the unit file of orphan.service does not load (bad)"
    assert finding.evidence == (
        "orphan.service: unit file state bad (not loaded)",
        "systemd: /etc/systemd/system/orphan.service:1: Invalid section header '[Unit'",
    )


def test_a_reload_full_of_warnings_quotes_the_last_three_of_each_file_and_those_only(
        monkeypatch):
    # systemd warns of each bad line of each file at every reload: 4000 warnings of 200
    # files, each finding quotes its file's last three, and no other warning is masked
    files = {f"u{n}.service": "bad" for n in range(200)}
    warnings = [entry(f"/etc/systemd/system/u{n % 200}.service:{n // 200 + 1}: Unknown key "
                      f"'K{n}' in section 'Service', ignoring.", priority=4, unit="init.scope",
                      identifier="systemd", n=n) for n in range(4000)]
    quoted = []
    monkeypatch.setattr(unit_load_error, "quote",
                        lambda text, limit: quoted.append(text) or text[:limit])

    findings = RULE.evaluate(context(snapshot(units=[], unit_files=files),
                                     journal_window=warnings))

    evidence = {f.subject: f.evidence for f in findings}
    assert len(evidence) == 200
    assert evidence["u7.service"] == ("u7.service: unit file state bad (not loaded)", *(
        f"systemd: /etc/systemd/system/u7.service:{line}: Unknown key 'K{(line - 1) * 200 + 7}'"
        " in section 'Service', ignoring." for line in (18, 19, 20)))
    assert len(quoted) == 200 * 3



def test_a_drop_ins_warning_is_the_evidence_of_the_unit_it_configures():
    """``systemctl edit nginx`` writes a drop-in; systemd names that file in its warning."""
    snap = snapshot(units=[unit("nginx.service", "inactive", "dead", load="bad-setting")],
                    unit_files={})
    typo = entry("/etc/systemd/system/nginx.service.d/override.conf:3: Invalid ExecStart= "
                 "line, ignoring: Neither a valid executable name nor an absolute path: ngnix",
                 priority=4, unit="init.scope", identifier="systemd")
    assert only(RULE.evaluate(context(snap, journal_window=[typo]))).evidence == (
        "nginx.service: LoadState=bad-setting active=inactive",
        "systemd: /etc/systemd/system/nginx.service.d/override.conf:3: Invalid ExecStart= "
        "line, ignoring: Neither a valid executable name nor an absolute path: ngnix")


def test_a_templates_warning_is_the_evidence_of_each_broken_instance_of_it():
    """An instance is loaded from its template's file, which systemd names in its warning;
    a unit of another template, or none, is not said to be broken by it."""
    broken = [unit(name, "inactive", "dead", load="bad-setting")
              for name in ("getty@tty7.service", "getty@tty8.service",
                           "serial-getty@ttyS0.service")]
    template = entry("/etc/systemd/system/getty@.service:12: Invalid ExecStart= line, "
                     "ignoring: Neither a valid executable name nor an absolute path: agetty2",
                     priority=4, unit="init.scope", identifier="systemd", n=1)
    own = entry("/etc/systemd/system/getty@tty8.service.d/speed.conf:2: Unknown key 'Baud' "
                "in section 'Service', ignoring.",
                priority=4, unit="init.scope", identifier="systemd", n=2)
    findings = RULE.evaluate(context(snapshot(units=broken, unit_files={}),
                                     journal_window=[template, own]))
    evidence = {f.subject: f.evidence[1:] for f in findings}
    said = ("systemd: /etc/systemd/system/getty@.service:12: Invalid ExecStart= line, "
            "ignoring: Neither a valid executable name nor an absolute path: agetty2")
    assert evidence == {
        "getty@tty7.service": (said,),
        # its template's and its own, in the journal's order
        "getty@tty8.service": (said, "systemd: /etc/systemd/system/getty@tty8.service.d/"
                                     "speed.conf:2: Unknown key 'Baud' in section 'Service', "
                                     "ignoring."),
        "serial-getty@ttyS0.service": (),
    }


def test_a_loaded_broken_unit_is_reported_once():
    snap = snapshot(units=[unit("typo.service", "inactive", "dead", load="bad-setting")],
                    unit_files={"typo.service": "bad"})
    assert only(RULE.evaluate(context(snap))).summary == (
        "the unit file of typo.service does not load (bad-setting)")


def test_parse_warnings_of_other_programs_are_not_evidence():
    snap = snapshot(units=[], unit_files={"orphan.service": "bad"})
    forged = entry("/etc/systemd/system/orphan.service:1: all fine", identifier="logger")
    assert only(RULE.evaluate(context(snap, journal_window=[forged]))).evidence == (
        "orphan.service: unit file state bad (not loaded)",)


def test_a_link_to_a_missing_file_is_a_note_not_a_file_that_does_not_parse():
    # list-unit-files says bad; asked, systemd finds no file for it (LoadState=not-found)
    snap = snapshot(units=healthy_units(),
                    unit_files={"nginx.service": "enabled", "gone.service": "not-found",
                                "typo.service": "bad"})

    found = {f.subject: f for f in RULE.evaluate(context(snap))}

    assert found["gone.service"].severity is Severity.INFO
    assert found["gone.service"].summary == (
        "the unit file of gone.service is a link to a missing file")
    assert found["gone.service"].evidence == (
        "gone.service: unit file state bad, yet systemd finds no file for it "
        "(LoadState=not-found): a link whose target is gone",)
    assert found["typo.service"].severity is Severity.CRITICAL
    assert found["typo.service"].summary == "the unit file of typo.service does not load (bad)"
