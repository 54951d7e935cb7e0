"""A daemon that runs for months keeps its log files bounded, and the commands that write the
same files (``approve`` and the like, other processes) neither lose records nor rotate twice."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest

from ai_sysadmin import logs
from tests.support.dirs import enterable_tmp

SRC = Path(__file__).resolve().parents[1] / "src"
#: a small limit stands for the real one: weeks of checks in a second
LIMIT = 64 * 1024


def _writer(log_dir: Path, records: int, tag: str) -> str:
    """Python for another process that logs ``records`` records of about 250 bytes."""
    return textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from ai_sysadmin import logs
        logs.LOG_MAX_BYTES = {LIMIT}
        logs.configure(Path({str(log_dir)!r}), "hal")
        for n in range({records}):
            logs.channel_logger("actions").info("{tag} %d: %s", n, "y" * 200)
    """)


def _run(code: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, check=False, **kwargs)  # type: ignore[call-overload]


def test_log_files_are_rotated_and_stay_bounded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "LOG_MAX_BYTES", LIMIT)
    log_dir = tmp_path / "logs"
    with logs.kept():
        logs.configure(log_dir, "hal")
        orchestrator = logs.channel_logger("orchestrator")
        for n in range(8000):  # about 2 MB of records, 30 times the limit
            orchestrator.info("web1: check %d: app.service failed: %s", n, "x" * 180)
    files = sorted(log_dir.glob("orchestrator.jsonl*"))
    assert [f.name for f in files] == ["orchestrator.jsonl"] + [
        f"orchestrator.jsonl.{n}" for n in range(1, logs.LOG_BACKUPS + 1)]
    # the current file and the kept rotations, each at most the limit (plus one record)
    assert all(f.stat().st_size <= LIMIT + 300 for f in files)
    # a rotation starts a file no more readable than the first
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o640}
    # `logs` still shows the latest records, across the rotated files, in order
    records = logs.read(log_dir, "orchestrator", 400)
    assert [int(r["msg"].split()[2].rstrip(":")) for r in records] == list(range(7600, 8000))


def test_a_file_another_process_rotated_is_followed_not_rotated_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "LOG_MAX_BYTES", LIMIT)
    log_dir = tmp_path / "logs"
    with logs.kept():
        logs.configure(log_dir, "hal")  # the daemon: its file open
        actions = logs.channel_logger("actions")
        actions.info("daemon before")
        # a command (another process) writes past the limit: it rotates once
        done = _run(_writer(log_dir, 300, "approve"))
        assert done.returncode == 0, done.stderr
        assert sorted(f.name for f in log_dir.glob("actions.jsonl*")) == [
            "actions.jsonl", "actions.jsonl.1"]
        actions.info("daemon after")
    # the daemon wrote on in the new file; the rotated one was not rotated a second time
    assert sorted(f.name for f in log_dir.glob("actions.jsonl*")) == [
        "actions.jsonl", "actions.jsonl.1"]
    messages = [r["msg"] for r in logs.read(log_dir, "actions", 1000)]
    assert messages[0] == "daemon before" and messages[-1] == "daemon after"
    assert len(messages) == 302
    assert [int(m.split()[1].rstrip(":")) for m in messages[1:-1]] == list(range(300))


def test_writers_at_the_limit_together_rotate_once_and_keep_rotating(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    code = _writer(log_dir, 2000, "{tag}") + textwrap.dedent("""
        handler = logs.channel_logger("actions").handlers[0]
        print(handler.maxBytes)
    """)
    # the daemon and a command (or the LLM worker) past the limit at the same moments
    writers = [subprocess.Popen([sys.executable, "-c", code.replace("{tag}", tag)],
                                env={**os.environ, "PYTHONPATH": str(SRC)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for tag in ("daemon", "approve")]
    said = [w.communicate(timeout=120) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], said
    # no "--- Logging error ---", and neither gave up rotating after a lost race
    assert [(out.strip(), err) for out, err in said] == [(str(LIMIT), "")] * 2
    files = sorted(log_dir.glob("actions.jsonl*"))
    assert len(files) == 1 + logs.LOG_BACKUPS
    # each rotated file was rotated once, at the limit: none is a sliver of a second rotation
    assert all(LIMIT <= f.stat().st_size <= LIMIT + 2 * 300 for f in files[1:]), [
        (f.name, f.stat().st_size) for f in files]


def _as_nobody(log_dir: Path, records: int, stderr: Path) -> int:
    """Log as user nobody in a forked child (the interpreter may live where nobody cannot
    run it); its exit status, its stderr in ``stderr``."""
    nobody = pwd.getpwnam("nobody")
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        status = 1
        err = stderr.open("w")
        try:
            os.dup2(err.fileno(), 2)
            sys.stderr = err
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            logs.configure(log_dir, "hal")
            for n in range(records):
                logs.channel_logger("actions").info("approve %d: %s", n, "y" * 200)
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            err.flush()
            os._exit(status)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_writer_that_may_not_rotate_keeps_every_record_and_says_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "LOG_MAX_BYTES", LIMIT)
    # the file is writable to the command's user, the directory is not: it cannot rename
    with enterable_tmp("logs-") as log_dir, logs.kept():
        for channel in logs.CHANNELS:
            (log_dir / f"{channel}.jsonl").touch(mode=0o666)
            (log_dir / f"{channel}.jsonl").chmod(0o666)
        status = _as_nobody(log_dir, 600, tmp_path / "stderr")
        # and no "--- Logging error ---" traceback per record
        assert (status, (tmp_path / "stderr").read_text()) == (0, "")
        assert sorted(f.name for f in log_dir.iterdir()) == sorted(
            f"{channel}.jsonl" for channel in logs.CHANNELS)
        messages = [r["msg"] for r in logs.read(log_dir, "actions", 1000)]
        assert [int(m.split()[1].rstrip(":")) for m in messages] == list(range(600))
