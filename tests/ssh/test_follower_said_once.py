"""A host whose journal cannot be followed for days (its connection cut at every try) is said in
the daemon's log as it begins and as the pause between tries grows, then not again at each try:
a follower retrying once a minute wrote two lines a minute, forever, for every such host. Once
it follows again, it says so, and the next cut is said anew."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.ssh import SshTransport
from ai_sysadmin.monitor.follower import JournalFollower
from ai_sysadmin.monitor.snapshot import JournalEntry
from tests.support.polling import until

from .conftest import Hosts

#: every session of the host: while ``cut`` exists, counted and its connection killed (a relay
#: that drops it, a host going down); else run, with a journal of two entries
SESSION = """#!/bin/sh
if [ -e {cut} ]; then
    echo try >> {tries}
    kill -9 $PPID
    exit 1
fi
PATH={bin}:$PATH exec "$SHELL" -c "$SSH_ORIGINAL_COMMAND"
"""
#: that journal, followed for ever: its second entry, an error, wakes a check
JOURNALCTL = """#!/bin/sh
printf '%s\\n' '{first}' '{second}'
exec sleep 600
"""


def _entry(cursor: str, message: str, priority: int) -> str:
    return json.dumps({"__CURSOR": cursor, "PRIORITY": str(priority), "MESSAGE": message,
                       "__REALTIME_TIMESTAMP": "1000000"})


def test_a_follower_cut_at_every_try_says_it_once_and_says_when_it_follows_again(
        ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    cut, tries, session = tmp_path / "cut", tmp_path / "tries", tmp_path / "session"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "journalctl").write_text(JOURNALCTL.format(first=_entry("s=1", "one", 6),
                                                         second=_entry("s=2", "two", 3)))
    session.write_text(SESSION.format(cut=cut, tries=tries, bin=bin_dir))
    for program in (session, bin_dir / "journalctl"):
        program.chmod(0o755)
    netlab = ssh_hosts.netlab
    netns, address = netlab.namespace()
    web = netlab.sshd("cut-follower", netns, [address], extra=[f"ForceCommand {session}"])
    transport = SshTransport(web.target(web.write_known_hosts(known_hosts)), name="web3")
    cut.touch()

    def tried() -> int:
        return len(tries.read_text().splitlines()) if tries.exists() else 0

    async def follow() -> list[JournalEntry]:
        woke: list[JournalEntry] = []
        follower = JournalFollower(transport, Settings(ai_name="hal"), woke.append,
                                   max_backoff=0.05)
        task = asyncio.create_task(follower.run())
        try:
            await until(lambda: tried() >= 10, what="ten tries cut")
            cut.unlink()
            await until(lambda: len(woke) >= 2, what="the journal followed again")
            cut.touch()
            before = tried()
            for pid in web.session_pids():  # the connection it follows on is dropped
                os.kill(pid, signal.SIGKILL)
            await until(lambda: tried() >= before + 10, what="ten more tries cut")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await transport.close()
        return woke

    with caplog.at_level(logging.INFO, logger="ai_sysadmin.orchestrator"):
        asyncio.run(follow())
    said = [r.getMessage() for r in caplog.records if "journal follower of web3" in
            r.getMessage()]
    # twenty cuts and more: two episodes, each reason said once in each (a cut reads as
    # "connection lost" or "connection reset"), and the return in between once
    assert len(said) <= 13, said  # where each cut wrote two lines
    assert said.count("journal follower of web3 follows again") == 1, said
    back = said.index("journal follower of web3 follows again")
    for episode in (said[:back], said[back + 1:]):
        assert len(episode) == len(set(episode)) <= 6, said
        assert any("cannot start" in m for m in episode), said
        assert all("cannot start" in m or "then every 0 s while it stops so" in m
                   for m in episode), said
