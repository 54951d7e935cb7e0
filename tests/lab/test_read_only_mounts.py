"""A read-only file system is full by design (an image, a DVD, an AppImage): no disk alert.
The fact comes from the host's mount table, the file system's own flag; a read-only view of a
writable file system (a service's ProtectSystem=, NixOS's /nix/store) is still watched."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.rules import RuleContext, evaluate

from .loop_ext4 import ext4_in_lab, raise_error

pytestmark = pytest.mark.lab

IMAGE, WRITABLE, VIEW = "/mnt/image", "/mnt/writable", "/mnt/read-only view"


class Scripted(SandboxTransport):
    """The lab, collected by one remote script (as an SSH host is) or command by command."""

    def __init__(self, sandbox: Sandbox, one_round_trip: bool) -> None:
        super().__init__(sandbox)
        self.one_round_trip = one_round_trip


def full_tmpfs(sandbox: Sandbox, path: str) -> None:
    sandbox.exec(["mkdir", "-p", path], check=True)
    sandbox.exec(["mount", "-t", "tmpfs", "-o", "size=2m", "labtmpfs", path], check=True)
    sandbox.exec(["dd", "if=/dev/zero", f"of={path}/fill", "bs=64k", "count=64"])


@pytest.fixture(scope="module")
def full_mounts(sandbox: Sandbox) -> Iterator[Sandbox]:
    full_tmpfs(sandbox, IMAGE)
    # the file system itself read-only, as an image, a DVD or a squashfs is
    sandbox.exec(["mount", "-o", "remount,ro", IMAGE], check=True)
    full_tmpfs(sandbox, WRITABLE)
    # a read-only view of it elsewhere (a space in its name, as the kernel escapes it):
    # the file system stays writable, and full
    sandbox.exec(["mkdir", "-p", VIEW], check=True)
    sandbox.exec(["mount", "--bind", WRITABLE, VIEW], check=True)
    sandbox.exec(["mount", "-o", "remount,bind,ro", VIEW], check=True)
    yield sandbox
    for path in (VIEW, WRITABLE, IMAGE):
        sandbox.exec(["umount", path])


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_a_full_read_only_file_system_is_no_disk_alert_a_full_writable_one_is(
    full_mounts: Sandbox, lab_settings: Settings, one_round_trip: bool
) -> None:
    snapshot = asyncio.run(Collector(Scripted(full_mounts, one_round_trip),
                                     lab_settings).collect())
    assert "mounts" not in snapshot.errors
    by_target = {m.target: m for m in snapshot.mounts or []}
    assert by_target[IMAGE].read_only and by_target[IMAGE].used_percent > 95
    assert not by_target["/"].read_only
    # df names one mount of a file system mounted twice; either way it stays writable
    writable = [by_target[t] for t in (WRITABLE, VIEW) if t in by_target]
    assert writable and not any(m.read_only for m in writable)
    findings, judged = evaluate(RuleContext(snapshot, lab_settings.thresholds))
    assert {"disk_space", "inode_exhaustion"} <= judged
    disk = {f.subject for f in findings if f.rule == "disk_space"}
    assert IMAGE not in disk
    assert disk & {WRITABLE, VIEW}


def test_a_full_disk_under_container_overlays_is_one_finding(
        sandbox: Sandbox, lab_settings: Settings) -> None:
    """Each container's root is an overlay that reports the file system of its upper
    directory: a full disk under three containers is one disk alert, as it is one problem.
    An overlay on a file system no other mount shows is watched under its own name."""
    disk, alone = "/mnt/containers", "/mnt/alone"
    full_tmpfs(sandbox, disk)
    merged = [f"/run/c{n}/merged" for n in (1, 2, 3)]
    script = [f"mkdir -p {disk}/lower {disk}/c{n}/upper {disk}/c{n}/work /run/c{n}/merged && "
              f"mount -t overlay overlay -o lowerdir={disk}/lower,upperdir={disk}/c{n}/upper,"
              f"workdir={disk}/c{n}/work /run/c{n}/merged" for n in (1, 2, 3)]
    # an overlay whose upper file system is mounted nowhere else in view
    script.append(f"mkdir -p /run/alone-fs {alone} && mount -t tmpfs -o size=3m alonefs "
                  f"/run/alone-fs && dd if=/dev/zero of=/run/alone-fs/fill bs=64k count=46 "
                  f"2>/dev/null; mkdir -p /run/alone-fs/l /run/alone-fs/u /run/alone-fs/w && "
                  f"mount -t overlay overlay -o lowerdir=/run/alone-fs/l,upperdir="
                  f"/run/alone-fs/u,workdir=/run/alone-fs/w {alone} && umount -l /run/alone-fs")
    try:
        for line in script:
            sandbox.exec(["sh", "-c", line], check=True)
        snapshot = asyncio.run(Collector(SandboxTransport(sandbox), lab_settings).collect())
    finally:
        for path in (alone, *merged, disk):
            sandbox.exec(["umount", path])
    targets = {m.target for m in snapshot.mounts or []}
    assert {disk, alone, *merged} <= targets  # every mount is still seen
    findings, _ = evaluate(RuleContext(snapshot, lab_settings.thresholds))
    full = sorted(f.subject for f in findings
                  if f.rule == "disk_space" and f.subject in {disk, alone, *merged})
    assert full == [alone, disk], full


def test_a_disk_hovering_at_its_warning_level_is_one_incident(
        sandbox: Sandbox, lab_settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ai_sysadmin.orchestrator.checker import HostChecker
    from ai_sysadmin.store import Database, IncidentStore

    path = "/mnt/hovering"
    sandbox.exec(["mkdir", "-p", path], check=True)
    sandbox.exec(["mount", "-t", "tmpfs", "-o", "size=10m", "hoverfs", path], check=True)
    store = IncidentStore(Database(lab_settings.model_copy(
        update={"state_dir": tmp_path}).db_path))
    checker = HostChecker(SandboxTransport(sandbox), lab_settings, store)

    def filled(kib: int) -> list[str]:
        sandbox.exec(["sh", "-c", f"head -c {kib * 1024} /dev/zero > {path}/fill"], check=True)
        report = asyncio.run(checker.check("interval"))
        return [f.subject for f in report.findings if f.rule == "disk_space"]

    try:
        at_level = [filled(kib) for kib in (8806, 8684, 8806, 8684)]  # 86 %, 84.8 %, ...
        well = filled(8192)  # 80 %: two points and more below the level
    finally:
        sandbox.exec(["umount", path])
    assert all(path in found for found in at_level), at_level
    assert path not in well
    [incident] = [i for i in store.incidents(states=None) if i.subject == path]
    moves = [e.to_state for e in store.get(incident.id, history=50).events if e.to_state]
    assert moves == ["open", "resolved"], moves  # opened once, resolved once


@pytest.fixture
def lab_checker(sandbox: Sandbox, lab_settings: Settings, tmp_path):  # type: ignore[no-untyped-def]
    """A checker of the lab as the daemon has one, with its store: each check's findings,
    and the incidents they make."""
    from ai_sysadmin.orchestrator.checker import HostChecker
    from ai_sysadmin.store import Database, IncidentStore

    store = IncidentStore(Database(lab_settings.model_copy(
        update={"state_dir": tmp_path}).db_path))
    checker = HostChecker(Scripted(sandbox, one_round_trip=True), lab_settings, store)

    def check() -> list[tuple[str, str]]:
        report = asyncio.run(checker.check("interval"))
        assert "mounts" not in report.snapshot.errors
        return [(f.subject, f.evidence[0]) for f in report.findings
                if f.rule == "read_only_filesystem"]

    def incident(subject: str) -> list[str]:
        # the error that made it read-only is counted too: filesystem_errors's own incident
        [found] = [i for i in store.incidents(states=None)
                   if i.subject == subject and i.rule == "read_only_filesystem"]
        return [e.to_state for e in store.get(found.id, history=50).events if e.to_state]

    return check, incident


def test_an_ext4_the_kernel_made_read_only_after_an_error_is_a_critical_incident(
        sandbox: Sandbox, lab_checker, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A real ext4 on a loop device, mounted read-write with errors=remount-ro, then an
    error (the kernel's own test hook): writes fail from then on, and the check says so at
    once, however empty the disk; the incident lasts while the file system does not write."""
    check, incident = lab_checker
    point = "/mnt/ext4 data"
    # the lab's /dev is its own: the device made there
    with ext4_in_lab(sandbox, tmp_path / "data.img", "/dev/lab-ext4-loop", point,
                     "remount-ro") as loop:
        assert check() == []
        raise_error(loop, "lab: an I/O error")
        assert not sandbox.exec(["touch", f"{point}/x"]).ok  # the kernel refuses writes
        found = check()
        assert [subject for subject, _ in found] == [point]
        assert "read-only after an error" in found[0][1] or "shut" in found[0][1]
        assert check() == found  # kept: nothing about it changed
        assert incident(point) == ["open"]


