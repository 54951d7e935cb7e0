"""LLM calls of a simulated day: a healthy host checked every 300 s must cost none.

    sudo .venv/bin/python bench/llm_calls_per_day.py [--checks 288]

A day at the default 300 s interval is 288 passes of the daemon's loop (collect, detect, track,
triage) against real systemd in the fault lab, with the scripted model behind the real queue
and worker. Side by side in the same run: the same day with one unit failing half-way (one
investigation), and the cost of a design that asks the model at every check.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.lab import SandboxTransport
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.orchestrator.daemon import build_daemon
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import Database, IncidentStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the scripted model lives in tests
from tests.support.scripted_model import ScriptedModel, call, say

FAILING = "[Service]\nExecStart=/bin/sh -c 'echo \"<3>no config\" >&2; exit 1'\n"


async def day(sb: Sandbox, url: str, checks: int, fail_at: int | None) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(ai_name="bench", state_dir=Path(tmp),
                            llm={"backend": "openai", "url": url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        runtime = Runtime(settings, store, [SandboxTransport(sb)])
        daemon = build_daemon(runtime, follow_config=False)  # the lab is the only host
        stop = asyncio.Event()
        assert daemon.worker is not None and daemon.investigator is not None
        worker = asyncio.create_task(daemon.worker(stop))
        checker = daemon.checkers[0]
        started = time.monotonic()
        for n in range(checks):
            if n == fail_at:
                await asyncio.to_thread(apply, sb, "install_unit",
                                        {"name": "flaky.service", "text": FAILING})
                await asyncio.to_thread(apply, sb, "start_unit", {"name": "flaky.service"})
            await daemon.check_host(checker, "interval")
        await asyncio.gather(*daemon.investigator.running.values())
        elapsed = time.monotonic() - started
        stop.set()
        await worker
        await runtime.close()
        return ended_investigations(store), elapsed


def ended_investigations(store: IncidentStore) -> int:
    """Investigations that came to an end, diagnosed or failed, as the store recorded them
    (the investigator forgets a task once it is done)."""
    return sum(1 for incident in store.incidents(states=None)
               for event in store.get(incident.id, history=None).events
               if event.kind in ("diagnosis", "investigation_failed"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=288)
    args = parser.parse_args()
    script = [call("incident_evidence"), say("DIAGNOSIS: flaky.service has no config")]
    with Sandbox() as sb:
        with ScriptedModel([]) as healthy_model:
            _, healthy_s = asyncio.run(day(sb, healthy_model.url, args.checks, None))
            healthy_calls = len(healthy_model.requests)
        with ScriptedModel(script) as failing_model:
            investigations, failing_s = asyncio.run(
                day(sb, failing_model.url, args.checks, args.checks // 2))
            failing_calls = len(failing_model.requests)
    print(f"healthy day: {args.checks} checks ({healthy_s:.1f} s of work), "
          f"{healthy_calls} LLM calls (target 0)")
    print(f"same day with one unit failing half-way: {failing_calls} LLM calls in "
          f"{investigations} investigation(s) ({failing_s:.1f} s of work)")
    print(f"a design asking the model at every check: >= {args.checks} calls -> this one makes "
          f"{healthy_calls}/{args.checks} = {healthy_calls / args.checks:.0%} of that on a "
          f"healthy day")


if __name__ == "__main__":
    main()
