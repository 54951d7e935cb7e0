"""A command that prints without end is stopped at the output limit, here as over SSH."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from ai_sysadmin.errors import TransportError
from ai_sysadmin.hosts import transport
from ai_sysadmin.hosts.transport import LocalTransport


def test_output_past_the_limit_stops_the_command_on_either_stream(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(transport, "MAX_OUTPUT", 1 << 20)
    here = LocalTransport("here")
    pid_file = tmp_path / "pid"

    async def scenario() -> None:
        # 3 MB, then sleeping: the limit, not the command's end, must end the read
        for argv in (["sh", "-c", f"echo $$ > {pid_file}; head -c 3000000 /dev/zero; "
                                  "exec sleep 60"],
                     ["sh", "-c", "head -c 3000000 /dev/zero >&2; exec sleep 60"]):
            with pytest.raises(TransportError, match=r"here: .* printed more than 1 MiB"):
                await here.run(argv, timeout=30)
        under = await here.run(["head", "-c", "1000000", "/dev/zero"])
        assert under.ok and len(under.stdout) == 1_000_000

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 10
    assert not os.path.exists(f"/proc/{pid_file.read_text().strip()}"), "left running"
