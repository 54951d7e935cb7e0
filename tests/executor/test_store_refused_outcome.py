"""A fix that ran while the machine refused the state database its outcome (its disk filled
as the fix ran): a person is told that it ran and that its end is not recorded, not "nothing
of this change was stored", which read as if nothing had happened on the host. A real
`approve approve` process, its state on a real tmpfs in a mount namespace of its own, whose
fix (a real program) fills that disk."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.store import ActionStore, Database, IncidentStore
from tests.conftest import BIN
from tests.support.needs_root import needs_root

#: $1 the state directory the command sees, $2 the one the test keeps, then the command: the
#: state copied onto a 4 MiB tmpfs (its logs on one of their own, so that stderr holds only
#: what the command says), and what the command left copied back
SCRIPT = ('state=$1 kept=$2; shift 2; disk=${state%/*}; '
          'mount -t tmpfs -o size=4m tmpfs "$disk" && cp -a "$kept" "$state" '
          '&& mkdir -p "$state/logs" && mount -t tmpfs -o size=16m tmpfs "$state/logs" '
          '|| exit 9; "$@"; rc=$?; rm -f "$disk/filler"; cp "$state"/state.db* "$kept/"; '
          'exit $rc')


def test_a_fix_whose_end_the_full_disk_refused_says_it_ran_and_a_daemon_settles_it(
        tmp_path: Path) -> None:
    needs_root("a mount of its own")
    disk = tmp_path / "disk"
    disk.mkdir()
    state = disk / "state"
    ran = tmp_path / "ran"
    # the fix: it runs, and as it runs the state database's disk fills (a log that grew)
    journalctl = tmp_path / "journalctl"
    journalctl.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {ran}\n'
                          f'head -c 64M /dev/zero > {disk}/filler 2>/dev/null\nexit 0\n')
    journalctl.chmod(0o755)
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\n[programs]\njournalctl = "{journalctl}"\n')
    kept = tmp_path / "kept"
    settings = Settings(ai_name="hal", state_dir=kept)
    store = IncidentStore(Database(settings.db_path))
    host = short_hostname()
    action = asyncio.run(Executor(settings, store, {host: LocalTransport(host)}).propose(
        host, "vacuum_journal", {"max_size": "500M"}))
    assert action.state == "pending"
    store.db.close()

    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config), "AI_SYSADMIN_STATE_DIR": str(state)}
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", SCRIPT, "sh",
         str(state), str(kept), str(BIN), "approve", "approve", str(action.id)],
        capture_output=True, text=True, timeout=120, env=env)

    assert ran.read_text() == "--vacuum-size=500M\n"  # it ran, once
    assert (done.returncode, done.stderr) == (
        2, f"error: action {action.id} on {host} (vacuum_journal {action.subject}): its "
        f"commands ran, but its end is not recorded: the state database {state / 'state.db'} "
        "cannot be written: the disk is full (database or disk is full); nothing of this "
        "change was stored; it shows executing until a daemon settles it after this process "
        f"ends; a person must check {host}\n")
    store = IncidentStore(Database(settings.db_path))
    actions = ActionStore(store.db)
    assert actions.get(action.id).state == "executing"
    # as said: the daemon's housekeeping settles what the ended process left, never to run
    # it again
    Executor(settings, store, {host: LocalTransport(host)}).recover()
    assert actions.get(action.id).state == "failed"
    assert ran.read_text() == "--vacuum-size=500M\n"
