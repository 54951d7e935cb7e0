"""`ai-sysadmin worker` as a process of its own, configured as a test's settings are."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ai_sysadmin.config import Settings
from tests.conftest import BIN


def worker_process(tmp_path: Path, settings: Settings,
                   llm_timeout: float | None = None) -> subprocess.Popen[bytes]:
    """`ai-sysadmin worker` serving ``settings``' queue with its LLM (``llm_timeout``: the
    model's, where the test's answers take longer than the default); stderr in
    ``tmp_path/worker.stderr``."""
    config = tmp_path / "config.toml"
    timeout = "" if llm_timeout is None else f"timeout = {llm_timeout}\n"
    config.write_text(f'ai_name = "hal"\n[queue]\nurl = "{settings.queue.url}"\n'
                      f'lease_seconds = {settings.queue.lease_seconds}\n'
                      f'[llm]\nbackend = "openai"\nurl = "{settings.llm.url}"\n'
                      f'model = "scripted"\n{timeout}')
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config),
           "AI_SYSADMIN_STATE_DIR": str(settings.state_dir)}
    with (tmp_path / "worker.stderr").open("wb") as stderr:
        return subprocess.Popen([str(BIN), "worker"], env=env, stdout=subprocess.DEVNULL,
                                stderr=stderr)
