"""A fix run by `sudo hal-approve approve` on a machine whose /proc is mounted hidepid=2 (a
common hardening): that command switched to the daemon's user, which makes it a process that
user cannot see in /proc. The daemon's housekeeping, and the tidy every `approve list` does
first, counted it gone: the fix still running was failed as "interrupted", its incident
investigated again, a second fix decided. A process the kernel says runs is alive, seen or
not; one that ended is still found gone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from tests.conftest import BIN
from tests.executor.vacuum import pending_vacuum
from tests.support.needs_root import needs_root

NOBODY = 65534

#: `sudo hal-approve approve 1`, as far as its hold goes: root, switched to the state's owner
#: (non-dumpable from then on: hidden by hidepid), approves and starts the fix, then "runs"
#: it until told to end, and says what the action is then
HOLDER = """
import os, sys, time
from pathlib import Path
from ai_sysadmin.cli.context import as_state_owner
from ai_sysadmin.store import ActionStore, Database
state, work = Path(sys.argv[1]), Path(sys.argv[2])
as_state_owner(state)
actions = ActionStore(Database(state / "state.db"))
actions.move(1, "approved", "alice", "yes", expect="pending")
actions.claim(1, "alice")
(work / "claimed").write_text(str(os.getpid()))
deadline = time.monotonic() + 90
while not (work / "release").exists() and time.monotonic() < deadline:
    time.sleep(0.02)
print(actions.get(1).state, flush=True)
"""

#: the daemon's housekeeping, as systemd's User= starts it (dumpable); also what it reads of
#: the holder's /proc entry and of a root process's liveness
DAEMON = """
import json, sys
from pathlib import Path
from ai_sysadmin.store import ActionStore, Database
from ai_sysadmin.store.actions import process_alive
state, holder, root = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
try:
    open(f"/proc/{holder}/stat").close()
    hidden = False
except OSError:
    hidden = True
actions = ActionStore(Database(state / "state.db"))
print(json.dumps({"hidden": hidden, "interrupted": actions.interrupted(),
                  "state": actions.get(1).state, "root_alive": process_alive(root)}))
"""

#: pid 1 of a PID namespace of its own whose /proc is mounted hidepid=2: starts the holder,
#: runs the daemon's housekeeping and a root `approve list` while it runs, ends it, and
#: runs the housekeeping again
DRIVER = """
import json, os, subprocess, sys, time
from ai_sysadmin.store.actions import this_process
py, state, work, cli = sys.argv[1:5]
def daemon(holder):
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", py,
            f"{work}/daemon.py", state, holder, this_process()]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout) if done.returncode == 0 else done.stderr
holder = subprocess.Popen([py, f"{work}/holder.py", state, work], stdout=subprocess.PIPE,
                          text=True)
deadline = time.monotonic() + 90
while not os.path.exists(f"{work}/claimed") and holder.poll() is None \\
        and time.monotonic() < deadline:
    time.sleep(0.02)
pid = str(holder.pid)
running = daemon(pid)
listed = subprocess.run([cli, "approve", "list", "--all"], capture_output=True, text=True,
                        timeout=60)
open(f"{work}/release", "w").close()
said = holder.communicate(timeout=60)[0].strip()
print(json.dumps({"running": running, "listed": [listed.returncode, listed.stdout,
                  listed.stderr], "holder_saw": said, "after": daemon(pid)}))
"""

#: in a mount namespace of its own: /proc hidepid=2, and /root one the daemon's user may
#: enter holding only the interpreter where that lives under /root (pyenv's)
MOUNTS = ('fake=$1 keep=$2; shift 2; mount -t proc -o hidepid=2 proc /proc && '
          '{ [ -z "$keep" ] || { mount --bind "/root/$keep" "$fake/$keep" && '
          'mount --rbind "$fake" /root; }; } && exec "$@"')


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory any user may enter: the daemon's user reads the scripts there."""
    needs_root("a /proc mounted hidepid=2 in namespaces of its own")
    top = Path(tempfile.mkdtemp(prefix="ai-sysadmin-hidepid-"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top)


def test_a_fix_run_by_a_process_hidden_in_proc_stays_running_until_it_ends(
        shared: Path) -> None:
    state = shared / "state"
    pending_vacuum(Settings(ai_name="hal", state_dir=state))
    work = shared / "work"
    work.mkdir(mode=0o777)
    work.chmod(0o777)
    for path in (state, *state.iterdir()):
        os.chown(path, NOBODY, NOBODY)
    state.chmod(0o750)
    for name, text in (("holder.py", HOLDER), ("daemon.py", DAEMON), ("driver.py", DRIVER)):
        (work / name).write_text(text)
    (work / "config.toml").write_text("")
    fake = shared / "fake-root"
    fake.mkdir(mode=0o711)
    prefix = Path(sys.base_prefix).resolve()
    keep = prefix.relative_to("/root").parts[0] if prefix.is_relative_to("/root") else ""
    if keep:
        (fake / keep).mkdir()
    env = {**os.environ, "AI_SYSADMIN_STATE_DIR": str(state), "HOME": "/root",
           "AI_SYSADMIN_CONFIG": str(work / "config.toml")}
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--", "sh", "-c",
         MOUNTS, "sh", str(fake), keep, sys.executable, str(work / "driver.py"),
         sys.executable, str(state), str(work), str(BIN)],
        capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    running = seen["running"]
    assert isinstance(running, dict), running
    # what the test is about: the daemon's user cannot see the holder in /proc
    assert running["hidden"] is True
    # the daemon's housekeeping leaves the running fix to it
    assert running["interrupted"] == [] and running["state"] == "executing", running
    # and so does `sudo hal-approve list --all` (its tidy), which lists it running
    returncode, listed, errors = seen["listed"]
    assert returncode == 0, errors
    assert "executing" in listed, listed
    # the fix's own process finds it as it left it
    assert seen["holder_saw"] == "executing"
    # a process of another user, hidden as well, is alive
    assert running["root_alive"] is True
    # once its process has ended without recording the end, the fix was interrupted
    after = seen["after"]
    assert isinstance(after, dict), after
    assert after["interrupted"] == [1] and after["state"] == "failed", after
