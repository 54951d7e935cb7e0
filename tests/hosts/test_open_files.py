"""This process's open files: room made for a fleet, and a host this machine could not ask
(its own open files ran out) told apart from one that cannot be reached.

Each case runs in a child process: an open files limit is the whole process's, and the test
worker's must stay as it is.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOM = textwrap.dedent("""
    import json, logging, resource, sys
    from ai_sysadmin.hosts.open_files import make_room
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    soft, hard, hosts = map(int, sys.argv[1:4])
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    room = make_room(hosts)
    print(json.dumps([resource.getrlimit(resource.RLIMIT_NOFILE)[0], room.enough]))
""")

STARVED = textwrap.dedent("""
    import asyncio, json, os, resource, sys
    from concurrent.futures import ThreadPoolExecutor
    from ai_sysadmin.config import Settings
    from ai_sysadmin.hosts.ssh import SshTarget, SshTransport
    from ai_sysadmin.orchestrator.checker import HostChecker
    from ai_sysadmin.store import Database, IncidentStore

    def seen(report, store):
        (row,) = store.hosts()
        return {"findings": [[f.rule, f.summary] for f in report.findings],
                "judged": sorted(report.judged_rules), "errors": report.errors,
                "unasked": getattr(report.snapshot, "unasked", None),
                "live": [i.rule for i in store.incidents()], "reachable": row["reachable"]}

    async def main():
        # one worker thread, whose store connection the first check opens: a thread started
        # later would need files to open its own, and none are left
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(1))
        state, port = sys.argv[1], int(sys.argv[2])
        settings = Settings(ai_name="t", state_dir=state)
        store = IncidentStore(Database(settings.db_path))
        target = SshTarget(host="127.0.0.1", port=port, user="root",
                           known_hosts=os.path.join(state, "known_hosts"),
                           global_known_hosts=None, connect_timeout=5)
        checker = HostChecker(SshTransport(target, name="web1"), settings, store)
        fed = await checker.check()  # a closed port: unreachable, an incident opened
        fed = seen(fed, store)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        held = len(os.listdir("/proc/self/fd")) - 1  # less the one that listed them
        resource.setrlimit(resource.RLIMIT_NOFILE, (held, hard))
        try:
            starved = await checker.check()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        print(json.dumps({"starved": seen(starved, store), "fed": fed}))

    asyncio.run(main())
""")


LOCAL = textwrap.dedent("""
    import asyncio, json, os, resource, sys
    from ai_sysadmin.config import Settings
    from ai_sysadmin.hosts.transport import LocalTransport
    from ai_sysadmin.orchestrator.checker import HostChecker

    async def main():
        settings = Settings(ai_name="t", state_dir=sys.argv[1])
        checker = HostChecker(LocalTransport("here"), settings, None)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (len(os.listdir("/proc/self/fd")) - 1, hard))
        try:
            report = await checker.check()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        print(json.dumps({"findings": [f.rule for f in report.findings],
                          "judged": sorted(report.judged_rules),
                          "errors": sorted(set(report.errors.values()))}))

    asyncio.run(main())
""")


#: what `check --json` and `systems refresh --json` say of this machine's check, every file
#: of which this process could not open
SAID = textwrap.dedent("""
    import asyncio, json, os, resource, sys
    from ai_sysadmin.cli.check import _as_dict, exit_code
    from ai_sysadmin.cli.systems import _refreshed
    from ai_sysadmin.config import Settings
    from ai_sysadmin.hosts.transport import LocalTransport
    from ai_sysadmin.orchestrator.checker import HostChecker

    async def main():
        settings = Settings(ai_name="t", state_dir=sys.argv[1])
        checker = HostChecker(LocalTransport("here"), settings, None, consumer="check")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (len(os.listdir("/proc/self/fd")) - 1, hard))
        try:
            report = await checker.check("cli")
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        said = _as_dict(report)
        print(json.dumps({"check": {k: said[k] for k in ("reachable", "not_asked", "healthy")},
                          "code": exit_code(report),
                          "refresh": _refreshed(None, report.host, report)["reachable"]}))

    asyncio.run(main())
