"""The lab itself: boot, run commands, write files, stay isolated, clean up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import ai_sysadmin
from ai_sysadmin.errors import LabError, TransportError
from ai_sysadmin.lab.sandbox import LabPrograms, Sandbox, cgroup2_root, sweep_leftovers
from ai_sysadmin.lab.transport import SandboxTransport
from tests.support.polling import poll_until

pytestmark = pytest.mark.lab


def _lab_cgroups() -> set[str]:
    """This process's labs (a cgroup's name ends in the pid that made it): another test
    process on the machine boots and stops its own meanwhile."""
    return {p.name for p in cgroup2_root().glob(f"ai-sysadmin-lab-*-{os.getpid()}")}


def test_start_exec_stop_leaves_nothing_behind(tmp_path: Path) -> None:
    before = _lab_cgroups()
    sb = Sandbox(base_dir=tmp_path)
    started = time.monotonic()
    sb.start()
    boot_seconds = time.monotonic() - started
    try:
        assert sb.running and sb.pid1 is not None
        pid1, workdir = sb.pid1, sb.workdir
        assert Path(f"/proc/{pid1}/comm").read_text().strip() == "systemd"
        assert sb.exec(["systemctl", "is-system-running"]).stdout.strip() == "running"
        assert sb.exec(["hostname"]).stdout.strip() == "sdtest"
        # PID 1 of its own pid namespace
        assert sb.exec(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
    finally:
        sb.stop()
    assert boot_seconds < 10
    assert not sb.running and sb.pid1 is None
    assert workdir is not None and not workdir.exists()
    assert not Path(f"/proc/{pid1}/cmdline").exists() or not Path(
        f"/proc/{pid1}/cmdline"
    ).read_text()
    assert _lab_cgroups() == before
    sb.stop()  # idempotent


def test_exec_reports_status_and_output(sandbox: Sandbox) -> None:
    result = sandbox.exec(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert sandbox.exec(["cat"], input="piped\n").stdout == "piped\n"
    with pytest.raises(LabError, match="exited 3"):
        sandbox.exec(["sh", "-c", "exit 3"], check=True)
    with pytest.raises(LabError, match="argv list"):
        sandbox.exec("systemctl status")  # type: ignore[arg-type]


def test_exec_timeout_kills_the_command(sandbox: Sandbox) -> None:
    started = time.monotonic()
    with pytest.raises(LabError, match="timed out"):
        sandbox.exec(["sleep", "30"], timeout=0.3)
    assert time.monotonic() - started < 5
    assert "sleep 30" not in sandbox.exec(["ps", "-eo", "args"]).stdout


def test_write_file_inside_the_lab_only(sandbox: Sandbox) -> None:
    path = "/etc/ai-sysadmin-lab-canary/app.conf"
    sandbox.write_file(path, "key = 1\n", mode=0o600)
    assert sandbox.exec(["cat", path]).stdout == "key = 1\n"
    assert sandbox.exec(["stat", "-c", "%a", path]).stdout.strip() == "600"
    # the host's /etc is the lab's read-only lower layer: nothing reaches it
    assert not os.path.exists(path)


def test_lab_has_its_own_network(sandbox: Sandbox) -> None:
    links = sandbox.exec(["ls", "/sys/class/net"]).stdout.split()
    assert links == ["lo"]


def test_transport_collects_from_the_lab(sandbox: Sandbox) -> None:
    transport = SandboxTransport(sandbox)
    assert transport.host == "sdtest"

    async def go() -> tuple[str, str | None, str | None]:
        state = await transport.run(["systemctl", "is-system-running"], timeout=10)
        return (
            state.stdout.strip(),
            await transport.read_file("/etc/hostname"),
            await transport.read_file("/no/such/file"),
        )

    assert asyncio.run(go()) == ("running", "sdtest\n", None)


def _host_process_with_pid(pid: int) -> subprocess.Popen[bytes]:
    """A host process given ``pid`` on purpose (``ns_last_pid``), as the PID counter's wrap
    does by itself on a busy machine."""
    for _ in range(200):
        Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
        proc = subprocess.Popen(["sleep", "60"])
        if proc.pid == pid:
            return proc
        proc.kill()
        proc.wait()
    pytest.fail(f"PID {pid} could not be handed to a host process")


def test_a_lab_powered_off_from_inside_runs_nothing_on_the_host(tmp_path: Path) -> None:
    sb = Sandbox(base_dir=tmp_path).start()
    host_proc = None
    try:
        old = sb.pid1
        assert old is not None
        sb.exec(["systemctl", "poweroff"])  # as a scenario's step may do
        poll_until(lambda: sb._proc is not None and sb._proc.poll() is not None, 30,
                   "the lab to power off")
        assert not sb.running
        host_proc = _host_process_with_pid(old)
        marker = tmp_path / "ran-on-the-host"
        with pytest.raises(LabError, match="the lab is down"):
            sb.exec(["touch", str(marker)])
        with pytest.raises(TransportError, match="the lab is down"):
            asyncio.run(SandboxTransport(sb).run(["touch", str(marker)]))
        assert not marker.exists()
    finally:
        sb.stop()
        if host_proc is not None:
            assert host_proc.poll() is None  # the stop sent no signal to the PID's new owner
            host_proc.kill()
            host_proc.wait()


def test_two_labs_run_at_once() -> None:
    with Sandbox(hostname="one") as one, Sandbox(hostname="two") as two:
        assert one.pid1 != two.pid1 and one.workdir != two.workdir
        one.write_file("/etc/which", "one\n")
        assert one.exec(["hostname"]).stdout.strip() == "one"
        assert two.exec(["hostname"]).stdout.strip() == "two"
        assert two.exec(["cat", "/etc/which"]).returncode != 0


def test_failed_boot_raises_with_log_and_cleans_up(tmp_path: Path) -> None:
    before = _lab_cgroups()
    broken = Sandbox(base_dir=tmp_path, programs=LabPrograms(systemd="/bin/false"))
    with pytest.raises(LabError, match="did not start"):
        broken.start()
    assert list(tmp_path.glob("ai-sysadmin-lab-*")) == []
    assert _lab_cgroups() == before
    assert not broken.running


def test_a_lab_boots_under_a_directory_whose_name_holds_a_comma_or_colon(
        tmp_path: Path) -> None:
    """A TMPDIR such as /tmp/a,b: the overlay's options are a comma-separated list, and its
    layers spelled there by their whole path stopped every lab from booting."""
    base = tmp_path / "a,b:c"
    base.mkdir()
    with Sandbox(base_dir=base) as lab:
        assert lab.workdir is not None and lab.workdir.parent == base
        assert lab.exec(["hostname"]).stdout.strip() == "sdtest"
        lab.write_file("/etc/written", "in the lab\n")
        assert lab.exec(["cat", "/etc/written"]).stdout == "in the lab\n"
    assert list(base.iterdir()) == []


def test_a_mount_that_fails_is_said_first_in_its_own_words(tmp_path: Path) -> None:
    """A kernel without overlayfs (a mount(8) that says so, here): its words lead the error,
    not the end of a traceback that may have lost them."""
    fake = tmp_path / "mount"
    fake.write_text("#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = overlay ] && { echo \"mount: "
                    "labroot: unknown filesystem type 'overlay'.\" >&2; echo \"       dmesg(1) "
                    "may have more information.\" >&2; exit 32; }; done\n"
                    f"exec {shutil.which('mount')} \"$@\"\n")
    fake.chmod(0o755)
    with pytest.raises(LabError) as raised:
        Sandbox(base_dir=tmp_path, programs=LabPrograms(mount=str(fake))).start()
    said = str(raised.value)
    assert said.startswith("the lab did not start: mount -t overlay "), said
    assert ("exited 32: mount: labroot: unknown filesystem type 'overlay'. dmesg(1) may have "
            "more information.;") in said.partition("; PID 1 log:")[0]
    assert list(tmp_path.glob("ai-sysadmin-lab-*")) == []


def test_missing_program_is_named() -> None:
    with pytest.raises(LabError, match="no-such-unshare"):
        Sandbox(programs=LabPrograms(unshare="no-such-unshare")).start()


def test_a_lab_whose_cgroup_name_is_taken_leaves_the_other_lab_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # two labs in different base directories: mkdtemp's names are new only in each
    import tempfile

    from ai_sysadmin.lab import sandbox as sandbox_module

    def same_name(prefix: str, dir: str) -> str:  # mkdtemp's own keywords
        made = Path(dir) / f"{prefix}same"
        made.mkdir()
        return str(made)

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.setattr(sandbox_module.tempfile, "mkdtemp", same_name)
    with Sandbox(base_dir=tmp_path / "a") as first:
        second = Sandbox(base_dir=tmp_path / "b")
        with pytest.raises(LabError, match="did not start"):
            second.start()
        monkeypatch.setattr(sandbox_module.tempfile, "mkdtemp", tempfile.mkdtemp)
        # the first lab runs on, its cgroup whole
        assert first.exec(["systemctl", "is-system-running"]).returncode in (0, 1)
        assert first._cgroup is not None and (first._cgroup / "cgroup.procs").exists()
    assert list((tmp_path / "b").iterdir()) == []


def test_a_cgroup_that_stays_busy_still_lets_the_work_directory_go(tmp_path: Path) -> None:
    # a process of this machine's put into the lab's cgroup: the lab's SIGKILL does not reach it
    lab = Sandbox(base_dir=tmp_path, stop_timeout=1.0).start()
    assert lab._cgroup is not None
    cgroup = lab._cgroup
    intruder = subprocess.Popen(["sleep", "60"])
    try:
        (cgroup / "cgroup.procs").write_text(str(intruder.pid))
        with pytest.raises(LabError, match="cannot remove the lab's cgroup"):
            lab.stop()
        assert list(tmp_path.glob("ai-sysadmin-lab-*")) == []  # the work directory is gone
        assert not lab.running
    finally:
        intruder.kill()
        intruder.wait()
        deadline = time.monotonic() + 10
        while cgroup.exists():
            try:
                for dirpath, _dirs, _files in os.walk(cgroup, topdown=False):
                    os.rmdir(dirpath)
            except OSError:
                assert time.monotonic() < deadline, f"{cgroup} stayed busy"
                time.sleep(0.05)


#: a unit that outlives the lab's power-off: the stop waits for it (POWEROFF_GRACE), and
#: says when that wait began (the unit got its SIGTERM)
STUBBORN = """[Service]
ExecStart=/bin/sh -c 'trap "touch /run/got-term" TERM; while :; do sleep 0.1; done'
TimeoutStopSec=60
"""


def _ctrl_c_into_a_stop(base: Path) -> BaseException | None:
    """A lab stopped, with a Ctrl-C sent into its stop from another thread: what the stop
    raised; None where the Ctrl-C came only after the stop had ended (that thread starved on
    a loaded machine: a KeyboardInterrupt then, escaping the test, took down its worker)."""
    base.mkdir()
    lab = Sandbox(base_dir=base).start()
    assert lab.workdir is not None and lab._cgroup is not None and lab.pid1 is not None
    workdir, cgroup = lab.workdir, lab._cgroup
    lab.write_file("/etc/systemd/system/stubborn.service", STUBBORN)
    lab.exec(["systemctl", "start", "stubborn.service"], check=True)
    got_term = Path(f"/proc/{lab.pid1}/root/run/got-term")
    stopping, stopped = threading.Event(), threading.Event()
    late: list[float] = []

    def ctrl_c_when_the_stop_waits() -> None:
        # once the stubborn unit has its SIGTERM (the stop waits for it), or a moment into
        # the stop where a loaded machine's systemd is slow to power off: the stop lasts
        # POWEROFF_GRACE with this unit either way
        stopping.wait(30)
        deadline = time.monotonic() + 1.0
        while not got_term.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    def on_sigint(signum: int, frame: object) -> None:
        if stopped.is_set():
            late.append(time.monotonic())
            return
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    interrupter = threading.Thread(target=ctrl_c_when_the_stop_waits)
    interrupter.start()
    raised: BaseException | None = None
    try:
        try:
            stopping.set()
            lab.stop()
            stopped.set()
        except KeyboardInterrupt as exc:
            stopped.set()
            raised = exc
        interrupter.join()
        # the interrupt came in the middle, or late; the clean-up went to its end all the same
        assert not workdir.exists() and not cgroup.exists() and not lab.running
    finally:
        stopped.set()
        interrupter.join()
        signal.signal(signal.SIGINT, previous)
        lab.stop()
    return None if late else raised


def test_ctrl_c_while_a_lab_stops_is_raised_once_it_is_gone(tmp_path: Path) -> None:
    for attempt in range(3):  # a Ctrl-C that came after the stop says nothing of it: again
        raised = _ctrl_c_into_a_stop(tmp_path / str(attempt))
        if raised is not None:
            break
    assert isinstance(raised, KeyboardInterrupt), "no Ctrl-C came during any of 3 stops"


def _cgroup_empty(cgroup: Path) -> bool:
    return "populated 0" in (cgroup / "cgroup.events").read_text()


def test_a_lab_killed_with_its_process_is_swept_by_the_next_start(tmp_path: Path) -> None:
    # a drill SIGKILLed (no clean-up runs): its lab dies with it, its files stayed for good
    src = Path(ai_sysadmin.__file__).parent.parent
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from ai_sysadmin.lab.sandbox import Sandbox\n"
         f"lab = Sandbox(base_dir={str(tmp_path)!r}).start()\n"
         "print(lab.workdir, lab._cgroup, flush=True)\n"
         "time.sleep(300)\n"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(src)})
    workdir, cgroup = map(Path, child.stdout.readline().split())  # type: ignore[union-attr]
    child.kill()
    child.wait()
    child.stdout.close()  # type: ignore[union-attr]
    try:
        poll_until(lambda: _cgroup_empty(cgroup), 30, "the killed lab's processes to end")
        assert workdir.exists() and cgroup.exists()
        with Sandbox(base_dir=tmp_path) as lab:
            assert not workdir.exists() and not cgroup.exists()
            assert lab.exec(["true"]).ok
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        with contextlib.suppress(OSError):
            for dirpath, _dirs, _files in os.walk(cgroup, topdown=False):
                os.rmdir(dirpath)


def test_the_sweep_leaves_living_labs_and_strangers_alone(sandbox: Sandbox,
                                                          tmp_path: Path) -> None:
    assert sandbox.workdir is not None and sandbox._cgroup is not None
    # named as a lab, not made as one: no config, another user's, a dead PID's but a symlink
    bare = tmp_path / "ai-sysadmin-lab-bare0000"
    bare.mkdir()
    theirs = tmp_path / "ai-sysadmin-lab-theirs00"
    theirs.mkdir()
    (theirs / "config.json").write_text('{"parent_pid": 999999999, "cgroup": "/nonexistent"}')
    os.chown(theirs, 65534, 65534)
    linked = tmp_path / "ai-sysadmin-lab-linked00"
    linked.symlink_to(theirs)
    # ours, started in another PID namespace (a container sharing this /tmp): its PID names
    # no process here, dead or alive
    contained = tmp_path / "ai-sysadmin-lab-contain0"
    contained.mkdir(mode=0o700)
    (contained / "config.json").write_text(
        '{"parent_pid": 999999999, "cgroup": "/nonexistent", "pid_namespace": "pid:[1]"}')
    assert sweep_leftovers(tmp_path) == []
    assert contained.exists()
    # in the temp directory beside it: another process's dead labs may go, never this one's
    swept = sweep_leftovers()
    assert str(sandbox.workdir) not in swept and str(sandbox._cgroup) not in swept
    assert bare.exists() and theirs.exists() and linked.is_symlink()
    assert sandbox.workdir.exists() and sandbox._cgroup.exists()
    assert sandbox.exec(["true"]).ok
