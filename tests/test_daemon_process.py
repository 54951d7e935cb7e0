"""The daemon as a user runs it: a real process, stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import BIN


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _daemon_past_its_first_check(tmp_path: Path, config_text: str
                                 ) -> tuple[subprocess.Popen[str], Path]:
    """`ai-sysadmin run` on ``config_text`` and a private state directory, once it has
    checked this host; stderr piped. The process, and the state directory."""
    config = tmp_path / "config.toml"
    config.write_text(config_text)
    state = tmp_path / "state"
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config), "AI_SYSADMIN_STATE_DIR": str(state)}
    proc = subprocess.Popen([str(BIN), "run"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    log = state / "logs" / "orchestrator.jsonl"
    try:
        _wait_for(lambda: log.exists() and "checked" in log.read_text(), 30, "the first check")
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    return proc, state


@pytest.mark.parametrize(("stop", "returncode"), [(signal.SIGTERM, 0),
                                                  (signal.SIGHUP, -signal.SIGHUP)])
def test_run_checks_then_stops_cleanly_on_a_stop_signal(
        tmp_path: Path, stop: signal.Signals, returncode: int) -> None:
    """SIGTERM ends it with exit 0. SIGHUP (``systemctl kill -s HUP``, a conventional reload)
    ends it as cleanly, then by SIGHUP itself, which the units restart
    (RestartForceExitStatus=SIGHUP) with the config read again: an exit 0 there would be left
    stopped by Restart=on-failure."""
    # no knowledge base: the first check's host profile opens one (seconds, past 15 under a
    # loaded suite), and the process ends once that write is done, after "stopped cleanly"
    proc, state = _daemon_past_its_first_check(
        tmp_path, 'ai_name = "hal"\ncheck_interval = 3600\n[knowledge]\nenabled = false\n')
    log = state / "logs" / "orchestrator.jsonl"
    try:
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == returncode, err
    assert "[hal] service info: hal stopped cleanly" in err
    if stop == signal.SIGHUP:
        assert err.splitlines()[-1] == "stopped by SIGHUP"
    record = json.loads(log.read_text().splitlines()[0])
    assert record["name"] == "hal" and record["msg"].startswith("checked ")


def test_a_second_daemon_on_the_same_state_is_refused_and_the_first_runs_on(
        tmp_path: Path) -> None:
    """Two daemons on one state directory would send every notification twice and restart
    each other's investigations: the second is refused (exit 2, an error the operator must
    mend, so systemd does not restart it) naming the first; the first keeps running; and a
    daemon killed outright leaves nothing behind that stops the next one."""
    config = tmp_path / "config.toml"
    config.write_text('ai_name = "hal"\ncheck_interval = 3600\njournal_follow = false\n'
                      "[agent]\ninvestigate = false\n")
    state = tmp_path / "state"
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config), "AI_SYSADMIN_STATE_DIR": str(state)}
    log = state / "logs" / "orchestrator.jsonl"

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen([str(BIN), "run"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)

    def checks() -> int:
        return log.read_text().count('"checked ') if log.exists() else 0

    first = start()
    third = None
    try:
        _wait_for(lambda: checks() == 1, 30, "the first daemon's check")
        second = start()
        _, said = second.communicate(timeout=60)
        assert second.returncode == 2
        assert said.strip() == (f"error: another daemon (pid {first.pid}) already runs on "
                                f"{state}: stop it first; two would send every notification "
                                "twice and take over each other's investigations")
        assert first.poll() is None and checks() == 1  # the refused one checked nothing
        first.kill()
        first.wait(timeout=15)
        third = start()
        _wait_for(lambda: checks() == 2, 30, "the next daemon's check after a SIGKILL")
        third.send_signal(signal.SIGTERM)
        _, err = third.communicate(timeout=15)
        assert third.returncode == 0 and "hal stopped cleanly" in err
    finally:
        for proc in (first, third):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()



def test_sighup_with_a_broken_config_keeps_the_daemon_running_on_the_old_one(
        tmp_path: Path) -> None:
    """SIGHUP is how README says a changed config is applied; a typo in it stopped the
    daemon, whose unit's restart then exited 2 and stayed stopped (RestartPreventExitStatus):
    nothing watched. The daemon checks the file first: one a start would refuse is logged and
    told through its channels, and it runs on; one that starts stops it, by SIGHUP, as
    before."""
    from tests.notify.conftest import TOKEN, secret_file
    from tests.notify.servers import GotifyServer

    token = secret_file(tmp_path / "gotify.token", TOKEN + "\n")
    config = tmp_path / "config.toml"
    with GotifyServer(TOKEN) as gotify:
        good = (f'ai_name = "hal"\ncheck_interval = 3600\njournal_follow = false\n'
                f'gotify_url = "{gotify.url}"\ngotify_token_file = "{token}"\n'
                "[agent]\ninvestigate = false\n[knowledge]\nenabled = false\n")
        config.write_text(good)
        state = tmp_path / "state"
        env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config),
               "AI_SYSADMIN_STATE_DIR": str(state)}
        proc = subprocess.Popen([str(BIN), "run"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        service = state / "logs" / "service.jsonl"
        log = state / "logs" / "orchestrator.jsonl"
        try:
            _wait_for(lambda: log.exists() and "checked" in log.read_text(), 30,
                      "the first check")
            config.write_text('autonomy_level = "auto_safe"\n' + good)  # a typo: auto-safe
            proc.send_signal(signal.SIGHUP)
            _wait_for(lambda: service.exists() and "config_refused" in service.read_text(),
                      30, "the refusal logged")
            told = gotify.wait_for(lambda: [a for a in gotify.accepted
                                            if "changed config refused" in a.get("title")])
            assert "autonomy_level" in told[0]["message"]
            assert proc.poll() is None, "the daemon stopped on a config it cannot start on"
            refused = [json.loads(line) for line in service.read_text().splitlines()
                       if "config_refused" in line]
            assert str(config) in refused[0]["msg"] and "auto_safe" in refused[0]["msg"]

            config.write_text(good.replace("check_interval = 3600", "check_interval = 1800"))
            proc.send_signal(signal.SIGHUP)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == -signal.SIGHUP, err
    assert "[hal] service info: hal stopped cleanly" in err
    assert err.splitlines()[-1] == "stopped by SIGHUP"


def test_a_hangup_ignored_where_it_was_inherited_stays_ignored_by_the_daemon() -> None:
    """`nohup ai-sysadmin run &`: the terminal's hangup is ignored, as nohup set it; the
    daemon's check of a changed config took SIGHUP over, and a closed terminal stopped it."""
    import asyncio

    from ai_sysadmin.orchestrator.daemon import Daemon

    daemon = object.__new__(Daemon)  # its hangups alone: no runtime needed
    daemon._spawned = []
    daemon.config_check = lambda: None
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        async def taken() -> object:
            daemon.stop_event = asyncio.Event()
            daemon._take_hangups(asyncio.get_running_loop())
            return signal.getsignal(signal.SIGHUP)

        assert asyncio.run(taken()) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_the_sighup_check_reads_the_file_the_start_read_whoever_the_daemon_became(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`sudo ai-sysadmin --config=~/cfg.toml run`: the command becomes the state's owner (its
    home, its default config path) after the start read the config; the SIGHUP check read
    the owner's ~/cfg.toml ("does not exist") and refused a good config for good."""
    from ai_sysadmin.cli.admin import _reread
    from ai_sysadmin.config import load_settings
    from ai_sysadmin.errors import ConfigError

    home = tmp_path / "home"
    home.mkdir()
    config = home / "cfg.toml"
    config.write_text('ai_name = "hal"\n')
    monkeypatch.setenv("HOME", str(home))
    started = load_settings("~/cfg.toml")
    monkeypatch.setenv("HOME", "/nonexistent")  # the daemon's account now
    assert _reread(started).settings.ai_name == "hal"
    config.write_text('ai_name = "hal"\nautonomy_level = "auto_safe"\n')
    with pytest.raises(ConfigError, match=str(config)):
        _reread(started)