def test_a_file_system_turned_read_only_under_its_mount_is_found_until_writable_again(
        sandbox: Sandbox, lab_checker) -> None:  # type: ignore[no-untyped-def]
    """The form older kernels (ext4 before emergency_ro) and btrfs give an error: the file
    system's own flag read-only, its mount still read-write. Made here for real by a
    remount of the file system from another mount namespace, which leaves this one's mount
    as it was. An image read-only from the start has the same form and is never found."""
    check, incident = lab_checker
    point = "/mnt/turns read-only"
    sandbox.exec(["mkdir", "-p", point], check=True)
    sandbox.exec(["mount", "-t", "tmpfs", "-o", "size=2m", "turningfs", point], check=True)
    try:
        assert check() == []
        sandbox.exec(["unshare", "--mount", "--propagation", "private", "mount", "-o",
                      "remount,ro", point], check=True)
        info = sandbox.exec(["cat", "/proc/self/mountinfo"], check=True).stdout
        [line] = [row for row in info.splitlines() if "turningfs" in row]
        mount, _, fs = line.partition(" - ")
        assert "rw" in mount.split(" ")[5].split(",") and "ro" in fs.split(" ")[2].split(",")
        found = check()
        assert [subject for subject, _ in found] == [point]
        assert "mounted read-write, but its file system is read-only" in found[0][1]
        assert [subject for subject, _ in check()] == [point]  # still read-only: kept
        sandbox.exec(["mount", "-o", "remount,rw", point], check=True)
        assert check() == []
        assert incident(point) == ["open", "resolved"]
    finally:
        sandbox.exec(["umount", point])
