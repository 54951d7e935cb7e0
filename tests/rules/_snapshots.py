"""Builders of crafted snapshots for the rule tests: a healthy host, then one fault at a time."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ai_sysadmin.config import Settings, Thresholds
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.findings import Finding
from ai_sysadmin.monitor.rules import RuleContext
from ai_sysadmin.monitor.snapshot import (
    Certificate,
    ClockSync,
    CpuTimes,
    FilesystemErrors,
    JournalEntry,
    KernelLimits,
    Load,
    Memory,
    Mount,
    Process,
    Snapshot,
    SwapCounters,
    TaskCount,
    Unit,
)
from ai_sysadmin.orchestrator.checker import CheckReport, HostChecker
from ai_sysadmin.store import Database, Incident, IncidentStore

HOST = "web1"
NOW = 1_750_000_000.0
GIB = 1024**3


def unit(
    name: str,
    active: str = "active",
    sub: str = "running",
    load: str = "loaded",
) -> Unit:
    return Unit(name, load, active, sub, f"{name} description")


def healthy_units() -> list[Unit]:
    return [
        unit("sshd.service"),
        unit("nginx.service"),
        unit("systemd-journald.service"),
        unit("backup.service", active="inactive", sub="dead"),
        unit("home.mount", load="not-found", active="inactive", sub="dead"),
        unit("getty.target", load="masked", active="inactive", sub="dead"),
    ]


def healthy_restarts() -> dict[str, int]:
    """NRestarts of the healthy services: each started once, never restarted."""
    return {u.name: 0 for u in healthy_units() if u.name.endswith(".service")}


def mount(
    target: str = "/",
    used_percent: float = 40.0,
    inodes_percent: float = 10.0,
    size: int = 100 * GIB,
    inodes: int = 1_000_000,
    fstype: str = "ext4",
    source: str | None = None,
    read_only: bool = False,
    view_read_only: bool | None = False,
    stopped: str = "",
) -> Mount:
    """A mount whose used/(used+avail) and inode use are exactly the given shares, its flags
    read from the mount table (``view_read_only`` None: the table was not read). Each mount
    point has a device of its own unless ``source`` says otherwise: mounts of one device
    are one file system (``distinct_filesystems``)."""
    used = int(size * used_percent / 100)
    return Mount(
        source=source if source is not None else f"/dev/disk/of{target}",
        fstype=fstype,
        target=target,
        size_bytes=size,
        used_bytes=used,
        avail_bytes=size - used,
        inodes=inodes,
        inodes_used=int(inodes * inodes_percent / 100),
        read_only=read_only,
        view_read_only=view_read_only,
        stopped=stopped,
    )


def memory(available_percent: float = 50.0, psi: float | None = 0.0) -> Memory:
    total = 16_000_000
    return Memory(
        total_kb=total,
        available_kb=int(total * available_percent / 100),
        swap_total_kb=4_000_000,
        swap_free_kb=4_000_000,
        psi_some_avg60=psi,
    )


def entry(
    message: str,
    priority: int = 3,
    unit: str | None = None,
    identifier: str | None = None,
    age: float = 10.0,
    n: int = 0,
    pid: int = 1234,
) -> JournalEntry:
    """A journal entry ``age`` seconds before :data:`NOW`; ``pid`` 1: systemd's own."""
    return JournalEntry(
        cursor=f"s=abc;i={n:x}",
        timestamp=NOW - age,
        priority=priority,
        message=message,
        unit=unit,
        identifier=identifier,
        pid=pid,
    )


def proc(
    pid: int = 4242,
    command: str = "/usr/bin/stress --cpu 1",
    cpu_percent: float = 1.0,
    elapsed: int = 3600,
    cpu_seconds: int = 36,
    user: str = "alice",
    rss_kb: int = 20_000,
    unit: str | None = None,
) -> Process:
    return Process(
        pid=pid,
        user=user,
        cpu_percent=cpu_percent,
        mem_percent=0.1,
        rss_kb=rss_kb,
        elapsed_seconds=elapsed,
        cpu_seconds=cpu_seconds,
        command=command,
        unit=unit,
    )


def snapshot(taken_at: float = NOW, **sections: object) -> Snapshot:
    """A snapshot of :data:`HOST` holding only the given sections."""
    return Snapshot(host=HOST, taken_at=taken_at, **sections)  # type: ignore[arg-type]


