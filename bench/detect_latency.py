"""Failed unit -> incident: journal follower vs interval polling, on real systemd (fault lab).

    sudo .venv/bin/python bench/detect_latency.py [--trials 5] [--poll-interval 5]

Both modes run the same Daemon against the same lab, one after the other. The follower mode uses
the default 300 s interval (so only the follower can be that fast); the poll mode turns the
follower off and polls every --poll-interval seconds; its mean latency at the default 300 s
interval is extrapolated (the expected wait is half an interval plus one check).
Target (issue 2): under 2 s with the follower.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.lab import SandboxTransport
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.orchestrator.daemon import Daemon
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import Database, IncidentStore

FAILING = "[Service]\nExecStart=/bin/sh -c 'echo \"<3>cannot start\" >&2; exit 1'\n"


async def _until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("no incident in time")
        await asyncio.sleep(0.01)


async def trials(sb: Sandbox, follow: bool, interval: float, count: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(ai_name="bench", state_dir=Path(tmp), check_interval=interval,
                            journal_follow=follow, agent={"investigate": False})
        store = IncidentStore(Database(settings.db_path))
        daemon = Daemon(Runtime(settings, store, [SandboxTransport(sb)]))
        running = asyncio.create_task(daemon.run())
        await _until(lambda: bool(store.hosts()), 30)
        if follow:
            await _until(lambda: bool(daemon.followers) and daemon.followers[0].started.is_set(),
                         10)
        latencies = []
        for n in range(count):
            unit = f"bench-{'f' if follow else 'p'}{n}.service"
            if not follow:
                # a failure happens at a random moment of the polling cycle
                await asyncio.sleep(random.uniform(0, interval))
            await asyncio.to_thread(apply, sb, "install_unit", {"name": unit, "text": FAILING})
            started = time.monotonic()
            await asyncio.to_thread(apply, sb, "start_unit", {"name": unit})
            await _until(lambda u=unit: any(i.subject == u for i in store.incidents()),
                         interval + 30)
            latencies.append(time.monotonic() - started)
        daemon.stop_event.set()
        await running
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    args = parser.parse_args()
    with Sandbox() as sb:
        follower = asyncio.run(trials(sb, True, 300, args.trials))
        polled = asyncio.run(trials(sb, False, args.poll_interval, args.trials))
    f_mean, p_mean = statistics.mean(follower), statistics.mean(polled)
    extrapolated = 300 / 2 + (p_mean - args.poll_interval / 2)
    print(f"journal follower (interval 300 s): mean {f_mean:.3f} s, max {max(follower):.3f} s "
          f"over {len(follower)} failures; target 2 s -> max is {max(follower) / 2:.2f}x target")
    print(f"polling every {args.poll_interval:g} s (failures at random moments): mean "
          f"{p_mean:.3f} s, max {max(polled):.3f} s")
    print(f"polling at the default 300 s (extrapolated): mean {extrapolated:.1f} s -> the "
          f"follower is {extrapolated / f_mean:.0f}x faster; at {args.poll_interval:g} s it is "
          f"{p_mean / f_mean:.1f}x faster")


if __name__ == "__main__":
    main()
