"""``python approve_in_lab.py PID1 STATE_DIR ACTION_ID MODE``: approve (MODE=approve), or settle
what a dead process left (MODE=recover, what the daemon does at start: run what the policy
approved, a person's approval waits for a person again) against a running lab."""

from __future__ import annotations

import asyncio
import sys

from daemon_in_lab import IntoLab  # this folder: the script runs by its path

from ai_sysadmin.config import Settings
from ai_sysadmin.executor import Executor
from ai_sysadmin.store import Database, IncidentStore


def main() -> None:
    pid1, state_dir, action_id, mode = sys.argv[1:5]
    settings = Settings(ai_name="labtest", state_dir=state_dir, autonomy_level="suggest",
                        safety={"verify_settle_seconds": 0, "verify_timeout": 10,
                                "flapping_max": 1000})  # 20 trials on one unit, on purpose
    store = IncidentStore(Database(settings.db_path))
    executor = Executor(settings, store, {"sdtest": IntoLab(int(pid1))})
    if mode == "approve":
        asyncio.run(executor.approve(int(action_id), "tester", "crash trial"))
    else:
        for action in executor.recover():
            asyncio.run(executor.run(action.id))


if __name__ == "__main__":
    main()
