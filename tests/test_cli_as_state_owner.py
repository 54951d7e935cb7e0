"""Root running a command on a daemon's state (``sudo hal-issues``) works as the daemon's user:
what it writes there stays the daemon's to write again."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN

NOBODY = 65534


@pytest.fixture
def daemons_state() -> Iterator[Path]:
    """A state directory as setup makes it: the daemon's user owns it (here nobody), under a
    directory any user may enter."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("CI runs as root: a command run as root is what this tests")
        pytest.skip("needs root")
    top = Path(tempfile.mkdtemp(prefix="ai-sysadmin-owner-"))
    top.chmod(0o755)
    state = top / "state"
    state.mkdir(mode=0o750)
    os.chown(state, NOBODY, NOBODY)
    try:
        yield state
    finally:
        shutil.rmtree(top)


def run(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AI_SYSADMIN_STATE_DIR": str(state), "HOME": "/root"}
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_command_root_runs_on_the_daemons_state_writes_as_the_daemons_user(
        daemons_state: Path) -> None:
    done = run(daemons_state, "issues", "list", "--json")
    assert done.returncode == 0, done.stderr
    made = {p.name: p.stat().st_uid for p in daemons_state.iterdir()}
    assert "state.db" in made and set(made.values()) == {NOBODY}, made
    # and again, as the daemon would open it after (a root-owned journal file stopped it)
    again = run(daemons_state, "check", "--json")
    assert again.returncode in (0, 1), again.stderr
    assert {p.stat().st_uid for p in daemons_state.rglob("*")} == {NOBODY}

