"""clean_directory deletes only the cleaned directory's own old files.

A disk-space incident's clean of a cache or tmp directory runs without a person (medium risk).
What else lives there is not the directory's own and stays: a directory of the same file
system bind-mounted below it (``find -xdev`` compares only device numbers and went into it), a
running service's ``PrivateTmp=`` files in /tmp, and files still read though not written for
long. The script runs as the executor runs it, through SandboxTransport, with real mounts in
the lab's mount namespace and a real systemd service.
"""

from __future__ import annotations

import asyncio

import pytest

from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.safety.catalog import PlanContext, plan_action
from ai_sysadmin.safety.clean_script import (
    EXIT_MOUNTED,
    EXIT_PRIVATE_TMP,
    clean_argv,
    explain_exit,
)
from tests.lab.test_clean_race import OLD, ROOTS

pytestmark = pytest.mark.lab


def _sh(sb: Sandbox, script: str) -> str:
    return sb.exec(["sh", "-c", script], check=True).stdout


def _tree(sb: Sandbox, top: str) -> set[str]:
    out = sb.exec(["find", top, "-printf", "%y %P\\0"], check=True).stdout
    return set(out.split("\0")[:-1])


def _disk_space_clean(sb: Sandbox, path: str) -> tuple[int, str]:
    """The clean a disk_space finding about the file system ``path`` is on plans: one that
    runs without a person."""
    mount = _sh(sb, f"df --output=target '{path}' | tail -1").strip()
    ctx = PlanContext(clean_paths=ROOTS, path_mount=mount, incident_rule="disk_space",
                      incident_subject=mount, facts_read=True)
    plan = plan_action("clean_directory", {"path": path, "older_than_days": 7}, ctx)
    assert plan.allowed and plan.risk == "medium", plan.reason
    assert "neither modified nor read for 7 days" in plan.reason
    (argv,) = plan.commands
    done = asyncio.run(SandboxTransport(sb).run(argv, 30))
    return done.returncode, done.stderr


@pytest.fixture
def bound(sandbox: Sandbox):
    """/srv/clb/data (important, old) bound twice below /var/tmp/clb/build, on the same file
    system: at a plain name, and at one that mountinfo escapes and find's -path would read
    as a pattern."""
    odd = "/var/tmp/clb/build/we ird*[x]\\dir\nline"
    _sh(sandbox, f"""set -e
        mkdir -p /srv/clb/data/projects /var/tmp/clb/build/work
        touch -d {OLD} /srv/clb/data/projects/important.db /var/tmp/clb/build/stale.o""")
    sandbox.exec(["mkdir", "-p", odd], check=True)
    mounts = ["/var/tmp/clb/build/work", odd]
    for point in mounts:
        sandbox.exec(["mount", "--bind", "/srv/clb/data", point], check=True)
    devices = _sh(sandbox, "stat -c %d /srv/clb/data /var/tmp/clb/build "
                           "/var/tmp/clb/build/work").split()
    assert len(set(devices)) == 1, devices  # what -xdev cannot tell apart
    try:
        yield odd
    finally:
        for point in reversed(mounts):
            sandbox.exec(["umount", point], check=True)


def test_a_bind_mount_below_the_cleaned_directory_keeps_its_files(
        sandbox: Sandbox, bound: str) -> None:
    assert _disk_space_clean(sandbox, "/var/tmp/clb/build") == (0, "")
    assert _tree(sandbox, "/srv/clb/data") == {"d ", "d projects", "f projects/important.db"}
    left = _tree(sandbox, "/var/tmp/clb/build")
    assert "f stale.o" not in left
    assert {"f work/projects/important.db", f"f {bound.rsplit('/', 1)[1]}/projects/important.db"
            } <= left


@pytest.mark.parametrize("path", ["/var/tmp/clb/build/work", "/var/tmp/clb/build/work/projects"])
def test_a_directory_on_a_bind_mount_inside_the_root_is_refused(
        sandbox: Sandbox, bound: str, path: str) -> None:
    code, err = _disk_space_clean(sandbox, path)
    assert code == EXIT_MOUNTED, err
    assert "on /var/tmp/clb/build/work, a mount inside /var/tmp" in err
    assert "bind mount" in explain_exit(EXIT_MOUNTED)
    assert _tree(sandbox, "/srv/clb/data") == {"d ", "d projects", "f projects/important.db"}


def test_a_root_that_is_a_mount_point_itself_is_cleaned(sandbox: Sandbox) -> None:
    # /tmp on tmpfs, /var/tmp bound onto /tmp, a btrfs subvolume, the daemon's own unit
    # (ReadWritePaths= binds each clean path onto itself): the configured directory
    _sh(sandbox, f"""set -e
        mkdir -p /srv/clr/tmp /var/tmp/clr/root
        touch -d {OLD} /srv/clr/tmp/old
        touch /srv/clr/tmp/new
        mount --bind /srv/clr/tmp /var/tmp/clr/root""")
    try:
        argv = clean_argv("/var/tmp/clr/root", 7, ("/var/tmp/clr/root",))
        done = asyncio.run(SandboxTransport(sandbox).run(argv, 30))
        assert (done.returncode, done.stderr) == (0, "")
    finally:
        sandbox.exec(["umount", "/var/tmp/clr/root"], check=True)
    assert _tree(sandbox, "/srv/clr/tmp") == {"d ", "f new"}


WORKER = """[Service]
PrivateTmp=yes
ExecStartPre=/bin/sh -c 'echo 4242 > /tmp/worker.state; touch -d {old} /tmp/worker.state'
ExecStart=/bin/sh -c 'exec sleep infinity'
"""


def test_a_running_services_private_tmp_and_files_still_read_are_kept(sandbox: Sandbox
                                                                       ) -> None:
    sandbox.write_file("/etc/systemd/system/clw.service", WORKER.format(old=OLD))
    sandbox.exec(["systemctl", "daemon-reload"], check=True)
    # ExecStartPre= has written the state file when start returns
    sandbox.exec(["systemctl", "start", "clw.service"], check=True)
    try:
        (state,) = _sh(sandbox, "find /tmp/systemd-private-*-clw.service-* -type f").split()
        assert state.endswith("/tmp/worker.state")
        _sh(sandbox, f"""set -e
            mkdir -p /tmp/clw
            touch -d {OLD} /tmp/clw/old
            touch -m -d {OLD} /tmp/clw/read-today
            touch -a -d {OLD} /tmp/clw/written-today""")
        assert _disk_space_clean(sandbox, "/tmp") == (0, "")
        assert _sh(sandbox, "systemctl is-active clw.service").strip() == "active"
        assert _sh(sandbox, f"cat '{state}'").strip() == "4242"
        assert _tree(sandbox, "/tmp/clw") == {"d ", "f read-today", "f written-today"}
        # nor when a model names the private directory itself
        private = state.removesuffix("/worker.state")
        code, err = _disk_space_clean(sandbox, private)
        assert code == EXIT_PRIVATE_TMP, err
        assert "private temporary directory" in err
        assert _sh(sandbox, f"cat '{state}'").strip() == "4242"
    finally:
        sandbox.exec(["systemctl", "stop", "clw.service"])
