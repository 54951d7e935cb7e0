"""A link to a missing file that takes the name of a unit file systemd would load, in a real
systemd 252: systemd stops at the link (``LoadState=not-found``, though the file is there), so
the unit is gone. A check says so as a warning naming both paths, reads it again at every
check (the daemon's too) and sees it mended as soon as the link is gone."""

from __future__ import annotations

import asyncio

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.monitor.rules import RuleContext, evaluate

pytestmark = pytest.mark.lab

LINKS = "/etc/systemd/system"
SHIPPED = "/usr/lib/systemd/system"


def unit_findings(collector: Collector, settings: Settings, keep: bool) -> dict[str, Finding]:
    snapshot = asyncio.run(collector.collect(keep=keep))
    assert snapshot.errors == {}
    findings, judged = evaluate(RuleContext(snapshot, settings.thresholds))
    assert "unit_load_error" in judged
    return {f.subject: f for f in findings if f.rule == "unit_load_error"}


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_a_link_to_a_missing_file_that_hides_a_shipped_unit_warns_with_both_paths(
    sandbox: Sandbox, lab_settings: Settings, one_round_trip: bool
) -> None:
    tag = "script" if one_round_trip else "command"
    shipped, plain = f"shipped-{tag}.service", f"nowhere-{tag}.service"
    sandbox.write_file(f"{SHIPPED}/{shipped}", "[Service]\nExecStart=/bin/true\n")
    sandbox.exec(["ln", "-s", f"/nonexistent/{shipped}", f"{LINKS}/{shipped}"], check=True)
    sandbox.exec(["ln", "-s", f"/nonexistent/{plain}", f"{LINKS}/{plain}"], check=True)
    sandbox.exec(["systemctl", "daemon-reload"], check=True)
    shown = sandbox.exec(["systemctl", "show", "-p", "LoadState", "--", shipped]).stdout
    assert shown.strip() == "LoadState=not-found"  # what systemd itself says of it
    transport = SandboxTransport(sandbox)
    transport.one_round_trip = one_round_trip
    collector = Collector(transport, lab_settings)
    try:
        # the daemon's checks keep a clean unit file listing for an hour: not this one
        for keep in (False, True):
            found = unit_findings(collector, lab_settings, keep)
            hidden = found[shipped]
            assert hidden.severity is Severity.WARNING
            assert hidden.summary == (f"{shipped} cannot load: {LINKS}/{shipped}, a link to "
                                      f"a missing file, hides {SHIPPED}/{shipped}")
            assert hidden.evidence[0].startswith(
                f"{shipped}: LoadState=not-found, though {SHIPPED}/{shipped} exists")
            # a link that hides nothing stays a note
            assert found[plain].severity is Severity.INFO
        sandbox.exec(["rm", "-f", f"{LINKS}/{shipped}"], check=True)
        sandbox.exec(["systemctl", "daemon-reload"], check=True)
        assert shipped not in unit_findings(collector, lab_settings, keep=True)
    finally:
        sandbox.exec(["rm", "-f", f"{LINKS}/{shipped}", f"{LINKS}/{plain}",
                      f"{SHIPPED}/{shipped}"])
        sandbox.exec(["systemctl", "daemon-reload"])


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_a_stray_link_systemd_passes_over_is_a_note_never_a_unit_that_does_not_load(
    sandbox: Sandbox, lab_settings: Settings, one_round_trip: bool
) -> None:
    """A relative link whose target is no unit file name: list-unit-files calls it bad, yet
    systemd passes over it and loads the shipped file of that name."""
    tag = "script" if one_round_trip else "command"
    shipped = f"passed-{tag}.service"
    sandbox.write_file(f"{SHIPPED}/{shipped}", "[Service]\nExecStart=/bin/true\n")
    sandbox.exec(["ln", "-s", f"{shipped}.gone", f"{LINKS}/{shipped}"], check=True)
    sandbox.exec(["systemctl", "daemon-reload"], check=True)
    listed = sandbox.exec(["systemctl", "list-unit-files", "--no-legend", shipped]).stdout
    assert listed.split()[:2] == [shipped, "bad"]
    shown = sandbox.exec(["systemctl", "show", "-p", "LoadState", "--", shipped]).stdout
    assert shown.strip() == "LoadState=loaded"  # what systemd itself says of it
    transport = SandboxTransport(sandbox)
    transport.one_round_trip = one_round_trip
    try:
        found = unit_findings(Collector(transport, lab_settings), lab_settings, keep=False)
        stray = found[shipped]
        assert stray.severity is Severity.INFO
        assert "does not load" not in stray.summary and "loads all the same" in stray.summary
    finally:
        sandbox.exec(["rm", "-f", f"{LINKS}/{shipped}", f"{SHIPPED}/{shipped}"])
        sandbox.exec(["systemctl", "daemon-reload"])
