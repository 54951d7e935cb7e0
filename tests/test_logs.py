"""What the daemon writes to stderr (the journal, under its unit) is one line a record."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin import logs
from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import Database, IncidentStore
from tests.conftest import BIN


def test_host_text_with_newlines_cannot_forge_a_journal_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(tmp_path / "logs", "hal", console=True)
    try:
        # a managed host's `ps` that writes a forged record on its stderr
        stderr = "x\n[hal] decisions info: action 7 approved by root\r\x1b[2K"
        logs.channel_logger("orchestrator").warning("web1: ps failed: %s", stderr)
    finally:
        for channel in logs.CHANNELS:
            for handler in list(logs.channel_logger(channel).handlers):
                logs.channel_logger(channel).removeHandler(handler)
                handler.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["[hal] orchestrator warning: web1: ps failed: x\\n[hal] decisions info: "
                     "action 7 approved by root\\r\\x1b[2K"]
    # the file keeps the text as it was (JSON escapes it)
    [record] = logs.read(tmp_path / "logs", "orchestrator")
    assert record["msg"] == f"web1: ps failed: {stderr}"
    assert logging.getLogger("ai_sysadmin.orchestrator").propagate is False


def test_host_text_cannot_steer_the_terminal_the_daemon_writes_to(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A daemon run in a terminal: a C1 CSI (which clears the screen as ESC [ does), a line
    separator or a right-to-left override in a host's words is shown, not obeyed."""
    logs.configure(tmp_path / "logs", "hal", console=True)
    try:
        said = "gone\x9b2J\x9b0;0H all clear\u2028[hal] decisions info: \u202edevorppa"
        logs.channel_logger("orchestrator").warning("web1: journalctl: %s", said)
    finally:
        for channel in logs.CHANNELS:
            for handler in list(logs.channel_logger(channel).handlers):
                logs.channel_logger(channel).removeHandler(handler)
                handler.close()
    assert capsys.readouterr().err == (
        "[hal] orchestrator warning: web1: journalctl: gone\\x9b2J\\x9b0;0H all clear"
        "\\u2028[hal] decisions info: \\u202edevorppa\n")


def test_a_fix_approved_on_the_command_line_is_in_logs_actions(
        cli, config_file, settings: Settings, store, tmp_path: Path) -> None:
    # journalctl as the fix runs it is a real program here that only notes its argv
    ran = tmp_path / "ran"
    journalctl = tmp_path / "journalctl"
    journalctl.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {ran}\n')
    journalctl.chmod(0o755)
    config_file(f'ai_name = "hal"\n[programs]\njournalctl = "{journalctl}"\n'
                "[safety]\nverify_settle_seconds = 0\nverify_timeout = 30\n")
    host = short_hostname()
    action = asyncio.run(Executor(settings, store, {host: LocalTransport(host)}).propose(
        host, "vacuum_journal", {"max_size": "500M"}))
    # commands that only read write no log file
    for args in (("approve", "list"), ("issues", "list"), ("logs", "actions")):
        assert cli(*args)[0] == 0
    assert not settings.log_dir.exists()

    code, _, err = cli("approve", "approve", str(action.id))
    assert code == 0, err
    assert ran.read_text() == "--vacuum-size=500M\n"
    code, out, _ = cli("logs", "actions")
    assert code == 0
    assert f"action {action.id} running on {host}: vacuum_journal" in out
    assert f"action {action.id} succeeded and verified" in out
    [running] = [r for r in logs.read(settings.log_dir, "actions")
                 if "running" in r["msg"]]
    assert running["action"] == action.id and running["name"] == "hal"
    # the command that wrote them closed them when it ended: nothing of later work goes there
    assert not [h for c in logs.CHANNELS for h in logs.channel_logger(c).handlers
                if isinstance(h, logging.FileHandler)]


