"""A runtime a process built and let go (``eval`` builds one a scenario, and tests one each)
leaves nothing of its own open: the knowledge recall the daemon's parts share was kept in a
process-wide table for good, and with it the runtime and its state database's connections.
SQLite keeps a closed connection's file open while another connection to that file is open
in the process, so an ``eval`` of every scenario held hundreds of descriptors, and a test
worker ran past select()'s 1024."""

from __future__ import annotations

import gc
import os
from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import Database, IncidentStore


def _open_files(directory: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the directory's own descriptor, closed meanwhile
            continue
        if target.startswith(str(directory)):
            found.append(target)
    return found


def _use_and_drop(settings: Settings) -> None:
    store = IncidentStore(Database(settings.db_path))
    runtime = Runtime(settings, store, [LocalTransport("hal")])
    assert runtime.knowledge is runtime.knowledge  # the recall its parts share
    assert store.untriaged() == []  # the store read, as any command does


def test_a_runtime_let_go_keeps_none_of_its_files_open(tmp_path: Path) -> None:
    for n in range(3):
        settings = Settings(ai_name="hal", state_dir=tmp_path / f"state{n}")
        _use_and_drop(settings)
    gc.collect()
    assert _open_files(tmp_path) == []
