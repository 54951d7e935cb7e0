"""``setup`` on a real systemd (the fault lab), then the units it wrote: the daemon runs as its
own user inside its sandbox and detects a failed unit, and every kind of fix the sudoers drop-in
allows still runs through sudo from inside that same sandbox."""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.safety.clean_script import clean_argv
from tests.conftest import BIN, hidden_in_the_lab

pytestmark = pytest.mark.lab

CONFIG = "/etc/ai-sysadmin/config.toml"
DAEMON = "labai-ai.service"
#: an operator's shell in the lab: not this test's AI_SYSADMIN_* isolation variables
OPERATOR = ("env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
#: the operator's `ai-sysadmin setup`, this checkout's (the installed program, and the units
#: it would write, may be another checkout's)
SETUP = (*OPERATOR, f"PYTHONPATH={Path(__file__).parents[2] / 'src'}", str(BIN), "setup")
# fails on its first start only: a restart fixes it
FLAKY = ("[Service]\nExecStart=/bin/sh -c 'if [ -e /run/ran-once ]; then exec sleep infinity;"
         " fi; touch /run/ran-once; exit 1'\n")


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def open_the_way_to(sb: Sandbox, program: Path) -> None:
    """This machine's venv interpreter may live under /root (mode 0700): let the daemon's user
    through, in the lab's copy-on-write view only."""
    for path in (program, Path(sys.executable).resolve()):
        for parent in path.parents:
            mode = int(sb.exec(["stat", "-c", "%a", str(parent)], check=True).stdout, 8)
            if not mode & 0o001:  # (a checkout bound in read-only is open already)
                sb.exec(["chmod", "o+x", str(parent)], check=True)


def worker_sees_the_checkout(sb: Sandbox) -> None:
    """A CI clone runs its program from /tmp, which the worker's own /tmp hides
    (PrivateTmp=yes): that unit alone is given the lab's /tmp. An install never runs from
    there."""
    if any(path.startswith("/tmp/") for path in hidden_in_the_lab()):
        sb.write_file("/etc/systemd/system/labai-llm-worker.service.d/checkout-in-tmp.conf",
                      "[Service]\nPrivateTmp=no\n", 0o644)
        sb.exec(["systemctl", "daemon-reload"], check=True)


@pytest.fixture(scope="module")
def installed() -> Iterator[Sandbox]:
    with Sandbox(hostname="labhost", binds=hidden_in_the_lab()) as sb:
        open_the_way_to(sb, BIN)
        done = sb.exec([*SETUP, "--name", "labai", "--program", str(BIN)],
                       timeout=120)
        assert done.ok, done.stderr
        worker_sees_the_checkout(sb)
        # the config setup wrote, with investigations off: no model answers in this lab
        sb.exec(["sed", "-i", "s/^# investigate = true$/investigate = false/", CONFIG],
                check=True)
        # notifications through real Apprise to a receiver on the lab's own loopback
        sb.write_file(URLS, f"json://127.0.0.1:{RECEIVER_PORT}/\n", 0o640)
        sb.exec(["chgrp", "ai-sysadmin", URLS], check=True)
        sb.exec(["sed", "-i", f"s|^# apprise_urls_file = .*|apprise_urls_file = \"{URLS}\"|",
                 CONFIG], check=True)
        sb.write_file("/srv/receiver.py", RECEIVER, 0o644)
        sb.exec(["systemd-run", "--unit=receiver", str(Path(sys.executable).resolve()),
                 "/srv/receiver.py"], check=True)
        yield sb


URLS = "/etc/ai-sysadmin/apprise-urls"
RECEIVER_PORT = 8765
#: what a notification service does with Apprise's json:// POSTs: keep them
RECEIVER = f"""
import http.server

class Keep(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open("/srv/received.jsonl", "ab") as out:
            out.write(body + b"\\n")
        self.send_response(200)
        self.end_headers()

http.server.HTTPServer(("127.0.0.1", {RECEIVER_PORT}), Keep).serve_forever()
"""


def status(sb: Sandbox, pid: str) -> dict[str, str]:
    text = sb.exec(["cat", f"/proc/{pid}/status"], check=True).stdout
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_setup_then_start_runs_a_daemon_that_detects_a_failed_unit(installed: Sandbox) -> None:
    sb = installed
    sb.exec(["systemctl", "start", DAEMON], check=True)
    wait_for(lambda: sb.exec(["systemctl", "is-active", DAEMON]).stdout.strip() == "active",
             "the daemon to run")
    pid = sb.exec(["systemctl", "show", "-p", "MainPID", "--value", DAEMON]).stdout.strip()
    uid = sb.exec(["id", "-u", "ai-sysadmin"], check=True).stdout.strip()
    proc = status(sb, pid)
    assert proc["Uid"].split() == [uid] * 4 and proc["CapEff"].strip("0") == ""
    assert proc["NoNewPrivs"] == "0" and proc["Seccomp"] == "2"  # filtered, and sudo can run
    groups = {sb.exec(["getent", "group", g]).stdout.split(":")[2]
              for g in ("adm", "systemd-journal")}
    assert groups <= set(proc["Groups"].split())
    sb.write_file("/etc/systemd/system/broken.service", "[Service]\nExecStart=/bin/false\n")
    sb.exec(["systemctl", "daemon-reload"], check=True)
    sb.exec(["systemctl", "start", "broken.service"])

    def detected() -> bool:
        # the operator's command, through the link setup made
        listed = sb.exec([*OPERATOR, "labai-issues", "list", "--json"])
        return listed.ok and any((i["rule"], i["subject"]) == ("failed_unit", "broken.service")
                                 for i in json.loads(listed.stdout))

    wait_for(detected, "the failed unit's incident")
    assert sb.exec(["systemctl", "is-active", DAEMON]).stdout.strip() == "active"

    def notified() -> list[dict[str, str]]:
        got = sb.exec(["cat", "/srv/received.jsonl"]).stdout
        return [m for m in map(json.loads, got.splitlines()) if "broken.service" in m["title"]]

    wait_for(lambda: bool(notified()), "the notification of the failed unit")
    message = notified()[0]
    assert message["title"].startswith("[labai] labhost:")
    assert "labai-issues show" in message["message"]
    again = sb.exec([*SETUP, "--program", str(BIN), "--json"],
                    timeout=120)
    assert again.ok and {s["action"] for s in json.loads(again.stdout)} == {"keep"}


def probe_unit(sb: Sandbox, script: str) -> str:
    """The daemon's own unit, sandbox and all, running ``script`` instead of the daemon."""
    unit = sb.exec(["cat", f"/etc/systemd/system/{DAEMON}"], check=True).stdout
    daemon = f"{BIN} --config {CONFIG} run"
    assert daemon in unit
    unit = unit.replace(daemon, f"/bin/sh {script}").replace("Type=exec", "Type=oneshot")
    # a oneshot takes no Restart= of any kind (RestartForceExitStatus= included)
    return "".join(line for line in unit.splitlines(keepends=True)
                   if not line.startswith("Restart"))


def test_every_fix_the_drop_in_allows_runs_inside_the_daemon_sandbox(
        installed: Sandbox) -> None:
    sb = installed
    sb.write_file("/etc/systemd/system/flaky.service", FLAKY)
    sb.exec(["systemctl", "daemon-reload"], check=True)
    sb.exec(["systemctl", "start", "flaky.service"])
    sb.exec(["systemd-run", "--unit=victim", "-p", "User=nobody", "sleep", "1000"], check=True)
    victim = sb.exec(["systemctl", "show", "-p", "MainPID", "--value", "victim.service"]).stdout
    # an old file of another user, in a directory only that user may enter
    sb.exec(["install", "-d", "-o", "nobody", "-m", "700", "/var/tmp/cache-of-nobody"],
            check=True)
    sb.exec(["install", "-o", "nobody", "-m", "600", "/dev/null", "/var/tmp/cache-of-nobody/old"],
            check=True)
    sb.exec(["touch", "-d", "10 days ago", "/var/tmp/cache-of-nobody/old"], check=True)
    # the argvs as the executor runs them: programs by their bare names, behind sudo -n --
    fixes = {
        "restart": ["systemctl", "restart", "--", "flaky.service"],
        "vacuum": ["journalctl", "--vacuum-size=500M"],
        "kill": ["kill", "-TERM", victim.strip()],
        "clean": list(clean_argv("/var/tmp/cache-of-nobody", 1,
                                 ["/var/cache", "/var/tmp", "/tmp"])),
        "refused": ["systemctl", "stop", "--", "flaky.service"],  # in no rule
    }
    script = "".join(f"sudo -n -- {shlex.join(argv)}; echo {name}=$?\n"
                     for name, argv in fixes.items())
    sb.write_file("/probe.sh", "id -un\n" + script)
    sb.write_file("/etc/systemd/system/probe.service", probe_unit(sb, "/probe.sh"))
    sb.exec(["systemctl", "daemon-reload"], check=True)
    sb.exec(["systemctl", "start", "probe.service"], timeout=60)
    lines = sb.exec(["journalctl", "-u", "probe.service", "-o", "cat", "--no-pager"]).stdout
    results = dict(line.split("=", 1) for line in lines.splitlines()
                   if line.split("=", 1)[0] in fixes)
    assert "ai-sysadmin" in lines.splitlines()
    assert results == {"restart": "0", "vacuum": "0", "kill": "0", "clean": "0",
                       "refused": "1"}, lines[-3000:]
    assert sb.exec(["systemctl", "is-active", "flaky.service"]).stdout.strip() == "active"
    assert sb.exec(["systemctl", "is-active", "victim.service"]).stdout.strip() != "active"
    assert not sb.exec(["test", "-e", "/var/tmp/cache-of-nobody/old"]).ok


def test_a_ping_with_its_file_capability_runs_from_the_daemons_unit(installed: Sandbox) -> None:
    """Debian's and Ubuntu's ping carries the file capability cap_net_raw+ep: the kernel
    refused to run it (EPERM) under the unit's bounding set, and check_reachability could
    never ping from the daemon. A stand-in with that capability, in the daemon's own unit."""
    sb = installed
    sb.exec(["cp", "/bin/true", "/srv/ping"], check=True)
    # setcap cap_net_raw+ep, without libcap's tools: the kernel's version 2 attribute
    sb.exec([str(Path(sys.executable).resolve()), "-c",
             "import os, struct; os.setxattr('/srv/ping', 'security.capability', "
             "struct.pack('<5I', 0x02000001, 1 << 13, 0, 0, 0))"], check=True)
    sb.write_file("/ping-probe.sh", "/srv/ping; echo ping=$?\n")
    sb.write_file("/etc/systemd/system/ping-probe.service", probe_unit(sb, "/ping-probe.sh"))
    sb.exec(["systemctl", "daemon-reload"], check=True)
    sb.exec(["systemctl", "start", "ping-probe.service"], timeout=60)
    said = sb.exec(["journalctl", "-u", "ping-probe.service", "-o", "cat", "--no-pager"]).stdout
    assert "ping=0" in said.splitlines(), said[-2000:]


def test_zfs_control_node_is_open_to_the_daemons_unit(installed: Sandbox) -> None:
    """zpool and zfs (read-only, on the model's list) open /dev/zfs; PrivateDevices= hid it,
    and every call said "The ZFS modules are not loaded" of a host with pools. A stand-in node
    (a real one is 10:249, with no driver here; tun's 10:200 opens without privileges), in the
    daemon's own unit."""
    sb = installed
    sb.exec(["mknod", "-m", "666", "/dev/zfs", "c", "10", "200"], check=True)
    try:
        sb.write_file("/zfs-probe.sh", "exec 3<>/dev/zfs; echo opened=$?\n")
        sb.write_file("/etc/systemd/system/zfs-probe.service", probe_unit(sb, "/zfs-probe.sh"))
        sb.exec(["systemctl", "daemon-reload"], check=True)
        sb.exec(["systemctl", "start", "zfs-probe.service"], timeout=60)
        said = sb.exec(["journalctl", "-u", "zfs-probe.service", "-o", "cat",
                        "--no-pager"]).stdout
        assert "opened=0" in said.splitlines(), said[-2000:]
    finally:
        sb.exec(["rm", "-f", "/dev/zfs"], check=True)


def test_the_daemon_has_a_temporary_directory_whatever_clean_paths_opens(
        installed: Sandbox) -> None:
    """With safety.clean_paths narrowed to /var/cache (the module's own example), neither /tmp
    nor /var/tmp was writable in the daemon's sandbox: Python found no temporary directory,
    and `import asyncssh` failed where a C compiler is installed (the daemon exited 2, and
    stayed down). The daemon's unit, its writable paths cut to the state directory."""
    sb = installed
    script = ("import tempfile\nwith tempfile.NamedTemporaryFile() as f:\n"
              "    print('temporary', f.name)\n")
    sb.write_file("/srv/tmp-probe.py", script, 0o644)
    sb.write_file("/tmp-probe.sh", f"{Path(sys.executable).resolve()} /srv/tmp-probe.py\n")
    unit = probe_unit(sb, "/tmp-probe.sh")
    (paths,) = [line for line in unit.splitlines() if line.startswith("ReadWritePaths=")]
    unit = unit.replace(paths, "ReadWritePaths=/var/lib/ai-sysadmin")
    sb.write_file("/etc/systemd/system/tmp-probe.service", unit)
    sb.exec(["systemctl", "daemon-reload"], check=True)
    sb.exec(["systemctl", "start", "tmp-probe.service"], timeout=60)
    lines = sb.exec(["journalctl", "-u", "tmp-probe.service", "-o", "cat", "--no-pager"]).stdout
    assert "temporary /run/labai-ai/" in lines, lines[-2000:]


def show(sb: Sandbox, unit: str) -> dict[str, str]:
    props = "ActiveState,LoadState,NRestarts,ExecMainStatus,MainPID"
    text = sb.exec(["systemctl", "show", "-p", props, unit], check=True).stdout
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


WORKER = "labai-llm-worker.service"


def test_restarting_the_daemon_restarts_its_worker(installed: Sandbox) -> None:
    # an upgrade is `systemctl restart {name}-ai`: a worker left running keeps the old code
    sb = installed
    sb.exec(["systemctl", "start", DAEMON], check=True)
    for unit in (DAEMON, WORKER):
        wait_for(lambda u=unit: show(sb, u)["ActiveState"] == "active", f"{unit} to run")
    before = show(sb, WORKER)["MainPID"]
    sb.exec(["systemctl", "restart", DAEMON], check=True)
    wait_for(lambda: show(sb, WORKER)["ActiveState"] == "active", "the worker to run again")
    assert show(sb, WORKER)["MainPID"] not in (before, "0")
    sb.exec(["systemctl", "stop", DAEMON], check=True)
    # the worker's stop, propagated by PartOf=, may still be under way when systemctl returns
    wait_for(lambda: show(sb, WORKER)["ActiveState"] == "inactive", "the worker to stop")


def test_the_daemons_runtime_directory_is_its_own_and_outlives_its_restarts(
        installed: Sandbox) -> None:
    """What the daemon told a person while its state disk was full is kept there
    (orchestrator/store_down.py): written by the daemon's user, kept when systemd starts it
    again after a failure (an exit 75 on that disk), gone with a stop."""
    sb = installed
    run = "/run/labai-ai"
    sb.exec(["systemctl", "start", DAEMON], check=True)
    wait_for(lambda: show(sb, DAEMON)["ActiveState"] == "active", "the daemon to run")
    assert sb.exec(["stat", "-c", "%U %G %a", run], check=True).stdout.split() == [
        "root", "ai-sysadmin", "770"]
    as_daemon = ["setpriv", "--reuid=ai-sysadmin", "--regid=ai-sysadmin", "--init-groups", "--"]
    sb.exec([*as_daemon, "sh", "-c", f"umask 077; echo told > {run}/told; chmod 660 {run}/told"],
            check=True)
    before = show(sb, DAEMON)["MainPID"]
    sb.exec(["kill", "-KILL", before], check=True)  # a failure: Restart=on-failure, 5 s later
    wait_for(lambda: show(sb, DAEMON)["MainPID"] not in (before, "0"), "the daemon restarted")
    # given to root at the start, the daemon's user reads and replaces it still
    assert sb.exec([*as_daemon, "cat", f"{run}/told"], check=True).stdout == "told\n"
    sb.exec([*as_daemon, "sh", "-c", f"echo again > {run}/new && mv {run}/new {run}/told"],
            check=True)
    sb.exec(["systemctl", "stop", DAEMON], check=True)
    assert not sb.exec(["test", "-e", run]).ok


def test_a_broken_config_stops_both_units_instead_of_restarting_them(
        installed: Sandbox) -> None:
    sb = installed
    sb.exec(["cp", "-p", CONFIG, f"{CONFIG}.good"], check=True)
    try:
        sb.exec(["sh", "-c", f"echo 'check_interval = \"often\"' >> {CONFIG}"], check=True)
        sb.exec(["systemctl", "restart", DAEMON])
        for unit in (DAEMON, WORKER):
            wait_for(lambda u=unit: show(sb, u)["ActiveState"] == "failed", f"{unit} to fail")
        time.sleep(7)  # past RestartSec=5s: a restart would have come by now
        for unit in (DAEMON, WORKER):
            assert {k: show(sb, unit)[k] for k in ("ActiveState", "NRestarts", "ExecMainStatus")
                    } == {"ActiveState": "failed", "NRestarts": "0", "ExecMainStatus": "2"}, unit
    finally:
        sb.exec(["mv", f"{CONFIG}.good", CONFIG], check=True)
        sb.exec(["systemctl", "reset-failed", DAEMON, WORKER])


def test_a_queue_file_outside_the_state_directory_is_written_from_both_units(
        installed: Sandbox) -> None:
    """queue.url names a file elsewhere: the worker opens it, and the daemon's sandbox may
    write there too (ProtectSystem=strict would answer 'unable to open database file')."""
    sb = installed
    sb.exec(["cp", "-p", CONFIG, f"{CONFIG}.good"], check=True)
    try:
        sb.exec(["sed", "-i", 's|^# url = "sqlite://"$|url = "sqlite:///srv/llm-queue/queue.db"|',
                 CONFIG], check=True)
        done = sb.exec([*SETUP, "--program", str(BIN)], timeout=120)
        assert done.ok, done.stderr
        sb.exec(["systemctl", "stop", DAEMON, WORKER], check=True)
        sb.exec(["systemctl", "reset-failed", DAEMON, WORKER])
        sb.exec(["systemctl", "start", DAEMON], check=True)
        wait_for(lambda: sb.exec(["test", "-s", "/srv/llm-queue/queue.db"]).ok
                 or show(sb, WORKER)["ActiveState"] == "failed", "the worker to open its queue")
        worker = show(sb, WORKER)
        log = sb.exec(["journalctl", "-u", WORKER, "-o", "cat", "--no-pager"]).stdout
        assert (worker["ActiveState"], worker["NRestarts"]) == ("active", "0"), log[-2000:]
        sb.write_file("/probe-queue.sh", "touch /srv/llm-queue/probe; echo touched=$?\n")
        sb.write_file("/etc/systemd/system/probe-queue.service",
                      probe_unit(sb, "/probe-queue.sh"))
        sb.exec(["systemctl", "daemon-reload"], check=True)
        sb.exec(["systemctl", "start", "probe-queue.service"], timeout=60)
        said = sb.exec(["journalctl", "-u", "probe-queue.service", "-o", "cat", "--no-pager"])
        assert "touched=0" in said.stdout.splitlines(), said.stdout[-2000:]
    finally:
        sb.exec(["systemctl", "stop", DAEMON])
        sb.exec(["mv", f"{CONFIG}.good", CONFIG], check=True)
        assert sb.exec([*SETUP, "--program", str(BIN)], timeout=120).ok


def test_setup_again_over_a_running_daemon_says_to_restart_it(installed: Sandbox) -> None:
    """An upgrade is a new package, then setup again: the running daemon and its worker run
    the program and units they started with until restarted, and `enable --now`, what setup
    said, starts nothing that runs."""
    sb = installed

    def setup_says() -> str:
        done = sb.exec([*SETUP, "--name", "labai", "--program", str(BIN)], timeout=120)
        assert done.ok, done.stderr
        return done.stdout.strip().splitlines()[-1]

    sb.exec(["systemctl", "start", DAEMON], check=True)
    for unit in (DAEMON, WORKER):
        wait_for(lambda u=unit: show(sb, u)["ActiveState"] == "active", f"{unit} to run")
    said = setup_says()
    assert said.endswith(f"restart to run what is installed now: systemctl restart {DAEMON} "
                         f"{WORKER}"), said
    sb.exec(["systemctl", "stop", DAEMON], check=True)
    wait_for(lambda: show(sb, WORKER)["ActiveState"] == "inactive", "the worker to stop")
    assert setup_says() == "nothing to change"


def test_uninstall_stops_and_removes_what_setup_installed(installed: Sandbox) -> None:
    """Last in this module: it takes the install back. The running daemon and its worker are
    stopped and disabled, their units, the sudoers drop-in and the commands are gone, and the
    config and the state stay."""
    sb = installed
    sb.exec(["systemctl", "enable", "--now", DAEMON], check=True)
    wait_for(lambda: show(sb, WORKER)["ActiveState"] == "active", "the worker to run")
    done = sb.exec([*SETUP, "--uninstall", "--program", str(BIN)],
                   timeout=120)
    assert done.ok, done.stderr
    assert "Kept: /etc/ai-sysadmin/config.toml" in done.stdout
    for unit in (DAEMON, WORKER):
        assert show(sb, unit)["ActiveState"] == "inactive", unit
        assert show(sb, unit)["LoadState"] == "not-found", unit
    gone = sb.exec(["sh", "-c", "ls /etc/sudoers.d/ai-sysadmin /usr/local/bin/labai-check"])
    assert gone.returncode != 0 and not gone.stdout.strip()
    assert sb.exec(["test", "-f", CONFIG]).ok and sb.exec(["test", "-d",
                                                           "/var/lib/ai-sysadmin"]).ok


def test_uninstall_with_the_workers_unit_file_gone_takes_back_the_rest() -> None:
    """A half-broken install (the worker's unit removed by hand, or a setup cut off between
    the two units) is what --uninstall is for: `systemctl disable` of the missing unit failed,
    and the running daemon, its unit and the sudoers drop-in all stayed. A worker systemd
    still runs from its lost unit is stopped too."""
    with Sandbox(hostname="labhost", binds=hidden_in_the_lab()) as sb:
        open_the_way_to(sb, BIN)
        for worker_runs in (False, True):
            done = sb.exec([*SETUP, "--name", "labai", "--program", str(BIN)], timeout=120)
            assert done.ok, done.stderr
            worker_sees_the_checkout(sb)
            sb.exec(["sed", "-i", "s/^# investigate = true$/investigate = false/", CONFIG],
                    check=True)
            sb.exec(["systemctl", "enable", "--now", DAEMON], check=True)
            wait_for(lambda: show(sb, WORKER)["ActiveState"] == "active", "the worker to run")
            if not worker_runs:
                sb.exec(["systemctl", "stop", WORKER], check=True)
            sb.exec(["rm", f"/etc/systemd/system/{WORKER}"], check=True)
            sb.exec(["systemctl", "daemon-reload"], check=True)
            done = sb.exec([*SETUP, "--uninstall", "--program", str(BIN)], timeout=120)
            assert done.ok, (worker_runs, done.stderr)
            for unit in (DAEMON, WORKER):
                assert show(sb, unit)["ActiveState"] == "inactive", (worker_runs, unit)
            assert show(sb, DAEMON)["LoadState"] == "not-found"
            assert not sb.exec(["test", "-e", "/etc/sudoers.d/ai-sysadmin"]).ok
            assert not sb.exec(["test", "-e", "/etc/systemd/system/multi-user.target.wants/"
                                              f"{DAEMON}"]).ok
