"""The daemon as ``ai-sysadmin run`` builds it (investigations, queue worker, executor), watching a
running lab: ``python daemon_with_model.py PID1 STATE MODEL_URL [--on-go]``. The crash test kills
it with SIGKILL at random moments and starts it again. With ``--on-go`` it says ``ready`` once
its imports are done and starts on a line on stdin: the test starts the next daemon while the
current one works, so its random kills land in the work, not in an interpreter's imports."""

from __future__ import annotations

import asyncio
import os
import sys

from daemon_in_lab import IntoLab  # this folder: the script runs by its path

from ai_sysadmin.config import Settings
from ai_sysadmin.orchestrator.daemon import build_daemon
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import Database, IncidentStore

#: quiet host-wide rules (load, memory, swap read the whole machine's /proc)
QUIET = {"load_per_core_warn": 1000, "load_per_core_critical": 2000,
         "memory_available_warn_percent": 0, "memory_available_critical_percent": 0,
         "memory_psi_some_avg60": 100, "swap_thrash_pages_per_second": 1e9,
         "runaway_min_seconds": 366 * 86_400, "journal_error_burst": 10_000}


def main() -> None:
    pid1, state_dir, url = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    settings = Settings(
        ai_name="labtest", state_dir=state_dir, check_interval=2, autonomy_level="auto-safe",
        llm={"backend": "openai", "url": url, "model": "scripted", "timeout": 10},
        queue={"lease_seconds": 2, "wait_timeout": 20},
        # twenty kills in a minute break and interrupt the same units again and again: a
        # burst the daily cap would hand to a person, not what this harness tests
        agent={"retry_backoff_seconds": 0.5, "max_investigations": 50,
               "max_investigations_per_day": 1000},
        thresholds=QUIET, safety={"verify_settle_seconds": 0.5, "verify_timeout": 15,
                                  "flapping_max": 1000})
    # the knowledge test lets it close the store while idle, sooner than a config may say
    # (knowledge.close_after_seconds has a floor of a minute); the default elsewhere
    settings.knowledge.close_after_seconds = float(os.environ.get("LAB_KNOWLEDGE_CLOSE", 900))
    if sys.argv[4:] == ["--on-go"]:
        print("ready", flush=True)
        if not sys.stdin.readline():
            return  # the test ended without starting this one
    store = IncidentStore(Database(settings.db_path))
    asyncio.run(build_daemon(Runtime(settings, store, [IntoLab(pid1)])).run())


if __name__ == "__main__":
    main()
