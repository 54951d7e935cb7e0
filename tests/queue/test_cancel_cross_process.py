"""A question withdrawn in one process (`ask` stopped by Ctrl-C) frees a worker in another
(the daemon's, or `ai-sysadmin worker`) at once: the worker saw the cancellation only at its
next lease renewal (lease_seconds / 3, 20 s by default), and the next question waited for a
withdrawn one the LLM kept answering for nobody. A real `ai-sysadmin worker` process, the
real queue (SQLite and a real redis-server), a scripted model over real HTTP."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.llm.handlers import chat_payload
from ai_sysadmin.llm.queue import open_queue
from ai_sysadmin.llm.types import Message, Priority
from tests.queue.conftest import backend, queue_url, redis_server, redis_url  # noqa: F401
from tests.queue.worker_cli import worker_process
from tests.support.polling import poll_until
from tests.support.scripted_model import ScriptedModel, delay, say

#: a lease whose renewal (a third of it) comes long after the next question was answered by
#: a worker that let the withdrawn one go, and long before by one that waits for the renewal
LEASE = 900.0
#: how long the next question may wait: far less than a renewal, far more than an answer
WAIT = 120.0



def _asked(question: str) -> dict[str, object]:
    return chat_payload([Message("user", question)], [])


def test_a_question_withdrawn_in_another_process_frees_the_worker(
        tmp_path: Path, queue_url: str) -> None:  # noqa: F811
    # the withdrawn question's answer never comes in time; the next one's comes at once
    with ScriptedModel([delay(LEASE, say("far too late")), say("fast answer")]) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                            llm={"backend": "openai", "url": model.url, "model": "scripted"},
                            queue={"url": queue_url, "lease_seconds": LEASE})
        queue = open_queue(settings)
        worker = worker_process(tmp_path, settings, LEASE)
        try:
            poll_until(lambda: queue.live_workers() == 1 or worker.poll() is not None, 60,
                       "the worker to serve the queue")
            assert worker.poll() is None, (tmp_path / "worker.stderr").read_text()
            slow = queue.submit("chat", _asked("slow question"), Priority.INTERACTIVE)
            poll_until(lambda: len(model.requests) == 1, 60, "the model to be asked")
            assert queue.abandon(slow.request_id)
            fast = queue.submit("chat", _asked("fast question"), Priority.INTERACTIVE)
            answered = asyncio.run(queue.wait(fast.request_id, WAIT))
        finally:
            worker.terminate()
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:  # still draining the withdrawn question
                worker.kill()
                worker.wait(30)
            queue.close()
    assert answered.state == "done", answered
    assert answered.result is not None
    assert answered.result["message"]["content"] == "fast answer"
    assert [r["messages"][-1]["content"] for r in model.requests] == [
        "slow question", "fast question"]
    assert "lease lost" in (tmp_path / "worker.stderr").read_text()
