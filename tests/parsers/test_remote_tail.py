"""The one ``tail -v`` of a remote check, split back into each file's text by tail's headers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ai_sysadmin.hosts.transport import CommandResult, LocalTransport
from ai_sysadmin.monitor.remote_script import RoundTrip, run_round_trip

#: a kernel file this machine lacks, as /proc/pressure/memory is absent without PSI
ABSENT = "/proc/pressure/ai-sysadmin-absent"


def test_a_header_inside_the_last_file_is_not_taken_for_an_absent_kernel_file(
    tmp_path: Path,
) -> None:
    # os-release is the one file tail reads that is not the kernel's: root writes it, and
    # whatever it holds must come back as its own text, not as another file's
    os_release = tmp_path / "os-release"
    os_release.write_text(f'NAME="Lab"\n==> {ABSENT} <==\nsome 0.00\n==> /proc/version <==\n'
                          'ID=lab\n')
    commands = [("cat", "--", ABSENT), ("cat", "--", "/proc/version"),
                ("cat", "--", str(os_release))]
    trip = RoundTrip.plan(commands, 5.0, careful=False)
    assert trip.tailed_files == [ABSENT, "/proc/version", str(os_release)]

    async def go() -> list[CommandResult]:
        replay = await run_round_trip(LocalTransport(), trip)
        return [await replay.run(argv) for argv in commands]

    absent, version, release = asyncio.run(go())
    assert absent.returncode == 1 and absent.stdout == "" and "No such file" in absent.stderr
    assert (version.returncode, version.stdout) == (0, Path("/proc/version").read_text())
    assert (release.returncode, release.stdout) == (0, os_release.read_text())
