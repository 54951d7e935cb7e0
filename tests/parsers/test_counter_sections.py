"""The kernel's counters every check reads (each service's OOM kills and tasks, each file
system's errors): one command for the three sections, its script run by sh here over a
directory laid out as the host's /sys, its paths then written as the host's would be."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import TransportError
from ai_sysadmin.hosts.transport import CommandResult, LocalTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.sections import FILE_READ, SECTIONS_BY_NAME, JournalQuery, Plan
from ai_sysadmin.monitor.snapshot import Snapshot, TaskCount

ROWS = ("oom_kills", "service_tasks", "fs_errors")
MOUNTINFO = "29 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
V2 = "sys/fs/cgroup/system.slice"


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    return Plan(Settings(ai_name="hal", state_dir=tmp_path / "state"), JournalQuery(), True)


def counters(plan: Plan) -> tuple[str, ...]:
    (argv,) = {s.argv for row in ROWS for s in SECTIONS_BY_NAME[row].sources(plan)
               if tuple(s.argv[:2]) != FILE_READ}
    return argv


def test_the_three_rows_cost_a_check_one_command_run_once(plan: Plan) -> None:
    argv = counters(plan)  # one command, not one a row (or two for OOM kills)
    sources = Collector(LocalTransport("here"), plan.settings).sources()
    assert sum(s.argv == argv for s in sources) == len(ROWS)
    trip = Collector(LocalTransport("here"), plan.settings).script()
    assert trip.commands.count(argv) == 1  # the remote script runs it once
    # one sh, which reads the files itself: no program started for them
    assert argv[:2] == (plan.programs.sh, "-c") and "exec" not in argv[2]


def write(root: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)


def run(root: Path, plan: Plan, mountinfo: str | None = MOUNTINFO) -> tuple[Snapshot, str]:
    """The three rows of a check of a host whose /sys is ``root``/sys."""
    argv = counters(plan)
    here = [argv[0], argv[1], argv[2].replace("/sys/", f"{root}/sys/"), *argv[3:]]
    done = subprocess.run(here, capture_output=True, text=True, timeout=10, check=False)
    reply = done.stdout.replace(f"{root}/sys/", "/sys/")
    reading = CommandResult(argv, done.returncode, reply, done.stderr, 0.0)
    info = CommandResult((*FILE_READ, "/proc/self/mountinfo"), 0 if mountinfo else 1,
                         mountinfo or "", "", 0.0)
    snap = Snapshot("here", 1.0)
    for row in ROWS:
        SECTIONS_BY_NAME[row].take([reading, info], snap, plan)
    return snap, reply


def test_sixty_services_of_cgroup_v2_and_an_ext4_are_read_a_line_a_counter(
        tmp_path: Path, plan: Plan) -> None:
    files = {f"{V2}/pids.current": "90\n", "sys/fs/ext4/vda/errors_count": "2\n",
             "sys/fs/ext4/vda/first_error_time": "1700000000\n",
             "sys/fs/ext4/vda/last_error_time": "1700000100\n",
             "sys/class/block/vda/dev": "254:0\n"}
    for n in range(60):
        unit = f"{V2}/s{n}.service" if n % 2 else f"{V2}/system-w.slice/w@{n}.service"
        files[f"{unit}/memory.events"] = (f"low 0\nhigh 0\nmax 0\noom {n % 3}\n"
                                          f"oom_kill {n % 3}\noom_group_kill 0\n")
        files[f"{unit}/pids.current"], files[f"{unit}/pids.max"] = f"{n}\n", "4915\n"
    write(tmp_path, files)
    snap, reply = run(tmp_path, plan)
    assert len(snap.oom_kills or {}) == 60 and snap.oom_kills["w@2.service"] == 2
    assert snap.service_tasks is not None and len(snap.service_tasks) == 60
    assert snap.service_tasks["s7.service"].current == 7
    (fs,) = snap.fs_errors or []
    assert (fs.name, fs.errors, fs.target) == ("vda", 2, "/")
    # a line a service's OOM kills, two its tasks, one marker, four the file system
    assert len(reply.splitlines()) == 60 * 3 + 1 + 4


def test_no_pids_controller_is_not_judged_and_one_without_services_is(
        tmp_path: Path, plan: Plan) -> None:
    write(tmp_path, {f"{V2}/a.service/memory.events": "oom 1\noom_kill 1\n"})
    snap, _ = run(tmp_path, plan)
    assert (snap.oom_kills, snap.service_tasks, snap.fs_errors) == ({"a.service": 1}, None, [])
    write(tmp_path, {"sys/fs/cgroup/pids/system.slice/pids.current": "0\n"})
    assert run(tmp_path, plan)[0].service_tasks == {}


def test_none_of_the_directories_reads_as_the_guard_answers(
        tmp_path: Path, plan: Plan) -> None:
    snap, reply = run(tmp_path, plan)
    assert reply == ""
    assert (snap.oom_kills, snap.service_tasks, snap.fs_errors) == ({}, None, [])
    (source,) = {s for s in SECTIONS_BY_NAME["oom_kills"].sources(plan)}
    unasked, guard_snap = source.unasked, Snapshot("here", 1.0)
    for row in ROWS:
        SECTIONS_BY_NAME[row].take([unasked, unasked], guard_snap, plan)
    assert (guard_snap.oom_kills, guard_snap.service_tasks, guard_snap.fs_errors) == (
        {}, None, [])


def test_the_services_counters_need_no_mount_table_and_the_file_systems_do(
        tmp_path: Path, plan: Plan) -> None:
    write(tmp_path, {f"{V2}/pids.current": "1\n", f"{V2}/a.service/pids.current": "1\n",
                     f"{V2}/a.service/pids.max": "max\n"})
    snap, _ = run(tmp_path, plan, mountinfo=None)
    assert snap.fs_errors == [] and snap.service_tasks is not None
    write(tmp_path, {"sys/fs/ext4/vda/errors_count": "0\n"})
    with pytest.raises(TransportError, match="mountinfo could not be read"):
        run(tmp_path, plan, mountinfo=None)


FSID = "4f6c0f8e-1d2a-4b3c-9e8f-0a1b2c3d4e5f"


def btrfs(errors: int, label: str) -> dict[str, str]:
    """A btrfs of one device, with ``errors`` write errors and its label."""
    return {f"sys/fs/btrfs/{FSID}/devinfo/1/error_stats": f"write_errs {errors}\nread_errs 0\n",
            f"sys/fs/btrfs/{FSID}/devices/sdb/dev": "8:16\n",
            f"sys/fs/btrfs/{FSID}/label": f"{label}\n"}


def test_a_btrfs_mounted_by_its_label_is_placed_by_the_label_the_same_read_reads(
        tmp_path: Path, plan: Plan) -> None:
    write(tmp_path, btrfs(3, "nixos"))
    mountinfo = "22 1 0:26 /@ / rw - btrfs /dev/disk/by-label/nixos rw,subvol=/@\n"
    snap, reply = run(tmp_path, plan, mountinfo=mountinfo)
    assert f"/sys/fs/btrfs/{FSID}/label:nixos" in reply.splitlines()
    (fs,) = snap.fs_errors or []
    assert (fs.target, fs.errors) == ("/", 3)
    assert "fs_errors" not in snap.notes


def test_a_btrfs_with_errors_that_cannot_be_placed_is_a_note_not_silence(
        tmp_path: Path, plan: Plan) -> None:
    write(tmp_path, btrfs(3, "nixos"))
    by_partuuid = "22 1 0:26 /@ / rw - btrfs /dev/disk/by-partuuid/0a1b-02 rw,subvol=/@\n"
    snap, _ = run(tmp_path, plan, mountinfo=by_partuuid)
    (fs,) = snap.fs_errors or []
    assert fs.target == ""
    assert snap.notes["fs_errors"].startswith(f"btrfs file system(s) {FSID} counted device "
                                              "errors but could not be matched")
    assert "btrfs mounted from a source the check cannot place: /." in snap.notes["fs_errors"]
    # no btrfs mounted here: another mount namespace's (a container sees its host's sysfs)
    assert "fs_errors" not in run(tmp_path, plan)[0].notes
    # one without errors needs no word
    write(tmp_path, btrfs(0, "nixos"))
    assert "fs_errors" not in run(tmp_path, plan, mountinfo=by_partuuid)[0].notes


def test_a_counter_that_cannot_be_read_is_passed_over_unsaid_and_the_rest_read(
        tmp_path: Path, plan: Plan) -> None:
    # a file gone between the glob and the read (a cgroup removed, a device unplugged: here
    # an ext4 whose block device is gone): stderr, sent to /dev/null once around the whole
    # script, says nothing, and every other counter is read
    files = {f"{V2}/pids.current": "90\n", "sys/fs/ext4/vdb/errors_count": "0\n"}
    for n in range(200):
        unit = f"{V2}/s{n}.service"
        files[f"{unit}/memory.events"] = f"oom {n % 2}\noom_kill {n % 2}\n"
        files[f"{unit}/pids.current"], files[f"{unit}/pids.max"] = f"{n}\n", "max\n"
    write(tmp_path, files)
    for name in ("memory.events", "pids.current"):  # unreadable as files
        (tmp_path / V2 / "s7.service" / name).unlink()
        (tmp_path / V2 / "s7.service" / name).mkdir()
    argv = counters(plan)
    here = [argv[0], argv[1], argv[2].replace("/sys/", f"{tmp_path}/sys/"), *argv[3:]]
    done = subprocess.run(here, capture_output=True, text=True, timeout=10, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    snap, _ = run(tmp_path, plan)
    assert snap.oom_kills == {f"s{n}.service": n % 2 for n in range(200) if n != 7}
    assert snap.service_tasks == {f"s{n}.service": TaskCount(n, None)
                                  for n in range(200) if n != 7}
    assert [(fs.name, fs.errors) for fs in snap.fs_errors or []] == [("vdb", 0)]
