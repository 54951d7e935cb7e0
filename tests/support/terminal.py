"""A command run as a person runs it: its output on a pseudo-terminal of its own."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path


def on_a_terminal(argv: list[str], env: Mapping[str, str], stderr: Path | None = None,
                  seconds: float = 60) -> tuple[int, bytes]:
    """``argv`` with its stdout a pseudo-terminal (its stderr too, unless ``stderr`` names a
    file for it): its exit code and what the terminal got."""
    master, slave = pty.openpty()
    errors = stderr.open("wb") if stderr is not None else None
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave,
                                 stderr=errors if errors is not None else slave, env=dict(env))
    finally:
        if errors is not None:
            errors.close()
    os.close(slave)
    got, ready = b"", select.poll()
    ready.register(master, select.POLLIN)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if not ready.poll(100):
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            got += chunk
    finally:
        os.close(master)
    return child.wait(timeout=seconds), got


class Screen:
    """What a program wrote to a pseudo-terminal (``master``), read in order: each wait finds
    its text past where the last one found its own (one read may bring both). ``poll``, not
    ``select``: a worker that has run a thousand tests may hold descriptors past select()'s
    1024."""

    def __init__(self, master: int) -> None:
        self.master, self.seen, self.at = master, bytearray(), 0
        self._ready = select.poll()
        self._ready.register(master, select.POLLIN)

    def until(self, wanted: bytes, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while (found := self.seen.find(wanted, self.at)) < 0:
            assert time.monotonic() < deadline, (wanted, bytes(self.seen[self.at:]))
            if self._ready.poll(100):
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: the program closed the terminal
                    chunk = b""
                assert chunk, ("the terminal closed before", wanted,
                               bytes(self.seen[self.at:]))
                self.seen += chunk
        self.at = found + len(wanted)


def chat_env(tmp_path: Path, url: str | None = None) -> dict[str, str]:
    """The environment of a chat or an ask against the scripted model at ``url`` (set later
    where None): its own config, state and history under ``tmp_path``."""
    config = tmp_path / "config.toml"
    config.write_text('ai_name = "hal"\n')
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config),
           "AI_SYSADMIN_STATE_DIR": str(tmp_path / "state"),
           "XDG_STATE_HOME": str(tmp_path / "state-home"),
           "AI_SYSADMIN_LLM__BACKEND": "openai", "AI_SYSADMIN_LLM__MODEL": "scripted",
           "AI_SYSADMIN_LLM__TIMEOUT": "10", "AI_SYSADMIN_QUEUE__WAIT_TIMEOUT": "30"}
    if url is not None:
        env["AI_SYSADMIN_LLM__URL"] = url
    return env
