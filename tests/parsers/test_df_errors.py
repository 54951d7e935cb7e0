"""The mounts df could not read: named in its errors (``df: PATH: REASON``), left out of its
table. A check must not take the rest of the table for the whole: such a mount is said, and
not judged (tests/orchestrator/test_checker_unread_mounts.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import CommandResult
from ai_sysadmin.monitor.parsers import parse_df_errors
from ai_sysadmin.monitor.sections import SECTIONS_BY_NAME, JournalQuery, Plan
from ai_sysadmin.monitor.snapshot import Snapshot

#: names any user may give a mount point (a FUSE mount, a USB stick's label), each as df
#: lists it in its table: a control character as "?"
ODD_NAMES = {
    "/mnt/my share:x": "/mnt/my share:x",
    "/mnt/it's": "/mnt/it's",
    "/mnt/it's $x": "/mnt/it's $x",
    "/mnt/a\nb": "/mnt/a?b",
    "/mnt/plain": "/mnt/plain",
    "/mnt/Sauvegarde été": "/mnt/Sauvegarde été",
    "/mnt/x: Permission denied": "/mnt/x: Permission denied",
}


@pytest.mark.skipif(shutil.which("df") is None, reason="no df here")
@pytest.mark.parametrize("ctype", ["C", "C.UTF-8"])
def test_each_name_gnu_df_quotes_in_its_errors_is_read_back_as_its_table_lists_it(
        tmp_path: Path, ctype: str) -> None:
    """GNU df's own words (it quotes a name in an error as it quotes one it cannot find),
    so that a colon, a quote or a line break in a name is read as the name it is; where the
    character set is not UTF-8, a letter's bytes are octal escapes."""
    missing = [f"{tmp_path}{name}" for name in ODD_NAMES]
    done = subprocess.run(["df", *missing], capture_output=True, timeout=10, check=False,
                          env={"PATH": os.environ["PATH"], "LANG": "C", "LC_CTYPE": ctype})
    assert done.returncode == 1
    unread, other = parse_df_errors(done.stderr.decode("utf-8", "replace"))
    assert other == []
    assert unread == {f"{tmp_path}{listed}": "No such file or directory"
                      for listed in ODD_NAMES.values()}


def test_the_lines_df_writes_of_mounts_it_could_not_read() -> None:
    stderr = (
        "df: /srv/nfs: Stale file handle\n"
        "/run/current-system/sw/bin/df: '/mnt/my share': Permission denied\n"
        "df: /mnt/nas: files: Transport endpoint is not connected\n"  # BusyBox: as it is
        "df: cannot read table of mounted file systems: No such file or directory\n"
        "df: warning: something new\n"
        "\n"
    )
    unread, other = parse_df_errors(stderr)
    assert unread == {"/srv/nfs": "Stale file handle", "/mnt/my share": "Permission denied",
                      "/mnt/nas: files": "Transport endpoint is not connected"}
    # what names no mount is kept to be said, not read as one
    assert other == ["df: cannot read table of mounted file systems: No such file or directory",
                     "df: warning: something new"]


def test_a_line_not_quoted_as_gnu_quotes_names_no_mount() -> None:
    unread, other = parse_df_errors("df: '/mnt/open: Permission denied\n"
                                    "df: relative: Permission denied\n")
    assert unread == {}
    assert len(other) == 2


DF_TABLE = ("Filesystem Type 1B-blocks Used Avail Inodes IUsed Mounted on\n"
            "/dev/vda1 ext4 1000 100 900 100 10 /\n")
MOUNTINFO = (
    "27 1 252:1 / / rw,relatime - ext4 /dev/vda1 rw\n"
    "40 27 0:50 / /srv/nfs rw,relatime - nfs4 nas:/export rw\n"
    "41 27 0:51 / /run/user/1000/gvfs rw,nosuid,nodev - fuse.gvfsd-fuse gvfsd-fuse rw\n"
    "42 27 0:52 / /run/user/1000/doc rw,nosuid,nodev - fuse.portal portal rw\n"
)


def mounts_section(stderr: str, mountinfo: str | None, tmp_path: Path,
                   code: int = 1) -> Snapshot:
    plan = Plan(Settings(ai_name="hal", state_dir=tmp_path / "state"), JournalQuery(), True)
    section = SECTIONS_BY_NAME["mounts"]
    df, table = section.sources(plan)
    info = CommandResult(table.argv, 0 if mountinfo is not None else 1, mountinfo or "",
                         "" if mountinfo is not None else "Permission denied", 0.0)
    snap = Snapshot("web1", 1.0)
    section.take([CommandResult(df.argv, code, DF_TABLE, stderr, 0.0), info], snap, plan)
    return snap


def test_a_mount_df_could_not_read_is_kept_apart_and_said(tmp_path: Path) -> None:
    snap = mounts_section("df: /srv/nfs: Stale file handle\n", MOUNTINFO, tmp_path)
    assert [m.target for m in snap.mounts or []] == ["/"]
    assert snap.unread_mounts == {"/srv/nfs": "Stale file handle"}
    assert "mounts" not in snap.errors  # the others were read: they are judged
    assert snap.notes["mounts"] == ("df could not read /srv/nfs (Stale file handle): how full "
                                    "it is was not checked, and its incidents stay as they "
                                    "were")


def test_a_mount_of_a_type_never_judged_that_root_may_not_read_is_passed_over(
        tmp_path: Path) -> None:
    """gvfs and the document portal refuse root: df says so at every check of a desktop,
    and the mount table says they are of types no rule judges when df reads them."""
    stderr = ("df: /run/user/1000/gvfs: Permission denied\n"
              "df: /run/user/1000/doc: Permission denied\n")
    snap = mounts_section(stderr, MOUNTINFO, tmp_path)
    assert snap.unread_mounts == {}
    assert snap.notes == {}
    # without the mount table nothing says what they are: said, not judged
    blind = mounts_section(stderr, None, tmp_path)
    assert set(blind.unread_mounts) == {"/run/user/1000/gvfs", "/run/user/1000/doc"}


def test_what_df_said_that_names_no_mount_is_said_too(tmp_path: Path) -> None:
    snap = mounts_section("df: warning: something new\n", MOUNTINFO, tmp_path)
    assert snap.unread_mounts == {}
    assert snap.notes["mounts"] == "df exited 1: df: warning: something new"
    # a df that succeeded said nothing of a mount it could not read
    assert mounts_section("", MOUNTINFO, tmp_path, code=0).notes == {}
