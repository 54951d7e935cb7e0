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