""")


def _child(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(("soft", "hard", "hosts", "now", "enough"), [
    (1024, 8192, 300, 256 + 4 * 300, True),   # raised to what 300 hosts need
    (4000, 8192, 300, 4000, True),            # enough already: never lowered
    (100, 500, 300, 500, False),              # up to the hard limit, and said
])
def test_room_is_made_for_the_fleet(soft: int, hard: int, hosts: int, now: int,
                                    enough: bool) -> None:
    done = _child(ROOM, str(soft), str(hard), str(hosts))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [now, enough]
    if not enough:
        assert "raise the limit" in done.stderr and "300 managed hosts" in done.stderr


def test_a_host_not_asked_for_want_of_open_files_is_not_unreachable(tmp_path: Path) -> None:
    """This process's open files ran out (a fleet larger than its limit): the host was never
    asked, so it is neither found unreachable (a critical page for a host that is up) nor
    reachable, nor judged at all; the check says why. With files to spare the same checker
    found the closed port unreachable: that stays as it was."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = _child(STARVED, str(tmp_path), str(port))
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    starved, fed = seen["starved"], seen["fed"]
    assert starved["findings"] == []
    # its incidents stay as they are: an unreachable one is not resolved by it either
    assert "host_unreachable" not in starved["judged"]
    assert "host_unreachable" in fed["judged"]
    assert "out of open files" in starved["unasked"]
    assert all("out of open files" in e and "no answer" not in e
               for e in starved["errors"].values())
    assert [rule for rule, _ in fed["findings"]] == ["host_unreachable"]
    assert "connection refused" in json.dumps(fed["errors"])
    # what the store knew of it stays: still unreachable, its incident still live
    assert fed["reachable"] == starved["reachable"] == 0
    assert fed["live"] == starved["live"] == ["host_unreachable"]


FLEET = textwrap.dedent("""
    import json, resource, sys
    from ai_sysadmin.config import Settings
    from ai_sysadmin.orchestrator.runtime import Runtime
    from ai_sysadmin.store import Database, IncidentStore
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 8192))
    settings = Settings(ai_name="t", state_dir=sys.argv[1],
                        remote_systems=[f"web{n}.example.test" for n in range(300)])
    runtime = Runtime(settings, IncidentStore(Database(settings.db_path)))
    hosts = len(runtime.transports)
    print(json.dumps([hosts, resource.getrlimit(resource.RLIMIT_NOFILE)[0]]))
""")


def test_the_daemon_makes_room_for_its_fleet(tmp_path: Path) -> None:
    """The transports of a fleet come with room for their connections: a service's default
    limit of 1024 open files held some hundreds of hosts, and the rest went unchecked."""
    done = _child(FLEET, str(tmp_path))
    assert done.returncode == 0, done.stderr
    hosts, soft = json.loads(done.stdout)
    assert hosts == 301  # this machine and 300 remote hosts, none connected yet
    assert soft >= 256 + 4 * 300


STORE = textwrap.dedent("""
    import json, os, resource, sys, threading
    from ai_sysadmin.store import Database
    db = Database(os.path.join(sys.argv[1], "state.db"))
    db.conn.execute("SELECT 1")
    said = []
    def write():  # a worker thread's first use opens its own connection
        try:
            with db.transaction() as conn:
                conn.execute("SELECT 1")
        except Exception as exc:
            said.append(f"{type(exc).__name__}: {exc}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) - 1, hard))
    thread = threading.Thread(target=write)
    thread.start()
    thread.join()
    print(json.dumps(said))
""")


def test_a_store_this_process_has_no_file_left_for_says_so(tmp_path: Path) -> None:
    """SQLite says "unable to open database file" of any open that failed: a process out of
    open files was told its state database was read-only, and a person went looking at the
    file's permissions."""
    done = _child(STORE, str(tmp_path))
    assert done.returncode == 0, done.stderr
    [said] = json.loads(done.stdout)
    assert said.startswith("StoreRefused: ")
    assert "out of open files" in said and "read-only" not in said


def test_this_machine_out_of_open_files_is_not_itself_unreachable(tmp_path: Path) -> None:
    """This machine's own check, every command and file of which this process could not open:
    not "here is unreachable", but not asked, for that reason, every section alike."""
    done = _child(LOCAL, str(tmp_path))
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert "host_unreachable" not in seen["findings"] + seen["judged"]
    assert seen["errors"] and all("out of open files" in e for e in seen["errors"]), seen


def test_check_json_of_a_host_not_asked_says_its_reach_is_not_known(tmp_path: Path) -> None:
    """Not asked is not reached: `check --json` said "reachable": true beside "not_asked",
    and a script reading it took the host for one that answered; null, as `systems refresh
    --json` says it."""
    done = _child(SAID, str(tmp_path))
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert "out of open files" in seen["check"]["not_asked"], seen
    assert seen["check"]["reachable"] is None and seen["refresh"] is None
    assert seen["check"]["healthy"] is False and seen["code"] == 2
