"""A kernel that recorded trouble in its taint flags, read by a real check of the fault lab
(one remote script, as an SSH host is checked, or command by command): clean, no finding; an
oops, critical; clean again after a boot, resolved. In a container (the lab, to its systemd)
the flags are its host's kernel's: read, not judged.

This machine's kernel is clean and must stay so (a taint flag is cleared by a reboot only):
the check runs in a view of the lab whose /proc/sys/kernel/tainted is a file the test writes
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

TAINTED = "sys/kernel/tainted"


@pytest.fixture
def view(sandbox: Sandbox) -> Iterator[ProcView]:
    with proc_view(sandbox, (TAINTED,)) as view:
        yield view


def _look(collector: Collector, settings: Settings) -> list[Finding]:
    snapshot = asyncio.run(collector.collect())
    assert "kernel_taint" not in snapshot.errors, snapshot.errors
    findings, judged = evaluate(RuleContext(snapshot, settings.thresholds))
    assert "kernel_tainted" in judged  # nothing found is a verdict: an incident resolves
    return [f for f in findings if f.rule == "kernel_tainted"]


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
@pytest.mark.usefixtures("host_of_its_own")
def test_an_oops_the_kernel_recorded_is_critical_until_a_boot_clears_its_flag(
        view: ProcView, lab_settings: Settings, one_round_trip: bool) -> None:
    collector = Collector(InView(view, one_round_trip), lab_settings)
    # the hot path: one tail reads it with the other /proc files, no process of its own
    assert f"/proc/{TAINTED}" in collector.script().tailed_files
    view.write(TAINTED, "0\n")
    assert _look(collector, lab_settings) == []

    view.write(TAINTED, f"{128 | 4096}\n")  # an oops, beside an out-of-tree module
    [found] = _look(collector, lab_settings)
    assert (found.subject, found.severity) == ("oops", Severity.CRITICAL)
    assert "the kernel oopsed or hit a BUG" in found.summary
    assert "stays set until the next boot" in found.summary
    assert found.evidence == ("/proc/sys/kernel/tainted = 4224: D (oops or BUG), "
                              "O (out-of-tree module)",)

    view.write(TAINTED, "0\n")  # booted again
    assert _look(collector, lab_settings) == []


def test_in_a_container_the_hosts_kernel_flags_are_read_but_not_judged(
        view: ProcView, lab_settings: Settings) -> None:
    """An LXC container's /proc/sys/kernel/tainted is its host's: the host's own check
    reports an oops once, not once a container."""
    view.write(TAINTED, "128\n")
    snapshot = asyncio.run(Collector(InView(view, True), lab_settings).collect())
    assert (snapshot.container, snapshot.kernel_taint) == (LAB_CONTAINER, 128)
    findings, judged = evaluate(RuleContext(snapshot, lab_settings.thresholds))
    assert "kernel_tainted" not in judged
    assert not [f for f in findings if f.rule == "kernel_tainted"]
