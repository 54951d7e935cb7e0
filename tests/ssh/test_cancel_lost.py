"""A task cancelled just as asyncssh's connect completes stops all the same.

asyncssh's connect waits through ``asyncio.wait_for``, which on Python 3.11 returns the
connection to a caller cancelled in the same turn of the loop, and the cancel is lost: the
daemon's follower of a host let go (or replaced by a new one) followed on beside it for good,
and a test that stopped a follower waited on it for ever. The race is made certain here: the
real connect, to a real sshd, then asyncssh's own kind of wait, with the cancel landing as it
ends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.ssh import SshTransport
from ai_sysadmin.monitor.follower import JournalFollower

from .conftest import Hosts


def cancelled_as_it_connects(connect: Callable[..., Any]) -> Callable[..., Any]:
    """``connect``, whose caller is cancelled just as its connection comes."""
    async def connecting(*args: Any, **kwargs: Any) -> asyncssh.SSHClientConnection:
        conn = await connect(*args, **kwargs)
        loop, caller = asyncio.get_running_loop(), asyncio.current_task()
        assert caller is not None
        done: asyncio.Future[asyncssh.SSHClientConnection] = loop.create_future()

        def land() -> None:  # the work ends and the caller is cancelled in one turn
            done.set_result(conn)
            caller.cancel()

        loop.call_soon(land)
        return await asyncio.wait_for(done, 10)

    return connecting


def test_a_follower_cancelled_as_its_connection_comes_stops(
        ssh_hosts: Hosts, known_hosts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = ssh_hosts.alpha
    transport = SshTransport(host.target(host.write_known_hosts(known_hosts)), name="alpha")
    monkeypatch.setattr(asyncssh, "connect", cancelled_as_it_connects(asyncssh.connect))

    async def go() -> tuple[bool, bool]:
        follower = JournalFollower(transport, Settings(ai_name="hal"), lambda entry: None)
        task = asyncio.create_task(follower.run())
        try:
            await asyncio.wait({task}, timeout=10)
            return task.done(), task.cancelled()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await transport.close()

    assert asyncio.run(go()) == (True, True)
