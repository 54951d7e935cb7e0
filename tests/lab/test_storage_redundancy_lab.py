"""Degraded storage redundancy read by a real check of the fault lab (one remote script, as
an SSH host is checked, or command by command): an md array that lost a member in
/proc/mdstat, a ZFS pool DEGRADED in /proc/spl/kstat/zfs/POOL/state. Found critical, and
gone once the kernel's report is healthy again; a host with neither is never judged, nor
pools one of which keeps no state there (ZFS before 0.8). The lab is a container to its
systemd, as an LXC container is to its: there neither is judged (its /proc is the host's);
elsewhere the test takes systemd's word of it away, and the lab is a host of its own.

This machine has no md driver and no ZFS: the check runs in a view of the lab whose /proc
has mdstat and spl/ from files the test writes, as a kernel with md and ZFS would show them
(see :mod:`.proc_view`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.monitor.rules import RuleContext, evaluate
from ai_sysadmin.monitor.snapshot import Snapshot

from .conftest import LAB_CONTAINER
from .proc_view import InView, ProcView, proc_view

pytestmark = pytest.mark.lab

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "parsers"
RULES = ("md_raid_degraded", "zfs_pool_unhealthy")


def mdstat(case: str) -> str:
    return str(json.loads((FIXTURES / f"mdstat_{case}.json").read_text(encoding="utf-8"))["raw"])


@pytest.fixture
def view(sandbox: Sandbox) -> Iterator[ProcView]:
    with proc_view(sandbox, ("mdstat", "spl")) as view:
        yield view


def _collect(collector: Collector) -> Snapshot:
    snapshot = asyncio.run(collector.collect())
    assert not {"md_arrays", "zfs_pools", "container"} & snapshot.errors.keys(), snapshot.errors
    return snapshot


def _look(collector: Collector, settings: Settings) -> tuple[list[Finding], set[str]]:
    findings, judged = evaluate(RuleContext(_collect(collector), settings.thresholds))
    return [f for f in findings if f.rule in RULES], judged.intersection(RULES)


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
@pytest.mark.usefixtures("host_of_its_own")
def test_a_degraded_md_array_and_zfs_pool_are_critical_until_the_kernel_reports_them_whole(
        view: ProcView, lab_settings: Settings, one_round_trip: bool) -> None:
    collector = Collector(InView(view, one_round_trip), lab_settings)
    # no md driver, no ZFS: nothing to judge, so nothing of theirs could resolve
    assert _look(collector, lab_settings) == ([], set())

    view.write("mdstat", mdstat("degraded_raid1"))
    view.write("spl/kstat/zfs/rpool/state", "ONLINE\n")
    view.write("spl/kstat/zfs/tank/state", "DEGRADED\n")
    found, judged = _look(collector, lab_settings)
    assert judged == set(RULES)
    assert [(f.rule, f.subject, f.severity) for f in found] == [
        ("md_raid_degraded", "md0", Severity.CRITICAL),
        ("zfs_pool_unhealthy", "tank", Severity.CRITICAL)]
    assert found[0].summary == ("md array md0 (raid1) is degraded: 1 of its 2 members work "
                                "[_U]; failed: sda1; no rebuild runs")
    assert found[1].evidence == ("/proc/spl/kstat/zfs/tank/state: DEGRADED",)

    # the failed disk replaced and rebuilt, the pool resilvered
    view.write("mdstat", mdstat("healthy_raid1"))
    view.write("spl/kstat/zfs/tank/state", "ONLINE\n")
    assert _look(collector, lab_settings) == ([], set(RULES))

    # a pool of ZFS before 0.8: its directory, no state: no pool is judged, and it is said
    view.write("spl/kstat/zfs/legacy/txgs", "txg birth state ndirty\n")
    view.write("spl/kstat/zfs/tank/state", "DEGRADED\n")
    assert _look(collector, lab_settings) == ([], {"md_raid_degraded"})
    assert "ZFS pool(s) legacy could not be read" in _collect(collector).notes["zfs_pools"]


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_in_a_container_the_hosts_arrays_and_pools_are_read_but_not_judged(
        view: ProcView, lab_settings: Settings, one_round_trip: bool) -> None:
    """An LXC container sees its host's /proc/mdstat and /proc/spl: the host's own check
    reports them, not one incident a container."""
    collector = Collector(InView(view, one_round_trip), lab_settings)
    view.write("mdstat", mdstat("degraded_raid1"))
    view.write("spl/kstat/zfs/tank/state", "DEGRADED\n")
    snapshot = _collect(collector)
    assert snapshot.container == LAB_CONTAINER
    assert snapshot.zfs_pools == {"tank": "DEGRADED"}
    assert [a.name for a in snapshot.md_arrays or [] if a.degraded] == ["md0"]
    findings, judged = evaluate(RuleContext(snapshot, lab_settings.thresholds))
    assert not judged.intersection(RULES) and not {f.rule for f in findings} & set(RULES)
