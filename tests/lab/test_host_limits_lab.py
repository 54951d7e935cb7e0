"""The host's threads and file handles against the kernel's limits, read by a real check of
the fault lab (one remote script, as an SSH host is checked, or command by command) from the
one tail of the /proc files: a host near them is found, a well one is not. In a container
(the lab, to its systemd) the numbers are its host kernel's: read, not judged.

This machine must not be brought near its limits: the check runs in a view of the lab whose
/proc/loadavg, /proc/sys/kernel/pid_max and /proc/sys/fs/file-nr are files the test writes
(see :mod:`.proc_view`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.monitor.rules import RuleContext, evaluate

from .conftest import LAB_CONTAINER
from .proc_view import InView, ProcView, proc_view

pytestmark = pytest.mark.lab

LOADAVG, PID_MAX, FILE_NR = "loadavg", "sys/kernel/pid_max", "sys/fs/file-nr"
RULE = "host_limits_exhausted"


@pytest.fixture
def view(sandbox: Sandbox) -> Iterator[ProcView]:
    with proc_view(sandbox, (LOADAVG, PID_MAX, FILE_NR)) as view:
        view.write(LOADAVG, "0.20 0.10 0.05 1/300 4242\n")
        view.write(PID_MAX, "32768\n")
        view.write(FILE_NR, "2000\t0\t100000\n")
        yield view


def _look(collector: Collector, settings: Settings) -> list[Finding]:
    snapshot = asyncio.run(collector.collect())
    assert "kernel_limits" not in snapshot.errors, snapshot.errors
    findings, judged = evaluate(RuleContext(snapshot, settings.thresholds))
    assert RULE in judged  # nothing found is a verdict: an incident resolves
    return [f for f in findings if f.rule == RULE]


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
@pytest.mark.usefixtures("host_of_its_own")
def test_a_host_near_its_thread_or_file_handle_limit_is_found_until_it_is_not(
        view: ProcView, lab_settings: Settings, one_round_trip: bool) -> None:
    collector = Collector(InView(view, one_round_trip), lab_settings)
    # the hot path: one tail reads them with the other /proc files, no process of their own
    assert {f"/proc/{path}" for path in (LOADAVG, PID_MAX, FILE_NR)} <= set(
        collector.script().tailed_files)
    assert _look(collector, lab_settings) == []

    view.write(LOADAVG, "9.00 8.00 7.00 12/31500 4242\n")
    view.write(FILE_NR, "88000\t0\t100000\n")
    found = {f.subject: f for f in _look(collector, lab_settings)}
    assert {s: f.severity for s, f in found.items()} == {
        "threads": Severity.CRITICAL, "file-handles": Severity.WARNING}
    assert "31500 of the 32768 threads the kernel allows (kernel.pid_max)" in (
        found["threads"].summary)
    assert found["file-handles"].evidence == ("/proc/sys/fs/file-nr: 88000 allocated of "
                                              "100000",)

    view.write(LOADAVG, "0.20 0.10 0.05 1/300 4242\n")
    view.write(FILE_NR, "2000\t0\t100000\n")
    assert _look(collector, lab_settings) == []


def test_in_a_container_the_hosts_numbers_are_read_but_not_judged(
        view: ProcView, lab_settings: Settings) -> None:
    """An LXC container's /proc/loadavg and /proc/sys are its host's: the host's own check
    reports them once, not once a container."""
    view.write(LOADAVG, "9.00 8.00 7.00 12/32000 4242\n")
    view.write(FILE_NR, "99000\t0\t100000\n")
    snapshot = asyncio.run(Collector(InView(view, True), lab_settings).collect())
    assert snapshot.container == LAB_CONTAINER
    assert snapshot.load is not None and snapshot.load.threads == 32000
    assert snapshot.kernel_limits is not None
    assert (snapshot.kernel_limits.pid_max, snapshot.kernel_limits.files_open) == (32768, 99000)
    findings, judged = evaluate(RuleContext(snapshot, lab_settings.thresholds))
    assert RULE not in judged
    assert not [f for f in findings if f.rule == RULE]
