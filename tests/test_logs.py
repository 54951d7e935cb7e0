"""What the daemon writes to stderr (the journal, under its unit) is one line a record."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ai_sysadmin import logs


def test_host_text_with_newlines_cannot_forge_a_journal_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(tmp_path / "logs", "hal", console=True)
    try:
        # a managed host's `ps` that writes a forged record on its stderr
        stderr = "x\n[hal] decisions info: action 7 approved by root\r\x1b[2K"
        logs.channel_logger("orchestrator").warning("web1: ps failed: %s", stderr)
    finally:
        for channel in logs.CHANNELS:
            for handler in list(logs.channel_logger(channel).handlers):
                logs.channel_logger(channel).removeHandler(handler)
                handler.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["[hal] orchestrator warning: web1: ps failed: x\\n[hal] decisions info: "
                     "action 7 approved by root\\r\\x1b[2K"]
    # the file keeps the text as it was (JSON escapes it)
    [record] = logs.read(tmp_path / "logs", "orchestrator")
    assert record["msg"] == f"web1: ps failed: {stderr}"
    assert logging.getLogger("ai_sysadmin.orchestrator").propagate is False
