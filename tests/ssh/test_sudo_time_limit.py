"""A fix behind the host's sudo that overruns its timeout, over real SSH: it must end on the
host, not only on the client. Under sudo's ``use_pty`` (Debian's default) the command runs in a
process group of its own and sudo ignores a signal from its parent's, so the KILL of the remote
`timeout` ended sudo alone and left the fix running as root after its caller was told it timed
out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import CommandTimeout
from ai_sysadmin.hosts.ssh import SshTransport
from ai_sysadmin.safety.sudo_rules import sudoers_text

from .conftest import Account, ClientKey, SshHost, accounts, accounts_lab, wait_until

FIXER = Account("fixer", 3201)
#: sudo as Debian ships it, and a rule for the test's stand-in for a fix that hangs
BASE = "Defaults use_pty\nroot ALL=(ALL:ALL) ALL\nfixer ALL=(root) NOPASSWD: /usr/bin/sleep\n"


@pytest.fixture(scope="module")
def sudo_host(client_key: ClientKey) -> Iterator[tuple[SshHost, Path]]:
    """An sshd whose host has ``fixer``, and the file its /etc/sudoers is (rewritable)."""
    with accounts_lab(client_key, "aisa-sudo-") as (netlab, ns, address, homes):
        setup = accounts(homes, [FIXER], BASE)
        yield netlab.sshd("sudo", ns, [address], setup=setup), homes / "etc-sudoers"


def _sleeping(seconds: str) -> list[int]:
    """The processes of ``sleep SECONDS`` (the test hosts share this PID namespace)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if (entry / "cmdline").read_bytes() == f"sleep\0{seconds}\0".encode():
                found.append(int(entry.name))
    return found


def _overrun(ssh: SshTransport, seconds: str) -> str:
    async def scenario() -> str:
        try:
            with pytest.raises(CommandTimeout) as timed_out:
                await ssh.run([*ssh.fix_prefix, "sleep", seconds], timeout=1)
            return str(timed_out.value)
        finally:
            await ssh.close()
    return asyncio.run(scenario())


def test_the_drop_in_lets_sudo_end_a_fix_that_overruns(
        sudo_host: tuple[SshHost, Path], known_hosts: Path) -> None:
    host, sudoers = sudo_host
    drop_in = sudoers_text(Settings(), "fixer", lambda program: f"/usr/bin/{program}")
    assert "Defaults:fixer user_command_timeouts\n" in drop_in
    sudoers.write_text(BASE + drop_in)
    ssh = SshTransport(host.target(host.write_known_hosts(known_hosts), user="fixer",
                                   sudo=True), name="web1")
    said = _overrun(ssh, "47.31")
    assert said == "web1: 'sudo -n -- sleep 47.31' timed out after 1 s"
    wait_until(lambda: not _sleeping("47.31"), "the fix ended on the host", timeout=10)


def test_a_sudo_that_allows_no_time_limit_runs_fixes_and_says_what_a_timeout_leaves(
        sudo_host: tuple[SshHost, Path], known_hosts: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    host, sudoers = sudo_host
    sudoers.write_text(BASE)
    ssh = SshTransport(host.target(host.write_known_hosts(known_hosts), user="fixer",
                                   sudo=True), name="web1")

    async def quick() -> None:
        ran = await ssh.run([*ssh.fix_prefix, "sleep", "0"])
        assert ran.ok and ran.argv == ("sudo", "-n", "--", "sleep", "0")
        assert "timeout" not in ran.stderr

    with caplog.at_level(logging.WARNING, logger="ai_sysadmin.service"):
        asyncio.run(quick())
        said = _overrun(ssh, "47.32")
    try:
        assert said == ("web1: 'sudo -n -- sleep 47.32' timed out after 1 s; the host's sudo "
                        "allows no time limit (sudo -T), so it may still be running there as "
                        "root")
        assert "add 'Defaults:fixer user_command_timeouts' to its sudoers" in caplog.text
    finally:
        for pid in _sleeping("47.32"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


#: sudo-rs (Ubuntu 25.10's sudo) has no -T: what it says of one, before it runs anything
SUDO_RS = """#!/bin/sh
for arg in "$@"; do
    [ "$arg" = -- ] && break
    [ "$arg" = -T ] && { echo "sudo-rs: invalid option provided" >&2; exit 1; }
done
exec /usr/bin/sudo "$@"
"""


def test_a_sudo_without_the_option_runs_fixes_without_a_limit(
        sudo_host: tuple[SshHost, Path], known_hosts: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    host, sudoers = sudo_host
    home = sudoers.parent / FIXER.name
    sudoers.write_text(BASE + "Defaults:fixer user_command_timeouts\n")
    (home / "bin").mkdir()
    (home / "bin" / "sudo").write_text(SUDO_RS)
    (home / "bin" / "sudo").chmod(0o755)
    # sshd runs the command through the login shell, bash, which reads ~/.bashrc there
    (home / ".bashrc").write_text(f'PATH="{home}/bin:$PATH"\n')
    ssh = SshTransport(host.target(host.write_known_hosts(known_hosts), user="fixer",
                                   sudo=True), name="web1")

    async def fix() -> tuple[bool, str]:
        try:
            ran = await ssh.run([*ssh.fix_prefix, "sleep", "0"])
            return ran.ok, ran.stderr
        finally:
            await ssh.close()

    try:
        with caplog.at_level(logging.WARNING, logger="ai_sysadmin.service"):
            ok, stderr = asyncio.run(fix())
    finally:
        (home / ".bashrc").unlink()
    assert ok, stderr
    assert "give a fix a time limit of its own (sudo -T)" in caplog.text