def test_sighup_with_a_queue_a_start_refuses_keeps_the_daemon_running(
        tmp_path: Path) -> None:
    """A changed config whose Redis queue refuses the login passed the SIGHUP check, which
    read the settings alone: the daemon stopped for its restart, which was refused (exit 2)
    and left stopped by its unit, and nothing was watched. The check logs in as the start
    does: the daemon runs on with the config it started with and says why."""
    from tests.queue.conftest import free_port, need_redis_server, redis_server_process

    need_redis_server()
    port = free_port()
    config = tmp_path / "config.toml"
    state = tmp_path / "state"

    def written(password: str) -> None:
        config.write_text(
            'ai_name = "hal"\ncheck_interval = 3600\njournal_follow = false\n'
            '[llm]\nurl = "http://127.0.0.1:9"\n[knowledge]\nenabled = false\n'
            f'[queue]\nurl = "redis://:{password}@127.0.0.1:{port}/0"\n')

    written("s3cret")
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config), "AI_SYSADMIN_STATE_DIR": str(state)}
    service = state / "logs" / "service.jsonl"
    log = state / "logs" / "orchestrator.jsonl"
    with redis_server_process(port, password="s3cret"):
        proc = subprocess.Popen([str(BIN), "run"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(lambda: log.exists() and "checked" in log.read_text(), 30,
                      "the first check")
            written("wrongpass")
            proc.send_signal(signal.SIGHUP)
            _wait_for(lambda: service.exists() and "config_refused" in service.read_text(),
                      30, "the refusal logged")
            assert proc.poll() is None, "the daemon stopped on a config it cannot start on"
            refused = [json.loads(line) for line in service.read_text().splitlines()
                       if "config_refused" in line]
            assert f"the queue at redis://:****@127.0.0.1:{port}/0 refused the login" in \
                refused[0]["msg"]
            assert "wrongpass" not in service.read_text()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
    assert proc.returncode == 0, err


def test_sighup_after_an_upgrade_migrated_the_state_restarts_the_daemon(
        tmp_path: Path) -> None:
    """After an upgrade, a new program's command migrates the state database; the running,
    older daemon's SIGHUP check refused it as "newer than this program" (advising to move
    the state aside) and kept the old code running, where the restart that SIGHUP asks for
    runs the new program, which opens it. The check leaves schema versions to the start."""
    import sqlite3

    proc, state = _daemon_past_its_first_check(
        tmp_path, 'ai_name = "hal"\ncheck_interval = 3600\njournal_follow = false\n'
        "[agent]\ninvestigate = false\n[knowledge]\nenabled = false\n")
    try:
        with sqlite3.connect(state / "state.db") as db:  # what the new program's migration did
            (version,) = db.execute("PRAGMA user_version").fetchone()
            db.execute(f"PRAGMA user_version = {version + 1}")
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGHUP, err
    assert err.splitlines()[-1] == "stopped by SIGHUP"
