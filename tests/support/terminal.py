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
