"""``knowledge export FILE`` where FILE is no regular file: a FIFO, a symlink, a device, the
command's own standard output (``/dev/stdout``). Each gets the export written into it and
stays what it was; none is replaced by a new file holding the export (as root, ``export
/dev/null`` made /dev/null a regular file). Every path is under the test's own directory:
``/dev`` itself is never touched."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import run_program

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def _one_note(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_SYSADMIN_KNOWLEDGE__SEED", "false")
    code, _, err = cli("knowledge", "add", "--topic", "web1 nginx needs php-fpm",
                       "--text", "start php-fpm.service first")
    assert code == 0, err


def _nothing_beside(folder: Path, *expected: str) -> None:
    """No half-written export left in the folder."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)


def test_a_fifo_gets_the_export_and_stays_a_fifo(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    fifo = folder / "notes.fifo"
    os.mkfifo(fifo, 0o600)
    read: list[str] = []
    # a daemon thread: where the FIFO was replaced, its reader waits on it for ever
    reader = threading.Thread(target=lambda: read.append(fifo.read_text()), daemon=True)
    reader.start()

    code, out, err = cli("knowledge", "export", str(fifo))
    reader.join(timeout=30)
    assert code == 0, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert not reader.is_alive(), "the reader on the FIFO got nothing"
    assert "web1 nginx needs php-fpm" in read[0] and json.loads(read[0].splitlines()[0])
    assert f"to {fifo}" in out
    _nothing_beside(folder, "notes.fifo")


def test_a_symlink_stays_and_its_target_gets_the_export(cli: Cli, tmp_path: Path) -> None:
    """``latest.jsonl -> 2024-06.jsonl``: the link is kept, the file it names is written, with
    the mode its owner gave it."""
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "2024-06.jsonl"
    target.write_text("an older export, longer than the new one " * 100)
    target.chmod(0o640)
    link = folder / "latest.jsonl"
    link.symlink_to(target.name)

    code, _, err = cli("knowledge", "export", str(link))
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == target.name
    written = target.read_text()
    assert "web1 nginx needs php-fpm" in written and "older export" not in written
    assert target.stat().st_mode & 0o777 == 0o640
    _nothing_beside(folder, "2024-06.jsonl", "latest.jsonl")


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_gets_the_export_and_stays_a_device(cli: Cli, tmp_path: Path) -> None:
    """A null device of the test's own, as ``export /dev/null`` meets the real one."""
    folder = tmp_path / "out"
    folder.mkdir()
    null = folder / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    null.chmod(0o666)  # the umask had a say in mknod's

    code, _, err = cli("knowledge", "export", str(null))
    assert code == 0, err
    assert stat.S_ISCHR(os.lstat(null).st_mode) and os.lstat(null).st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(os.lstat(null).st_mode) == 0o666
    assert null.read_text() == ""  # still discards what is written to it
    _nothing_beside(folder, "null")


def test_its_own_standard_output_gets_what_a_plain_export_prints(tmp_path: Path) -> None:
    """``export /dev/stdout`` (here a link of the test's own to /proc/self/fd/1, as
    /dev/stdout is): the link stays, and the output, redirected to a file or piped, is the
    export alone, as ``export`` with no FILE prints it: no summary line overwriting its start
    or following it where `import` would refuse it."""
    stdout = tmp_path / "stdout"
    stdout.symlink_to("/proc/self/fd/1")
    program = [sys.executable, "-m", "ai_sysadmin", "knowledge", "export"]
    plain = run_program(*program, timeout=120)
    assert plain.returncode == 0 and "web1 nginx needs php-fpm" in plain.stdout, plain.stderr

    piped = run_program(*program, str(stdout), timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == plain.stdout

    redirected = tmp_path / "redirected.jsonl"
    with redirected.open("w") as handle:
        done = subprocess.run([*program, str(stdout)], stdout=handle, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert redirected.read_text() == plain.stdout
    assert stdout.is_symlink() and os.readlink(stdout) == "/proc/self/fd/1"
