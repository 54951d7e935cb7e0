"""A journal follower of a host whose last check saw no systemd opens no session there: it
started journalctl, which failed, once a minute for good (a fleet of 240 such hosts, four SSH
sessions a second); once a check sees systemd there, it follows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import TransportError
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.follower import JournalFollower
from tests.support.polling import until


class NoJournal(LocalTransport):
    """This machine, as a host without journalctl: each start fails, and is counted."""

    def __init__(self) -> None:
        super().__init__("web1")
        self.starts = 0

    async def stream_lines(self, argv: Sequence[str]) -> AsyncIterator[str]:
        self.starts += 1
        raise TransportError(f"{self.host}: cannot start 'journalctl': not found")
        yield ""  # pragma: no cover - an async generator


def test_a_follower_waits_while_the_host_has_no_systemd(tmp_path: Path) -> None:
    transport = NoJournal()
    systemd = {"running": False}

    async def run() -> tuple[int, int]:
        follower = JournalFollower(transport, Settings(ai_name="t", state_dir=tmp_path),
                                   lambda entry: None, max_backoff=0.05,
                                   journal_there=lambda: systemd["running"])
        task = asyncio.create_task(follower.run())
        try:
            # twenty of its pauses: each a start, before
            await asyncio.sleep(1.0)
            waiting = transport.starts
            systemd["running"] = True  # a check saw systemd there since
            await until(lambda: transport.starts >= waiting + 3, 10, "journalctl started")
            return waiting, transport.starts
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    waiting, later = asyncio.run(run())
    assert waiting == 0
    assert later >= 3