def healthy_snapshot(taken_at: float = NOW) -> Snapshot:
    """Every section collected, nothing wrong."""
    return Snapshot(
        host=HOST,
        taken_at=taken_at,
        cpu=CpuTimes(busy=1_000, total=100_000, cores=4, boot_time=int(taken_at) - 86_400),
        memory=memory(),
        swap=SwapCounters(pages_in=1_000, pages_out=2_000),
        load=Load(0.5, 0.4, 0.3, threads=412),
        uptime_seconds=86_400.0,
        mounts=[mount("/"), mount("/boot", fstype="vfat", inodes=0, inodes_percent=0)],
        systemd_running=True,
        units=healthy_units(),
        unit_files={"nginx.service": "enabled", "getty@.service": "static",
                     "backup.service": "disabled", "getty.target": "masked"},
        restarts=healthy_restarts(),
        service_results={},
        needs_reload=frozenset(),
        core_dumps=[],
        journal=[entry("ordinary warning", priority=4, unit="nginx.service")],
        processes=[proc(pid=1, command="/sbin/init", cpu_percent=0.1, cpu_seconds=5)],
        zombies=[],
        certificates=[certificate("/etc/ssl/web.pem", days_left=90)],
        reboot=[],
        nixos_boot=[],
        oom_kills={"nginx.service": 0, "postgresql.service": 2},
        # systemd's default TasksMax (15 % of 32768), and a service without a limit
        service_tasks={"nginx.service": TaskCount(9, 4915), "sshd.service": TaskCount(1, None)},
        kernel_limits=KernelLimits(pid_max=4_194_304, threads_max=127_431, files_open=4_128,
                                   files_max=9_223_372_036_854_775_807),
        clock_sync=[ClockSync("systemd-timesyncd", None, taken_at - 600)],
        md_arrays=[],
        zfs_pools={"rpool": "ONLINE"},
        # a proprietary, out-of-tree and unsigned module (NVIDIA's): the admin's choice
        kernel_taint=1 | 4096 | 8192,
        fs_errors=[FilesystemErrors("ext4", "vda", "/", 0)],
        container="",
    )


def certificate(path: str, days_left: float, subject: str = "CN = web1.example.org",
                taken_at: float = NOW) -> Certificate:
    """A readable certificate that ends ``days_left`` days after ``taken_at``."""
    return Certificate(path, taken_at + days_left * 86_400, f"{days_left:g} days on", subject)


def context(
    snap: Snapshot,
    previous: Snapshot | None = None,
    thresholds: Thresholds | None = None,
    journal_window: Sequence[JournalEntry] | None = None,
    baseline: Snapshot | None = None,
) -> RuleContext:
    return RuleContext(
        snapshot=snap,
        thresholds=thresholds or Thresholds(),
        previous=previous,
        journal_window=journal_window,
        baseline=baseline,
    )


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


class _Crafted(Collector):
    """A collection that answers the snapshot a test crafted (:attr:`next`)."""

    next: Snapshot | None = None

    async def collect(self, *args: Any, **kwargs: Any) -> Snapshot:
        assert self.next is not None
        return self.next


class Checks:
    """The real checker of :data:`HOST` and its real store (SQLite under ``tmp_path``), each
    check answered by a snapshot the test crafts: what the checker remembers from one look
    to the next (what it found, rises, rates) and what becomes of the incidents (opened,
    resolved, reopened) are what a daemon's checks would make of those looks.

    :meth:`look` crafts the ``n``-th of looks ``step`` seconds apart, a day ago (a day of
    looks still lies in the past), on the host's clock (its uptime) as on this machine's."""

    def __init__(self, tmp_path: Path, step: float = 60.0, **thresholds: Any) -> None:
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state", thresholds=thresholds)
        self.store = IncidentStore(Database(settings.db_path))
        self.checker = HostChecker(LocalTransport(HOST), settings, self.store)
        self.collector = _Crafted(self.checker.transport, settings)
        self.checker.collector = self.collector
        self.step = step
        self.start = time.time() - 86_400

    def look(self, n: int, **sections: Any) -> Snapshot:
        """A healthy look ``n`` steps after the first, but for ``sections``."""
        at = self.start + n * self.step
        snap = dataclasses.replace(healthy_snapshot(at), uptime_seconds=86_400.0 + n * self.step,
                                   certificates=[])  # a certificate of NOW's would expire
        return dataclasses.replace(snap, **sections)

    def check(self, snap: Snapshot, reason: str = "interval") -> CheckReport:
        self.collector.next = snap
        return asyncio.run(self.checker.check(reason))

    def incidents(self, rule: str) -> list[Incident]:
        return [i for i in self.store.incidents(None) if i.rule == rule]

    def states(self, rule: str) -> dict[str, str]:
        """Subject -> state of each of ``rule``'s incidents."""
        return {i.subject: i.state for i in self.incidents(rule)}

    def history(self, rule: str, subject: str) -> list[str | None]:
        """The states the incident of ``rule`` on ``subject`` went through, in order."""
        [incident] = [i for i in self.incidents(rule) if i.subject == subject]
        return [e.to_state for e in self.store.get(incident.id, history=None).events]
