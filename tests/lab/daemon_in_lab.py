"""A real daemon process watching a running lab: ``python daemon_in_lab.py PID1 STATE INTERVAL``.

The test kills it with SIGKILL at random moments; it is the same Daemon that ``ai-sysadmin run``
starts, only its transport enters the lab through nsenter.
"""

from __future__ import annotations

import asyncio
import sys

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import Transport
from ai_sysadmin.orchestrator.daemon import Daemon
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import Database, IncidentStore


class IntoLab(Transport):
    def __init__(self, pid1: int) -> None:
        self.pid1 = pid1
        self.host = "sdtest"

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        return ("nsenter", "-t", str(self.pid1), "-a", *argv)


def main() -> None:
    pid1, state_dir, interval = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    settings = Settings(ai_name="labtest", state_dir=state_dir, check_interval=interval,
                        agent={"investigate": False})
    store = IncidentStore(Database(settings.db_path))
    asyncio.run(Daemon(Runtime(settings, store, [IntoLab(pid1)])).run())


if __name__ == "__main__":
    main()
