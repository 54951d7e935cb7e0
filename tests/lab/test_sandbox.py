"""The lab itself: boot, run commands, write files, stay isolated, clean up."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import pytest

from ai_sysadmin.errors import LabError
from ai_sysadmin.lab.sandbox import LabPrograms, Sandbox, cgroup2_root
from ai_sysadmin.lab.transport import SandboxTransport

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
    assert sandbox.host_path(path).read_text() == "key = 1\n"
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
