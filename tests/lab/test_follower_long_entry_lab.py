"""A journal entry any local user can write, 400 KiB of binary message (1.6 MB of JSON with
journalctl --all), neither ends the journal follower nor hides the next entry from it: a
failure goes on waking a check within a second, not at the next interval."""

from __future__ import annotations

import asyncio

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.follower import JournalFollower
from ai_sysadmin.monitor.snapshot import JournalEntry

pytestmark = pytest.mark.lab

#: one entry as sd_journal_send sends a big one: its fields in a sealed memfd over the socket
BIG_ENTRY = """\
import array, fcntl, os, socket, struct
message = bytes([200]) * (400 * 1024)
payload = (b"SYSLOG_IDENTIFIER=big\\nPRIORITY=4\\nMESSAGE\\n"
           + struct.pack("<Q", len(message)) + message + b"\\n")
fd = os.memfd_create("entry", os.MFD_ALLOW_SEALING)
os.write(fd, payload)
fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
            | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))], 0,
             "/run/systemd/journal/socket")
"""


async def until(seen: list[JournalEntry], text: str, task: asyncio.Task[None]) -> bool:
    """Whether the follower passed an entry holding ``text`` on, within 30 s."""
    deadline = asyncio.get_running_loop().time() + 30
    while not any(text in e.message for e in seen):
        if task.done() or asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def test_an_entry_longer_than_a_line_may_be_does_not_end_the_follower(
    sandbox: Sandbox, lab_settings: Settings
) -> None:
    sandbox.write_file("/usr/local/bin/big-entry.py", BIG_ENTRY)

    async def follow() -> tuple[bool, bool]:
        seen: list[JournalEntry] = []
        follower = JournalFollower(SandboxTransport(sandbox), lab_settings, seen.append)
        task = asyncio.create_task(follower.run())
        try:
            await follower.started.wait()
            await asyncio.to_thread(sandbox.exec, ["logger", "-p", "user.err", "before it"])
            before = await until(seen, "before it", task)
            await asyncio.to_thread(sandbox.exec, [
                "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                "/usr/bin/python3", "/usr/local/bin/big-entry.py"], check=True)
            await asyncio.to_thread(sandbox.exec, ["logger", "-p", "user.err", "unit failed"])
            after = await until(seen, "unit failed", task)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return before, after

    before, after = asyncio.run(follow())
    assert before, "the follower did not pass the first error on"
    assert after, "the follower did not pass the error after the long entry on"
