"""Degraded storage redundancy read by a real check of the fault lab (one remote script, as
an SSH host is checked, or command by command): an md array that lost a member in
/proc/mdstat, a ZFS pool DEGRADED in /proc/spl/kstat/zfs/POOL/state. Found critical, and
gone once the kernel's report is healthy again; a host with neither is never judged.

This machine has no md driver and no ZFS, and a procfs takes no new file nor a mount on a
path it lacks (nor is it an overlay's layer). So the check runs in a view of the lab: a
process in a mount namespace of its own whose /proc is a tmpfs linking every entry of the
lab's procfs, plus mdstat and spl/ from files the test writes, as a kernel with md and ZFS
would show them. The lab's systemd and this machine's /proc never see it; the view ends
with its process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.monitor.rules import RuleContext, evaluate

pytestmark = pytest.mark.lab

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "parsers"
#: what the view's /proc/mdstat and /proc/spl lead to, in the lab's /run
STORAGE = "/run/storage"
RULES = ("md_raid_degraded", "zfs_pool_unhealthy")
#: the lab's procfs, recursively (its read-only /proc/sys along), kept under a tmpfs /proc
#: that links all of it and adds the storage reports; says its pid, then waits for its stdin
#: to close
_VIEW = (f"mkdir -p /run/storage-proc {STORAGE} && mount --rbind /proc /run/storage-proc && "
         "mount -t tmpfs -o mode=555 storageproc /proc && "
         'for e in /run/storage-proc/*; do ln -s "$e" "/proc/${e##*/}"; done && '
         f"ln -s {STORAGE}/mdstat /proc/mdstat && ln -s {STORAGE}/spl /proc/spl && "
         "echo $$ && exec cat >/dev/null")


def mdstat(case: str) -> str:
    return str(json.loads((FIXTURES / f"mdstat_{case}.json").read_text(encoding="utf-8"))["raw"])


class InView(SandboxTransport):
    """Every command in the lab, in the view's mount namespace."""

    def __init__(self, sandbox: Sandbox, view_pid: str, one_round_trip: bool) -> None:
        super().__init__(sandbox)
        self.view_pid = view_pid
        self.one_round_trip = one_round_trip

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        return super().wrap(("nsenter", "-t", self.view_pid, "-m", *argv))


@pytest.fixture
def view(sandbox: Sandbox) -> Iterator[str]:
    """The view's process, by its pid in the lab; its namespace ends with it."""
    proc = subprocess.Popen(
        sandbox.nsenter_argv(["unshare", "-m", "--propagation", "private", "sh", "-c", _VIEW]),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        pid = proc.stdout.readline().strip()  # the script's first and only line, or EOF
        assert pid.isdigit(), f"the view did not start (exit {proc.poll()})"
        yield pid
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        sandbox.exec(["rm", "-rf", STORAGE])


def _look(collector: Collector, settings: Settings) -> tuple[list[Finding], set[str]]:
    snapshot = asyncio.run(collector.collect())
    assert "md_arrays" not in snapshot.errors and "zfs_pools" not in snapshot.errors, \
        snapshot.errors
    findings, judged = evaluate(RuleContext(snapshot, settings.thresholds))
    return [f for f in findings if f.rule in RULES], judged.intersection(RULES)


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_a_degraded_md_array_and_zfs_pool_are_critical_until_the_kernel_reports_them_whole(
        sandbox: Sandbox, view: str, lab_settings: Settings, one_round_trip: bool) -> None:
    collector = Collector(InView(sandbox, view, one_round_trip), lab_settings)
    # no md driver, no ZFS: nothing to judge, so nothing of theirs could resolve
    assert _look(collector, lab_settings) == ([], set())

    sandbox.write_file(f"{STORAGE}/mdstat", mdstat("degraded_raid1"))
    sandbox.write_file(f"{STORAGE}/spl/kstat/zfs/rpool/state", "ONLINE\n")
    sandbox.write_file(f"{STORAGE}/spl/kstat/zfs/tank/state", "DEGRADED\n")
    found, judged = _look(collector, lab_settings)
    assert judged == set(RULES)
    assert [(f.rule, f.subject, f.severity) for f in found] == [
        ("md_raid_degraded", "md0", Severity.CRITICAL),
        ("zfs_pool_unhealthy", "tank", Severity.CRITICAL)]
    assert found[0].summary == ("md array md0 (raid1) is degraded: 1 of its 2 members work "
                                "[_U]; failed: sda1; no rebuild runs")
    assert found[1].evidence == ("/proc/spl/kstat/zfs/tank/state: DEGRADED",)

    # the failed disk replaced and rebuilt, the pool resilvered
    sandbox.write_file(f"{STORAGE}/mdstat", mdstat("healthy_raid1"))
    sandbox.write_file(f"{STORAGE}/spl/kstat/zfs/tank/state", "ONLINE\n")
    assert _look(collector, lab_settings) == ([], set(RULES))
