"""A question whose asker is gone is not answered later for nobody: `ask`, answering its own
question (no worker runs), killed with SIGKILL. The question went back to the queue at a
person's priority, and the first worker to start answered it ahead of the daemon's work.
With SQLite the queue sees the asker's process is gone and withdraws it; Redis, whose
workers span machines, cannot look at a process and requeues it, as it does any lease that
ran out. And one whose asker is alive but stalled past its lease (Ctrl-Z, then `fg`) is
requeued and answered, not cancelled under it ("was cancelled while it was waited for"). A
Ctrl-C while the Redis queue was down, which could not take the question out, says so. The
real program in a child process, the real queue (SQLite and a real redis-server), a
scripted model over real HTTP."""

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


def _ask(tmp_path: Path, queue_url: str, model_url: str,  # noqa: F811
         question: str = "is nginx ok?") -> subprocess.Popen[str]:
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\n[queue]\nurl = "{queue_url}"\n'
                      f'lease_seconds = {LEASE}\n[llm]\nbackend = "openai"\n'
                      f'url = "{model_url}"\nmodel = "scripted"\n')
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config),
           "AI_SYSADMIN_STATE_DIR": str(tmp_path / "state")}
    # as a terminal starts it: a test run in the background ignores SIGINT
    return subprocess.Popen([str(BIN), "ask", question], env=env, text=True,
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


def _given_to_a_worker(queue: RequestQueue, request_id: str) -> None:
    """Once its lease ran out, the next worker gets it (Redis: no process can be looked at,
    so an asker gone and one stalled are alike)."""
    assert isinstance(queue, LeasedQueue)
    claim = poll_until(lambda: queue.claim("shared-worker"), 60,
                       "the dead asker's lease to run out")
    assert claim.request.id == request_id


def test_a_question_whose_asker_was_killed_is_not_answered_later(
        tmp_path: Path, backend: str, queue_url: str) -> None:  # noqa: F811
    with ScriptedModel([delay(600, say("far too late"))]) as model:
        settings = Settings(state_dir=tmp_path / "state", queue={"url": queue_url})
        queue = open_queue(settings)
        ask = _ask(tmp_path, queue_url, model.url)
        try:
            request_id = _taken(queue, ask)
            poll_until(lambda: model.requests, 60, "the question to reach the model")
            ask.kill()
            ask.wait(30)
            if backend == "sqlite":
                _not_answered_again(queue, request_id)
            else:
                _given_to_a_worker(queue, request_id)
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
                # as said: Redis requeues a lease that ran out, whoever held it
                _given_to_a_worker(queue, request_id)
            finally:
                queue.close()
    assert len(model.requests) == 1


def test_a_question_whose_asker_was_stopped_past_its_lease_is_answered(
        tmp_path: Path, queue_url: str) -> None:  # noqa: F811
    """Ctrl-Z on `ask` past its lease while another `ask` claims: back in the queue, not
    cancelled; `fg`, and it is answered."""
    steps = [delay(600, say("far too late")), say("second answer"),
             say("first answer, asked again")]
    with ScriptedModel(steps) as model:
        settings = Settings(state_dir=tmp_path / "state", queue={"url": queue_url})
        queue = open_queue(settings)
        ask = _ask(tmp_path, queue_url, model.url)
        second: subprocess.Popen[str] | None = None
        try:
            request_id = _taken(queue, ask)
            poll_until(lambda: model.requests, 60, "the question to reach the model")
            ask.send_signal(signal.SIGSTOP)
            poll_until(lambda: queue.get(request_id).state == "pending", 60,
                       "the stopped asker's lease to run out")
            second = _ask(tmp_path, queue_url, model.url, "and disk?")
            out, err = second.communicate(timeout=120)
            assert second.returncode == 0, err
            assert "second answer" in out
            assert queue.get(request_id).state == "pending"
            ask.send_signal(signal.SIGCONT)
            out, err = ask.communicate(timeout=120)
            assert ask.returncode == 0, err
            assert "first answer, asked again" in out
            assert queue.get(request_id).state == "done"
        finally:
            for proc in (ask, second):
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)
                    proc.kill()
                    proc.wait(30)
            queue.close()
