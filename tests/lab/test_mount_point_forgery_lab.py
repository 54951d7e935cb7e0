"""A mount point's name is host text: a user's FUSE mount, a USB stick mounted by its label. It
must not speak for another file system: a full disk is reported full whatever other mounts
are called."""

from __future__ import annotations

import asyncio

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.rules import RuleContext, evaluate

pytestmark = pytest.mark.lab

FULL = "/srv/data"
#: what df prints for a small tmpfs with nothing in it, as a line of its own
EMPTY_LINE = "labtmpfs tmpfs 2097152 0 2097152 100 1 "

FORGERIES = {
    # U+2028 and U+0085 end a line for str.splitlines(); df writes them raw where the host's
    # character set is not UTF-8 (LANG unset or C, common on servers), and Python reads
    # df's bytes as UTF-8
    "line separator": f"/tmp/x\u2028{EMPTY_LINE}{FULL}",
    "next line": f"/tmp/x\x85{EMPTY_LINE}{FULL}",
    # a directory named "data " beside a mount on "data": df's line ends in a space
    "trailing space": f"{FULL} ",
}


@pytest.mark.parametrize("name", FORGERIES)
def test_a_full_disk_stays_full_whatever_another_mount_point_is_called(
        sandbox: Sandbox, lab_settings: Settings, monkeypatch: pytest.MonkeyPatch,
        name: str) -> None:
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_CTYPE", raising=False)
    monkeypatch.setenv("LANG", "C")  # the host has no UTF-8 locale: df writes bytes as they are
    forged = FORGERIES[name]
    sandbox.exec(["mkdir", "-p", FULL, forged], check=True)
    sandbox.exec(["mount", "-t", "tmpfs", "-o", "size=2m", "labtmpfs", FULL], check=True)
    sandbox.exec(["mount", "-t", "tmpfs", "-o", "size=2m,nr_inodes=100", "labtmpfs", forged],
                 check=True)
    try:
        sandbox.exec(["dd", "if=/dev/zero", f"of={FULL}/fill", "bs=64k", "count=64"])
        snapshot = asyncio.run(Collector(SandboxTransport(sandbox), lab_settings).collect())
    finally:
        sandbox.exec(["umount", forged])
        sandbox.exec(["umount", FULL])
    assert "mounts" not in snapshot.errors
    by_target = {m.target: m for m in snapshot.mounts or []}
    assert by_target[FULL].used_bytes > 0, by_target[FULL]
    # the forged one is reported under its own name, as empty as it is
    assert by_target[forged].used_bytes == 0
    findings, judged = evaluate(RuleContext(snapshot, lab_settings.thresholds))
    assert "disk_space" in judged
    assert [f.summary for f in findings if f.rule == "disk_space"
            and f.subject == FULL] == [f"{FULL} is 100% full"]


def test_a_full_read_only_mount_is_no_finding_whatever_it_is_called(
        sandbox: Sandbox, lab_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # a read-only file system cannot fill up: a full one (an ISO, a USB stick mounted by its
    # label) is no disk to clean, and its name does not make it one
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_CTYPE", raising=False)
    monkeypatch.setenv("LANG", "C")
    stick = "/run/media/OLD\u2028DISK"
    sandbox.exec(["mkdir", "-p", stick], check=True)
    sandbox.exec(["mount", "-t", "tmpfs", "-o", "size=1m", "labtmpfs", stick], check=True)
    try:
        sandbox.exec(["dd", "if=/dev/zero", f"of={stick}/fill", "bs=64k", "count=32"])
        sandbox.exec(["mount", "-o", "remount,ro", stick], check=True)
        snapshot = asyncio.run(Collector(SandboxTransport(sandbox), lab_settings).collect())
    finally:
        sandbox.exec(["umount", stick])
    by_target = {m.target: m for m in snapshot.mounts or []}
    assert by_target[stick].used_percent == 100 and by_target[stick].read_only
    findings, _ = evaluate(RuleContext(snapshot, lab_settings.thresholds))
    assert [f.subject for f in findings if f.rule == "disk_space"] == []
