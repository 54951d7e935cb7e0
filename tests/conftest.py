"""Shared fixtures: isolated settings and state per test, the real CLI entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ai_sysadmin import logs
from ai_sysadmin.cli.main import main
from ai_sysadmin.config import Settings
from ai_sysadmin.store import Database, IncidentStore

BIN = Path(sys.executable).parent / "ai-sysadmin"


def hidden_in_the_lab() -> list[str]:
    """This checkout and its venv, when they live where the lab has its own empty directories
    (a CI clone in /tmp): to be shown to the lab read-only, at the same path (the sandbox's
    ``binds``), wherever a lab runs :data:`BIN`."""
    private = ("/tmp/", "/run/", "/dev/")
    here = {Path(__file__).resolve().parents[1], Path(sys.prefix).resolve()}
    return sorted(str(p) for p in here if str(p).startswith(private))


@pytest.fixture(autouse=True)
def _log_files_closed() -> Iterator[None]:
    """A test that sets up the log files (``logs.configure``, a daemon run in-process) leaves
    no handler behind: the next test's records would go to a directory since removed."""
    with logs.kept():
        yield


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the machine's real config or writes its real state."""
    for var in list(os.environ):
        if var.startswith("AI_SYSADMIN_"):
            monkeypatch.delenv(var)
    empty = tmp_path / "empty-config.toml"
    empty.write_text("")
    monkeypatch.setenv("AI_SYSADMIN_CONFIG", str(empty))
    monkeypatch.setenv("AI_SYSADMIN_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "config.toml"
        path.write_text(text)
        monkeypatch.setenv("AI_SYSADMIN_CONFIG", str(path))
        return path
    return write


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first, each file's in its order: most of them wait (on a timeout, a
    lab's unit, a worker), and the two workers' last minutes were mostly idle while they
    came last (tests/ssh's partitioned hosts, 150 s of timeouts); before the quick tests, the
    waits overlap work."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(ai_name="hal", state_dir=tmp_path / "state")


@pytest.fixture
def store(settings: Settings) -> IncidentStore:
    return IncidentStore(Database(settings.db_path))


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run the CLI in-process as a user would type it: (exit code, stdout, stderr)."""

    def run(*args: str, argv0: str = "ai-sysadmin") -> tuple[int, str, str]:
        code = main(list(args), argv0=argv0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def run_program(*argv: str, env: dict[str, str] | None = None, timeout: float = 60):
    """The installed console script in a child process."""
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )
