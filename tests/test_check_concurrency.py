"""A fleet's checks share one limit of hosts collected at once (``check_concurrency``)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import CommandResult, LocalTransport
from ai_sysadmin.orchestrator.checker import fleet_checkers
from ai_sysadmin.store import Database, IncidentStore


class Counted(LocalTransport):
    """This machine under several names, noting how many hosts have commands running at once."""

    running: Counter[str] = Counter()
    most = 0

    async def run(self, argv: Sequence[str], timeout: float = 20.0) -> CommandResult:
        Counted.running[self.host] += 1
        Counted.most = max(Counted.most, sum(1 for n in Counted.running.values() if n))
        try:
            return await super().run(argv, timeout)
        finally:
            Counted.running[self.host] -= 1


def most_at_once(limit: int, hosts: int, tmp_path: Path) -> int:
    settings = Settings(ai_name="hal", state_dir=tmp_path / f"state{limit}",
                        check_concurrency=limit)
    store = IncidentStore(Database(settings.db_path))
    checkers = fleet_checkers([Counted(f"h{i}") for i in range(hosts)], settings, store)
    Counted.running, Counted.most = Counter(), 0

    async def go() -> None:
        await asyncio.gather(*(c.check("test") for c in checkers))

    asyncio.run(go())
    return Counted.most


def test_at_most_check_concurrency_hosts_are_collected_at_once(tmp_path: Path) -> None:
    assert most_at_once(2, 6, tmp_path) == 2
    assert most_at_once(6, 6, tmp_path) > 2  # without a tighter limit they do overlap
