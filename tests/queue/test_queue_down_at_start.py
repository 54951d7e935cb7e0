"""A Redis queue that does not answer when the services start (after a reboot Redis may come
up after them): the daemon and the worker start anyway and wait for it, where they exited 2,
the exit the units never restart. A server that refuses the login is still exit 2: waiting
would not mend the config."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from ai_sysadmin.llm.queue.redis_queue import RedisQueue
from tests.conftest import BIN
from tests.queue.conftest import free_port, need_redis_server, redis_server_process
from tests.support.polling import poll_until


@pytest.fixture(autouse=True)
def _redis_installed() -> None:
    need_redis_server()


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\ncheck_interval = 3600\njournal_follow = false\n'
                      f'[queue]\nurl = "{url}"\n')
    return {**os.environ, "AI_SYSADMIN_CONFIG": str(config),
            "AI_SYSADMIN_STATE_DIR": str(tmp_path / "state")}


def _stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, then what it said on stderr; it must have stopped cleanly."""
    proc.send_signal(signal.SIGTERM)
    _, said = proc.communicate(timeout=30)
    assert proc.returncode == 0, said
    return said


def _log(tmp_path: Path, channel: str) -> str:
    path = tmp_path / "state" / "logs" / f"{channel}.jsonl"
    return path.read_text() if path.exists() else ""


def test_the_worker_waits_for_a_redis_that_comes_up_after_it(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    worker = subprocess.Popen([str(BIN), "worker"], env=_env(tmp_path, url),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        poll_until(lambda: "the worker waits for it" in _log(tmp_path, "service")
                   or worker.poll() is not None, 30, "the worker to say it waits")
        assert worker.poll() is None, worker.communicate()[1]
        with redis_server_process(port):
            queue = RedisQueue(url)
            try:
                # it serves the queue once Redis is up: `queue` shows a worker alive
                poll_until(queue.live_workers, 60, "the worker to serve the queue")
            finally:
                queue.close()
            said = _stop(worker)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert (f"cannot reach the queue at {url}: Error 111 connecting to 127.0.0.1:{port}. "
            "Connection refused; the worker waits for it") in said


def test_the_daemon_checks_hosts_while_the_queue_is_down(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    daemon = subprocess.Popen([str(BIN), "run"], env=_env(tmp_path, url),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        poll_until(lambda: '"checked ' in _log(tmp_path, "orchestrator")
                   or daemon.poll() is not None, 60, "the daemon's first check")
        assert daemon.poll() is None, daemon.communicate()[1]
        said = _stop(daemon)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert f"cannot reach the queue at {url}: " in said
    assert "investigations wait for it" in said


def test_a_queue_that_refuses_the_login_stops_the_worker_with_exit_2(tmp_path: Path) -> None:
    port = free_port()
    with redis_server_process(port, password="right"):
        done = subprocess.run([str(BIN), "worker"],
                              env=_env(tmp_path, f"redis://:wrong@127.0.0.1:{port}/0"),
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: the queue at redis://:****@127.0.0.1:{port}/0 refused the login: invalid "
        "username-password pair or user is disabled.")
