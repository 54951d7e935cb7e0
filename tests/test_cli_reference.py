"""docs/cli.md is the CLI's own description: a command, option or help text changed without
regenerating it (python scripts/cli_reference.py) fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ai_sysadmin.cli.main import app
from ai_sysadmin.cli.reference import pages, render

ROOT = Path(__file__).resolve().parents[1]


def test_the_command_reference_is_current() -> None:
    text = render(app)
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == text, \
        "docs/cli.md is stale: run python scripts/cli_reference.py"
    for command in ("approve approve", "check", "policy sudoers", "systems add"):
        assert f"## `ai-sysadmin {command}`" in text
    per_command = pages(app)
    assert {"check.md", "approve.md", "notify.md", "setup.md"} <= set(per_command)
    for name, page in per_command.items():
        assert (ROOT / "docs" / "commands" / name).read_text(encoding="utf-8") == page, name
    assert "### `ai-sysadmin approve approve`" in per_command["approve.md"]


def test_the_check_mode_fails_on_a_stale_reference(tmp_path) -> None:
    script = [sys.executable, str(ROOT / "scripts" / "cli_reference.py")]
    stale = tmp_path / "cli.md"
    stale.write_text("# Command reference\n\nan old version\n")
    check = subprocess.run([*script, "--check", str(stale)], capture_output=True, text=True)
    assert check.returncode == 1 and "is stale" in check.stderr
    assert subprocess.run([*script, str(stale)]).returncode == 0
    assert subprocess.run([*script, "--check", str(stale)]).returncode == 0


def test_the_reference_names_what_help_names() -> None:
    """An argument by the name the usage line and --help give it, a value's default, and a
    group that does something alone (`queue`, `issues`) as a command of its own."""
    per_command = pages(app)
    issues, queue, logs = per_command["issues.md"], per_command["queue.md"], per_command["logs.md"]
    assert "ai-sysadmin issues show [OPTIONS] {ID}" in issues
    assert "| `ID` | The incident's id. |" in issues and "INCIDENT_ID" not in issues
    assert "### `ai-sysadmin issues`\n" in issues and "Alone, or with only `list`'s" in issues
    assert "### `ai-sysadmin queue`\n" in queue and "| `--json` |" in queue.split("###")[1]
    assert "(default 50) |" in logs
