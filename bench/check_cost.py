"""Cost of one local check: CPU seconds (this process + its commands) and peak RSS; RSS of the
idle daemon. Baselines in the same run: the bare commands alone (no parsing, no store), and an
idle Python interpreter.

    .venv/bin/python bench/check_cost.py [--checks 20]

Targets (issue 2): < 50 ms CPU per check, < 120 MB RSS for the idle daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.orchestrator.checker import HostChecker
from ai_sysadmin.store import Database, IncidentStore

BIN = Path(sys.executable).parent / "ai-sysadmin"
#: what one check runs, for the "bare commands" baseline
BARE = [
    ["df", "-B1", "--output=source,fstype,size,used,avail,itotal,iused,target"],
    ["ps", "-eo", "pid=,user:32=,pcpu=,pmem=,rss=,etimes=,times=,args=", "--sort=-pcpu"],
    ["systemctl", "list-units", "--all", "--output=json", "--no-pager"],
    ["systemctl", "show", "*.service", "--property=Id,NRestarts", "--no-pager"],
    ["journalctl", "--no-pager", "--output=json", "--priority=warning", "--boot", "--lines=200"],
]


def cpu_now() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure_checks(count: int, state: Path) -> tuple[float, float]:
    settings = Settings(ai_name="bench", state_dir=state)
    store = IncidentStore(Database(settings.db_path))
    checker = HostChecker(LocalTransport("bench"), settings, store)

    async def many() -> float:
        await checker.check("warm-up")
        start = cpu_now()
        for _ in range(count):
            await checker.check("bench")
        return (cpu_now() - start) / count

    per_check = asyncio.run(many())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return per_check, peak_mb


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


def measure_bare(count: int) -> float:
    start = cpu_now()
    for _ in range(count):
        for argv in BARE:
            subprocess.run(argv, capture_output=True, check=False)
    return (cpu_now() - start) / count


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
        bare = measure_bare(args.checks)
        per_check, peak = measure_checks(args.checks, Path(tmp) / "a")
        daemon_rss, python_rss = idle_daemon_rss(Path(tmp) / "b")
        lab = measure_lab_checks(args.checks, Path(tmp) / "c")
    print(f"one local check: {per_check * 1000:.1f} ms CPU (process + commands), "
          f"target 50 ms -> {per_check / 0.050:.2f}x of target")
    print(f"bare commands alone (baseline): {bare * 1000:.1f} ms CPU -> check/bare = "
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