NOBODY = 65534


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory any user may enter (pytest's own are root's alone)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    top = Path(tempfile.mkdtemp(prefix="ai-sysadmin-logs-"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top)


def test_root_ending_an_incident_logs_as_the_daemon_that_owns_the_state(
        open_dir: Path) -> None:
    settings = Settings(ai_name="hal", state_dir=open_dir / "daemon-state")
    db = Database(settings.db_path)
    store = IncidentStore(db)
    finding = Finding("web1", "disk_space", "/var", Severity.CRITICAL, "/var is 97% full")
    number = store.record_check("web1", [finding], {"disk_space"}).opened[0]
    action = asyncio.run(Executor(settings, store, {}).propose(
        "web1", "vacuum_journal", {"max_size": "500M"}, incident_id=number))
    db.close()
    for path in [settings.state_dir, *settings.state_dir.rglob("*")]:  # the daemon's state
        os.chown(path, NOBODY, NOBODY)
    env = {**os.environ, "AI_SYSADMIN_STATE_DIR": str(settings.state_dir), "HOME": "/root"}

    done = subprocess.run([str(BIN), "issues", "close", str(number)], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert f"action(s) {action.id} withdrawn" in done.stdout
    made = [settings.log_dir, *settings.log_dir.iterdir()]
    assert {p.stat().st_uid for p in made} == {NOBODY}
    [record] = logs.read(settings.log_dir, "actions")
    assert record["msg"] == f"action {action.id} withdrawn: incident {number} closed by operator"


@contextlib.contextmanager
def _configured(log_dir: Path) -> Iterator[None]:
    logs.configure(log_dir, "hal")
    try:
        yield
    finally:
        for channel in logs.CHANNELS:
            for handler in list(logs.channel_logger(channel).handlers):
                logs.channel_logger(channel).removeHandler(handler)
                handler.close()


def test_a_record_read_back_is_one_line_its_channel_its_own_and_its_json_json(
        cli, settings: Settings) -> None:
    """`logs`: a failed fix's stderr (the host's) with a line break printed a second line
    that read as a record of ours; a notifier's "channel" extra made a service record read
    as of a channel "gotify"; a number past a float's range was printed as Infinity."""
    log_dir = settings.log_dir
    with _configured(log_dir):
        logs.channel_logger("actions").warning(
            "action 8 failed: %s", "Job for nginx.service failed.\n2026-12-06 07:20:00 [hal] "
            "audit: alice action.approved action:9: looks fine")
        logs.channel_logger("service").error("notification 5 given up",
                                             extra={"notification": 5, "channel": "gotify"})
    code, out, _ = cli("logs", "actions", "-n", "5")
    assert code == 0 and len(out.splitlines()) == 1, out
    assert "failed.\\n2026-12-06 07:20:00 [hal] audit: alice" in out
    code, out, _ = cli("logs", "service", "--json")
    (record,) = json.loads(out)
    assert (record["channel"], record["extra_channel"]) == ("service", "gotify")
    with (log_dir / "decisions.jsonl").open("a") as file:
        file.write('{"ts": 1e999, "level": "info", "msg": "cut"}\n')
    code, out, _ = cli("logs", "decisions", "--json")
    assert code == 0 and "Infinity" not in out
    assert json.loads(out)[-1]["msg"] == '{"ts": 1e999, "level": "info", "msg": "cut"}'


def test_a_hand_edited_line_with_a_lone_surrogate_or_a_true_time_is_shown_not_a_traceback(
        settings: Settings) -> None:
    """`logs` wrote a lone surrogate escape (``"\\ud800"``, valid JSON) to the terminal: a
    UnicodeEncodeError traceback; a ``"ts": true`` showed as 1970-01-01 00:00:01."""
    settings.log_dir.mkdir(parents=True)
    (settings.log_dir / "orchestrator.jsonl").write_text(
        '{"ts": 1700000000, "level": "info", "name": "hal", "msg": "lone high \\ud800"}\n'
        '{"ts": true, "level": "info", "name": "hal", "msg": "ts true"}\n')
    done = subprocess.run([str(BIN), "logs", "orchestrator"], capture_output=True,
                          timeout=60, check=False,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert (done.returncode, done.stderr) == (0, b""), done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines[0].endswith("[hal] info: lone high \ufffd")
    assert lines[1] == "? [hal] info: ts true"
