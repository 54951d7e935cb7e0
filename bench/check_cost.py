"""Cost of one local check: CPU seconds (this process + its commands) and peak RSS; RSS of the
idle daemon. Baselines in the same run: the check's own commands and files alone, bare (those
a check of this host read, as the transport saw them: its rows on this host, the journal from
where the last check had got to; no parsing, no store; warmed up once, as the check is), and
an idle Python interpreter.

    .venv/bin/python bench/check_cost.py [--checks 20]

Targets (issue 2): < 50 ms CPU per check, < 120 MB RSS for the idle daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import CommandResult, LocalTransport
from ai_sysadmin.orchestrator.checker import HostChecker
from ai_sysadmin.store import Database, IncidentStore

BIN = Path(sys.executable).parent / "ai-sysadmin"


@dataclass
class Reads:
    """What a check read: files, and commands (argv), in the order it asked."""

    files: list[str] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)


class Recording(LocalTransport):
    """This machine, noting what is read while :attr:`reads` is set: the baseline runs what
    a check ran, the rows its ``when`` tests and its second step chose on this host (the
    collector's list of sources is not that: a local check runs a guarded command without
    testing the guard, and its second step is not in the list)."""

    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.reads: Reads | None = None

    async def run(self, argv: Sequence[str], timeout: float = 20.0) -> CommandResult:
        if self.reads is not None:
            self.reads.commands.append(list(argv))
        return await super().run(argv, timeout)

    async def read_file(self, path: str, timeout: float = 20.0) -> str | None:
        if self.reads is not None:
            self.reads.files.append(path)
        return await super().read_file(path, timeout)


def cpu_now() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure_checks(count: int, state: Path) -> tuple[float, float, Reads, float]:
    """CPU seconds of one check, the peak RSS (MB), and what a check read with the CPU
    seconds of reading it bare."""
    settings = Settings(ai_name="bench", state_dir=state)
    store = IncidentStore(Database(settings.db_path))
    transport = Recording("bench")
    checker = HostChecker(transport, settings, store)

    async def many() -> tuple[float, Reads, float]:
        await checker.check("warm-up")
        # the second check, as those timed below: the journal read from a stored cursor
        bare = transport.reads = Reads()
        await checker.check("bench")
        transport.reads = None
        run_bare(bare)  # warmed up as the check is
        start = cpu_now()
        for _ in range(count):
            run_bare(bare)
        bare_cpu = (cpu_now() - start) / count
        start = cpu_now()
        for _ in range(count):
            await checker.check("bench")
        return (cpu_now() - start) / count, bare, bare_cpu

    per_check, bare, bare_cpu = asyncio.run(many())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return per_check, peak_mb, bare, bare_cpu


def process_cpu(pid: int) -> float:
    """CPU seconds a process has used (utime + stime of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_lab_checks(count: int, state: Path) -> dict[str, tuple[float, float]] | None:
    """The same check against real systemd 252 in the fault lab, through nsenter (root only):
    per check, this process's CPU with its commands', and systemd's (PID 1's) on its behalf;
    interval checks, and checks woken by the journal (which keep the unit files)."""
    if os.geteuid() != 0:
        return None
    from ai_sysadmin.lab import SandboxTransport
    from ai_sysadmin.lab.sandbox import Sandbox

    settings = Settings(ai_name="bench", state_dir=state)
    store = IncidentStore(Database(settings.db_path))
    with Sandbox() as sb:
        checker = HostChecker(SandboxTransport(sb), settings, store)

        async def many(reason: str) -> tuple[float, float]:
            await checker.check(reason)  # warm-up
            start, systemd = cpu_now(), process_cpu(sb.pid1)
            for _ in range(count):
                await checker.check(reason)
            return ((cpu_now() - start) / count, (process_cpu(sb.pid1) - systemd) / count)

        return {reason: asyncio.run(many(reason)) for reason in ("interval", "journal")}


def run_bare(bare: Reads) -> None:
    """What the check read, as it reads it: files here, each command its own process."""
    for path in bare.files:
        with contextlib.suppress(OSError):  # absent here, as the check finds it
            Path(path).read_bytes()
    for argv in bare.commands:
        subprocess.run(argv, capture_output=True, check=False)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def idle_daemon_rss(state: Path) -> tuple[float, float]:
    state.mkdir(parents=True)
    (state / "config.toml").write_text("")
    env = {**os.environ, "AI_SYSADMIN_STATE_DIR": str(state), "AI_SYSADMIN_CHECK_INTERVAL": "3600",
           "AI_SYSADMIN_AI_NAME": "bench", "AI_SYSADMIN_CONFIG": str(state / "config.toml")}
    daemon = subprocess.Popen([str(BIN), "run"], env=env, stderr=subprocess.DEVNULL)
    assert daemon.poll() is None
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    log = state / "logs" / "orchestrator.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (log.exists() and "checked" in log.read_text()):
        time.sleep(0.1)
    time.sleep(1.0)  # let the first pass settle before reading memory
    try:
        return rss_mb(daemon.pid), rss_mb(idle.pid)
    finally:
        daemon.send_signal(signal.SIGTERM)
        idle.kill()
        daemon.wait(10)
        idle.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        per_check, peak, bare_reads, bare = measure_checks(args.checks, Path(tmp) / "a")
        daemon_rss, python_rss = idle_daemon_rss(Path(tmp) / "b")
        lab = measure_lab_checks(args.checks, Path(tmp) / "c")
    print(f"one local check: {per_check * 1000:.1f} ms CPU (process + commands), "
          f"target 50 ms -> {per_check / 0.050:.2f}x of target")
    print(f"the check's commands and files alone, bare (baseline: {len(bare_reads.commands)} "
          f"commands, {len(bare_reads.files)} files): {bare * 1000:.1f} ms CPU -> check/bare = "
          f"{per_check / bare:.2f}x")
    if lab is not None:
        (own, systemd), (own_kept, systemd_kept) = lab["interval"], lab["journal"]
        print(f"one check of real systemd 252 in the fault lab (through nsenter): "
              f"{own * 1000:.1f} ms CPU -> {own / 0.050:.2f}x of target; systemd's own CPU "
              f"on its behalf: {systemd * 1000:.1f} ms")
        print(f"  a check woken by the journal (unit files kept): {own_kept * 1000:.1f} ms CPU, "
              f"systemd's {systemd_kept * 1000:.1f} ms -> with systemd's, "
              f"{(own_kept + systemd_kept) / (own + systemd):.2f}x of an interval check")
    print(f"peak RSS of the checking process: {peak:.1f} MB")
    print(f"idle daemon RSS: {daemon_rss:.1f} MB, target 120 MB -> {daemon_rss / 120:.2f}x; "
          f"idle python interpreter (baseline): {python_rss:.1f} MB -> "
          f"{daemon_rss / python_rss:.1f}x")


if __name__ == "__main__":
    main()
