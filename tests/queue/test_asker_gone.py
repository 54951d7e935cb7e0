"""A question whose asker is gone is not answered later for nobody: `ask`, answering its own
question (no worker runs), killed with SIGKILL; or stopped by Ctrl-C while the Redis queue
was down, which could not take the question out and said nothing of it. The question went
back to the queue at a person's priority, and the first worker to start answered it ahead
of the daemon's work. The real program in a child process, the real queue (SQLite and a
real redis-server), a scripted model over real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.llm.queue import RequestQueue, open_queue
from ai_sysadmin.llm.queue.leases import LeasedQueue
from tests.conftest import BIN
from tests.queue.conftest import (  # noqa: F401 - fixtures
    backend,
    free_port,
    need_redis_server,
    queue_url,
    redis_server,
    redis_server_process,
    redis_url,
)
from tests.support.polling import poll_until
from tests.support.scripted_model import ScriptedModel, delay, say

#: short, so that the dead asker's lease runs out soon
LEASE = 2.0


def _ask(tmp_path: Path, queue_url: str, model_url: str) -> subprocess.Popen[str]:  # noqa: F811
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\n[queue]\nurl = "{queue_url}"\n'
                      f'lease_seconds = {LEASE}\n[llm]\nbackend = "openai"\n'
                      f'url = "{model_url}"\nmodel = "scripted"\n')
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config),
           "AI_SYSADMIN_STATE_DIR": str(tmp_path / "state")}
    # as a terminal starts it: a test run in the background ignores SIGINT
    return subprocess.Popen([str(BIN), "ask", "is nginx ok?"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _taken(queue: RequestQueue, ask: subprocess.Popen[str]) -> str:
    """The id of the request being answered, once one is."""
    taken = poll_until(lambda: ask.poll() is not None or next(
        (r.id for r in queue.stats().in_flight_requests), None), 60, "the question to be taken")
    assert ask.poll() is None, ask.communicate()
    return str(taken)


def _not_answered_again(queue: RequestQueue, request_id: str) -> None:
    """Once its lease ran out, no worker gets it: it was withdrawn."""
    poll_until(lambda: not queue.stats().in_flight_requests, 60,
               "the dead asker's lease to run out")
    assert isinstance(queue, LeasedQueue)
    assert queue.claim("shared-worker") is None
    assert queue.get(request_id).state == "cancelled"
    assert queue.stats().depth == 0


def test_a_question_whose_asker_was_killed_is_not_answered_later(
        tmp_path: Path, queue_url: str) -> None:  # noqa: F811
    with ScriptedModel([delay(600, say("far too late"))]) as model:
        settings = Settings(state_dir=tmp_path / "state", queue={"url": queue_url})
        queue = open_queue(settings)
        ask = _ask(tmp_path, queue_url, model.url)
        try:
            request_id = _taken(queue, ask)
            poll_until(lambda: model.requests, 60, "the question to reach the model")
            ask.kill()
            ask.wait(30)
            _not_answered_again(queue, request_id)
        finally:
            if ask.poll() is None:
                ask.kill()
                ask.wait(30)
            queue.close()
    assert len(model.requests) == 1


@pytest.mark.slow
def test_ctrl_c_while_redis_is_down_says_the_question_may_be_answered(
        tmp_path: Path) -> None:
    need_redis_server()
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    kept = tmp_path / "redis"
    kept.mkdir()
    with ScriptedModel([delay(600, say("far too late"))]) as model:
        settings = Settings(state_dir=tmp_path / "state", queue={"url": url})
        with redis_server_process(port, keep_in=kept):
            queue = open_queue(settings)
            ask = _ask(tmp_path, url, model.url)
            try:
                request_id = _taken(queue, ask)
                poll_until(lambda: model.requests, 60, "the question to reach the model")
            except BaseException:
                ask.kill()
                ask.wait(30)
                raise
        try:
            ask.send_signal(signal.SIGINT)
            _, stderr = ask.communicate(timeout=60)
        finally:
            if ask.poll() is None:
                ask.kill()
                ask.wait(30)
        assert ask.returncode == 130, stderr
        assert "could not be withdrawn" in stderr, stderr
        assert "may still answer it once the queue is back" in stderr, stderr
        assert "Traceback" not in stderr
        with redis_server_process(port, keep_in=kept):
            try:
                _not_answered_again(queue, request_id)
            finally:
                queue.close()
    assert len(model.requests) == 1
