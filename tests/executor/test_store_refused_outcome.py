"""A fix that ran while the machine refused the state database its outcome (its disk filled
as the fix ran): a person is told that it ran and that its end is not recorded, not "nothing
of this change was stored", which read as if nothing had happened on the host. A real
`approve approve` process, its state on a real tmpfs in a mount namespace of its own, whose
fix (a real program) fills that disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.store import ActionStore, Database, IncidentStore
from tests.conftest import BIN
from tests.support.needs_root import needs_root

from .vacuum import pending_vacuum

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
    action = pending_vacuum(settings)
    host = short_hostname()

    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config), "AI_SYSADMIN_STATE_DIR": str(state)}
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", SCRIPT, "sh",
         str(state), str(kept), str(BIN), "approve", "approve", str(action.id)],
        capture_output=True, text=True, timeout=120, env=env)

    assert ran.read_text() == "--vacuum-size=500M\n"  # it ran, once
    # what it ran is said as it ran, then that its end is not recorded
    assert (done.returncode, done.stderr) == (
        2, f"action {action.id} on {host}: running journalctl --vacuum-size=500M\n"
        f"action {action.id} on {host}: ran journalctl --vacuum-size=500M: exit status 0\n"
        f"error: action {action.id} on {host} (vacuum_journal {action.subject}): its "
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


#: an executor that lives on, as the daemon's: it decides a journal vacuum for the incident
#: of a file system that was full, and as it asks the host before it starts it (`true`), the
#: disk under the state database fills; the file system is well again by the time the disk
#: has room. What it said and did, one line each.
LATE = """
import asyncio, os, pathlib, sys
from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.errors import StoreRefused
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import ActionStore, Database, IncidentStore
disk, journalctl = pathlib.Path(sys.argv[1]), sys.argv[2]
settings = Settings(ai_name="hal", state_dir=disk / "state", autonomy_level="auto-safe",
                    programs={"journalctl": journalctl})
store = IncidentStore(Database(settings.db_path))
host = short_hostname()
full = Finding(host, "disk_space", "/srv/gone", Severity.WARNING, "/srv/gone is 97% full")
(incident_id,) = store.record_check(host, [full], {"disk_space"}).opened
executor = Executor(settings, store, {host: LocalTransport(host)})
executor.keeps_ends = True

async def main():
    action = await executor.propose(host, "vacuum_journal", {"max_size": "500M"},
                                    incident_id=incident_id)
    print(action.state)
    try:
        await executor.run(action.id)
    except StoreRefused as exc:
        print("refused:", exc)
    print(ActionStore(store.db).get(action.id).state)
    try:
        await executor.start_again()
    except StoreRefused:  # the disk is still full: kept
        print(ActionStore(store.db).get(action.id).state)
    (disk / "filler").unlink()
    (tried,) = await executor.start_again()
    print(tried.state, tried.reason)
    print(len(await executor.start_again()))

try:
    asyncio.run(main())
except StoreRefused as exc:
    print("raised:", exc)
"""


def test_a_fix_whose_start_the_full_disk_refused_is_not_run_once_its_problem_is_gone(
        tmp_path: Path) -> None:
    """Tried again once the disk has room, a fix whose start the store refused is judged
    afresh: no check could be stored while the disk was full, so a check says whether its
    problem is still there; gone, the fix is not needed, and nothing runs."""
    needs_root("a mount of its own")
    disk = tmp_path / "disk"
    disk.mkdir()
    ran, true = tmp_path / "ran", tmp_path / "bin" / "true"
    journalctl = tmp_path / "journalctl"
    journalctl.write_text(f'#!/bin/sh\ncase "$*" in *--vacuum-size=*) echo "$*" >> {ran}; '
                          'exit 0 ;; esac\nexec /usr/bin/journalctl "$@"\n')
    true.parent.mkdir()
    true.write_text(f"#!/bin/sh\n[ -e {tmp_path}/probed ] || {{ : > {tmp_path}/probed; "
                    f"head -c 64M /dev/zero > {disk}/filler 2>/dev/null; }}\nexit 0\n")
    for program in (journalctl, true):
        program.chmod(0o755)
    env = {**os.environ, "PATH": f"{true.parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
         'mount -t tmpfs -o size=4m tmpfs "$1" && shift && exec "$@"', "sh", str(disk),
         sys.executable, "-c", LATE, str(disk), str(journalctl)],
        capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    decided, refused, kept, still, tried, after = done.stdout.splitlines()
    assert decided == "approved"
    assert refused.startswith("refused: action 1 on ") and refused.endswith(
        ": nothing of it ran; its start is not recorded: the state database "
        f"{disk / 'state' / 'state.db'} cannot be written: the disk is full (database or disk "
        "is full); nothing of this change was stored; it shows approved and is tried again, "
        "judged afresh, once the state database takes writes again (it runs at most once)")
    assert (kept, still) == ("approved", "approved")
    assert tried == ("not_needed the finding is gone by the time the state database took "
                     "writes again: no longer needed, not run")
    assert after == "0"
    assert not ran.exists()  # nothing ran
