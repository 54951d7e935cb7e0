"""The journal as a container's systemd writes it: a field an entry carries twice, and a
container whose /proc/uptime lxcfs mounts over (LXC, LXD, Incus, Proxmox), where /proc/stat
still gives the host kernel's boot time. Real systemd and journald in the fault lab."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor import parsers
from ai_sysadmin.monitor.sections import JournalQuery, journal_argv
from ai_sysadmin.orchestrator.checker import HostChecker

pytestmark = pytest.mark.lab

#: a sender of journald's native protocol, giving MESSAGE twice (as sd_journal_send may)
TWICE = r'''
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"SYSLOG_IDENTIFIER=payments\nSYSLOG_IDENTIFIER=pay2\nPRIORITY=3\n"
         b"MESSAGE=write to /var/lib/pay failed: No space left on device\n"
         b"MESSAGE=retrying in 5 s\n", "/run/systemd/journal/socket")
'''


def test_a_message_given_twice_is_read_whole_not_as_empty(tmp_path) -> None:
    """journalctl writes a field given more than once as a list of its values: read as a
    list of bytes, the message was empty, and the finding quoted nothing."""
    with Sandbox() as sb:
        sb.exec(["python3", "-c", TWICE], check=True)
        sb.exec(["journalctl", "--sync"])
        argv = journal_argv(Settings(ai_name="hal", state_dir=tmp_path),
                            JournalQuery(first_lines=50))
        entries = [parsers.parse_journal_line(line)
                   for line in sb.exec(argv, check=True).stdout.splitlines()]
    (entry,) = [e for e in entries if e is not None and e.identifier == "payments"]
    assert entry.message == ("write to /var/lib/pay failed: No space left on device\n"
                             "retrying in 5 s")
    assert entry.priority == 3


def _container_age(sb: Sandbox) -> str:
    """What lxcfs gives as the container's /proc/uptime: the age of its init."""
    age = subprocess.run(["ps", "-o", "etimes=", "-p", str(sb.pid1)], capture_output=True,
                         text=True, check=True).stdout.strip()
    return f"{age}.00 {age}.00\n"


def test_an_error_burst_is_found_where_lxcfs_gives_the_containers_uptime(tmp_path) -> None:
    """Boot time (the host kernel's) plus uptime (the container's) was taken for the host's
    clock: hours or days past, so every fresh entry was ahead of it and left out of the
    burst window, and 25 errors in a second made no finding."""
    with Sandbox() as sb:
        sb.write_file("/run/lxcfs-uptime", _container_age(sb))
        sb.exec(["mount", "--bind", "/run/lxcfs-uptime", "/proc/uptime"], check=True)
        checker = HostChecker(SandboxTransport(sb), Settings(
            ai_name="hal", state_dir=tmp_path / "state"), None)

        async def burst() -> list[str]:
            await checker.check()
            for i in range(25):
                sb.exec(["logger", "-p", "user.err", "-t", "payments",
                         f"db write failed #{i}"], check=True)
            sb.exec(["journalctl", "--sync"])
            report = await checker.check()
            assert "/proc/uptime" in (report.snapshot.proc_mounted or ())
            return [f.subject for f in report.findings if f.rule == "journal_error_burst"]

        assert asyncio.run(burst()) == ["payments"]
