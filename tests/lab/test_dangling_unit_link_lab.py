"""A unit file that is a link to a missing file, against one systemd cannot parse, in a real
systemd 252: list-unit-files calls both ``bad``; systemd, asked about each, tells them apart."""

from __future__ import annotations

import asyncio
import time

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.monitor.rules import RuleContext, evaluate
from ai_sysadmin.monitor.snapshot import Snapshot

pytestmark = pytest.mark.lab

UNITS = "/etc/systemd/system"


class Scripted(SandboxTransport):
    """The lab, collected by one remote script (as an SSH host is) or command by command."""

    def __init__(self, sandbox: Sandbox, one_round_trip: bool) -> None:
        super().__init__(sandbox)
        self.one_round_trip = one_round_trip


def unit_findings(snapshot: Snapshot, settings: Settings) -> dict[str, Finding]:
    findings, judged = evaluate(RuleContext(snapshot, settings.thresholds))
    assert "unit_load_error" in judged
    return {f.subject: f for f in findings if f.rule == "unit_load_error"}


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_a_link_to_a_missing_file_is_a_note_and_a_broken_file_stays_critical(
    sandbox: Sandbox, lab_settings: Settings, one_round_trip: bool
) -> None:
    tag = "script" if one_round_trip else "command"
    gone, template, typo = f"gone-{tag}.service", f"gone-{tag}@.service", f"typo-{tag}.service"
    sandbox.exec(["ln", "-s", f"/nonexistent/{gone}", f"{UNITS}/{gone}"], check=True)
    sandbox.exec(["ln", "-s", f"/nonexistent/{template}", f"{UNITS}/{template}"], check=True)
    sandbox.write_file(f"{UNITS}/{typo}", "[Unit\nDescription=a header without its bracket\n")
    # an enablement link whose unit file was removed: list-unit-files does not list it, and
    # list-units calls it not-found (nothing to report either)
    left = f"left-{tag}.service"
    sandbox.exec(["mkdir", "-p", f"{UNITS}/multi-user.target.wants"], check=True)
    sandbox.exec(["ln", "-s", f"{UNITS}/{left}", f"{UNITS}/multi-user.target.wants/{left}"],
                 check=True)
    sandbox.exec(["systemctl", "daemon-reload"], check=True)
    collector = Collector(Scripted(sandbox, one_round_trip), lab_settings)
    try:
        found = _until_quoted(collector, lab_settings, typo)
    finally:
        sandbox.exec(["rm", "-f", f"{UNITS}/{gone}", f"{UNITS}/{template}", f"{UNITS}/{typo}",
                      f"{UNITS}/multi-user.target.wants/{left}"])
        sandbox.exec(["systemctl", "daemon-reload"])
    assert set(found) == {gone, template, typo}
    for link in (gone, template):
        assert found[link].severity is Severity.INFO
        assert found[link].summary == f"the unit file of {link} is a link to a missing file"
        assert "LoadState=not-found" in found[link].evidence[0]
    assert found[typo].severity is Severity.CRITICAL
    assert found[typo].summary == f"the unit file of {typo} does not load (bad)"


def _until_quoted(collector: Collector, settings: Settings, typo: str) -> dict[str, Finding]:
    """The unit findings of a check whose journal holds systemd's parse warning about
    ``typo``: systemd logs it as it works out the file's state for the check, and journald
    writes it a moment later (a check reads the journal meanwhile)."""
    deadline = time.monotonic() + 30
    while True:
        snapshot = asyncio.run(collector.collect())
        assert snapshot.errors == {}
        found = unit_findings(snapshot, settings)
        if typo in found and any("Invalid section header" in line
                                 for line in found[typo].evidence):
            return found
        assert time.monotonic() < deadline, "systemd's parse warning never came as evidence"


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_a_link_to_a_missing_file_lets_the_daemons_checks_keep_the_unit_files(
    sandbox: Sandbox, lab_settings: Settings, one_round_trip: bool
) -> None:
    """list-unit-files costs systemd a stat and a read of every unit file: a reading that
    shows a file systemd cannot parse is read again by every check (so that its mending is
    seen at once); one that shows only a link to a missing file serves the daemon's checks
    for ``unit_files_every``, as a clean one does."""
    tag = "script" if one_round_trip else "command"
    reads = f"/run/unit-file-reads-dangling-{tag}"
    counted = f"/usr/local/bin/counted-systemctl-dangling-{tag}"
    sandbox.write_file(counted, f'#!/bin/sh\n[ "$1" = list-unit-files ] && echo read >> {reads}'
                                '\nexec systemctl "$@"\n', 0o755)
    link = f"{UNITS}/alias-{tag}.service"
    sandbox.exec(["ln", "-s", f"/usr/lib/systemd/system/removed-{tag}.service", link],
                 check=True)
    settings = lab_settings.model_copy(update={
        "unit_files_every": 3600,
        "programs": lab_settings.programs.model_copy(update={"systemctl": counted})})
    collector = Collector(Scripted(sandbox, one_round_trip), settings)
    try:
        checks = [asyncio.run(collector.collect(keep=True)) for _ in range(3)]
    finally:
        sandbox.exec(["rm", "-f", link])
    read = sandbox.exec(["sh", "-c", f"cat {reads} 2>/dev/null; true"]).stdout.split()
    assert len(read) == 1
    for check in checks:
        assert check.errors == {}
        found = unit_findings(check, lab_settings)
        assert found[f"alias-{tag}.service"].severity is Severity.INFO
