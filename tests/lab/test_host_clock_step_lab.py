"""A host whose clock is set back (NTP correcting one that ran a year ahead) while the daemon
watches it: a burst of errors logged before the step ends once the host has been quiet for
the burst window on its clock as it is now, not once that clock catches up.

The lab's clock cannot be set apart from this machine's (a time namespace offsets only the
monotonic clocks), so the host tells its clock set back as its kernel would after the step:
/proc/stat's boot time moves back by as much."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.orchestrator.checker import HostChecker
from ai_sysadmin.store import Database, IncidentStore
from tests.lab.daemon_runner import QUIET_HOST_WIDE

pytestmark = pytest.mark.lab

YEAR = 365 * 86400
BURST_WINDOW = 5.0
#: logs a burst of errors once, then is quiet
NOISY = """
[Service]
ExecStart=/bin/sh -c 'for i in $(seq 25); do echo "<3>cannot reach the database ($i)"; done; exec sleep infinity'
"""  # noqa: E501


class SetBack(SandboxTransport):
    """The lab, whose kernel says its boot time is ``back`` seconds earlier: the wall clock
    it computes that from (``btime`` is the wall clock less the time since boot) was set
    back by as much."""

    back = 0

    async def read_file(self, path: str, timeout: float = 20.0) -> str | None:
        text = await super().read_file(path, timeout)
        if path != "/proc/stat" or text is None or not self.back:
            return text
        return "\n".join(f"btime {int(line.split()[1]) - self.back}"
                         if line.startswith("btime ") else line for line in text.split("\n"))


def test_a_burst_ends_a_window_after_the_hosts_clock_is_set_back(tmp_path: Path) -> None:
    settings = Settings(ai_name="hal", state_dir=tmp_path, thresholds={
        **QUIET_HOST_WIDE, "journal_burst_window_seconds": BURST_WINDOW})
    store = IncidentStore(Database(settings.db_path))

    async def scenario(sb: Sandbox) -> None:
        host = SetBack(sb)
        checker = HostChecker(host, settings, store)
        first = await checker.check("interval")
        while time.time() - first.snapshot.taken_at <= BURST_WINDOW:  # a whole window seen
            await checker.check("interval")
            await asyncio.sleep(0.5)
        apply(sb, "start_unit", {"name": "noisy.service"})
        deadline = time.monotonic() + 15
        while not (bursts := [i for i in store.incidents(None)
                              if i.rule == "journal_error_burst"]):
            assert time.monotonic() < deadline, "the burst was never found"
            await checker.check("journal")
        (incident,) = bursts
        host.back = YEAR  # NTP sets the host's clock back a year; the unit stays quiet
        deadline = time.monotonic() + 2 * BURST_WINDOW + 30
        while store.get(incident.id).state != "resolved":
            assert time.monotonic() < deadline, "the burst never ended"
            await checker.check("interval")
            await asyncio.sleep(0.5)

    with Sandbox() as sb:
        apply(sb, "install_unit", {"name": "noisy.service", "text": NOISY})
        asyncio.run(scenario(sb))
