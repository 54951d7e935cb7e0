"""A person's approval in a process of its own, against a running lab: the crash test runs
:func:`approve` through :mod:`tests.lab.forkserver` and kills it at a random moment."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.executor import Executor
from ai_sysadmin.store import Database, IncidentStore
from tests.lab.daemon_in_lab import IntoLab


def lab_settings(state_dir: str | Path) -> Settings:
    """The settings of every approval and recovery of the crash test, in or out of process."""
    return Settings(ai_name="labtest", state_dir=state_dir, autonomy_level="suggest",
                    safety={"verify_settle_seconds": 0, "verify_timeout": 10,
                            "flapping_max": 1000})  # 20 trials on one unit, on purpose


def approve(pid1: str, state_dir: str, action_id: str) -> None:
    settings = lab_settings(state_dir)
    store = IncidentStore(Database(settings.db_path))
    executor = Executor(settings, store, {"sdtest": IntoLab(int(pid1))})
    asyncio.run(executor.approve(int(action_id), "tester", "crash trial"))
