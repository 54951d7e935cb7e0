"""A check script whose shell died under it runs again in a fresh shell, within what is left
of its limit: a check limited to a few seconds never takes twice that (a host whose shells
get killed, by the OOM killer say, would otherwise hold every check up for twice its limit)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ai_sysadmin.errors import CommandTimeout
from ai_sysadmin.hosts.ssh import SshTransport

from .conftest import Hosts

DONE = "@@retry-test-done@@"
LIMIT = 4.0
#: what a busy machine adds to a limit that is kept: far less than a second full limit
SLACK = 1.5


def script(body: str) -> str:
    return f"{body}\nprintf '%s\\n' '{DONE}'; printf '%s\\n' '{DONE}' >&2\n"


def test_a_script_run_again_after_its_shell_died_keeps_its_limit(
        ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path) -> None:
    host = ssh_hosts.beta
    ssh = SshTransport(host.target(host.write_known_hosts(known_hosts)), name="db2")
    tried = tmp_path / "tried"  # the host shares this file system
    # the first run's shell is killed 2.5 s in; the second run hangs on a read that ends as
    # its shell is dropped (a sleep would hold the session of a root login after the drop)
    body = (f"if [ -e {tried} ]; then cat >/dev/null; "
            f"else touch {tried}; sleep 2.5; kill -9 $$; fi")

    async def scenario() -> float:
        try:
            await ssh.run_script(script("true"), DONE, 10)  # a shell kept from a check before
            started = time.monotonic()
            with pytest.raises(CommandTimeout, match="db2: the check script timed out after 4 s"):
                await ssh.run_script(script(body), DONE, LIMIT)
            return time.monotonic() - started
        finally:
            await ssh.close()

    took = asyncio.run(scenario())
    assert tried.exists()  # it did die once, and was run again
    assert took < LIMIT + SLACK, f"a check limited to {LIMIT:g} s took {took:.1f} s"


def test_a_shell_that_died_too_late_for_another_is_a_timeout(
        ssh_hosts: Hosts, known_hosts: Path) -> None:
    host = ssh_hosts.beta
    ssh = SshTransport(host.target(host.write_known_hosts(known_hosts)), name="db2")

    async def scenario() -> float:
        try:
            await ssh.run_script(script("true"), DONE, 10)
            started = time.monotonic()
            with pytest.raises(CommandTimeout, match="its shell ended under it"):
                await ssh.run_script(script("sleep 1.8; kill -9 $$"), DONE, 2.0)
            return time.monotonic() - started
        finally:
            await ssh.close()

    assert asyncio.run(scenario()) < 2.0 + SLACK
