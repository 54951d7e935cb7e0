"""A conversation's session that serves its own requests (no worker running) and is interrupted
(Ctrl-C) while the LLM takes its time ends at once: its question leaves the queue unanswered,
instead of holding the person's terminal for as long as the LLM takes. Another caller's
request queued meanwhile (the daemon's, waiting for its worker) is never the session's to
take. Real SQLite queue, a scripted model over real HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ai_sysadmin.config import LLMSettings, Settings
from ai_sysadmin.llm.handlers import chat_payload
from ai_sysadmin.llm.queue import open_queue
from ai_sysadmin.llm.types import Message, Priority
from ai_sysadmin.orchestrator.session import llm_session
from tests.support.polling import until
from tests.support.scripted_model import ScriptedModel, delay, say

#: what "at once" allows on a loaded test machine (the worker would wait for llm.timeout)
PROMPT_EXIT = 5.0


def test_an_interrupted_session_withdraws_its_question_and_leaves_other_requests(
        tmp_path: Path) -> None:
    with ScriptedModel(then=delay(120, say("far too late"))) as model:
        # a slot free while the question is answered, as between a conversation's turns
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                            llm=LLMSettings(backend="openai", url=model.url, model="scripted"),
                            queue={"concurrency": 2})
        queue = open_queue(settings)
        # the daemon's investigation, queued for a worker that is not running
        other = queue.submit("chat", chat_payload([Message("user", "why did nginx fail?")], []),
                             "autonomous", "incident:1").request_id

        async def run() -> tuple[list[str], float]:
            asked: list[list[str]] = []

            async def conversation() -> None:
                async with llm_session(settings, Priority.INTERACTIVE) as llm:
                    asked.append(llm.request_ids)  # filled as it asks
                    await llm([Message("user", "is nginx ok?")], [])

            session = asyncio.create_task(conversation())
            await until(lambda: model.requests, 30, "the question to reach the model")
            loop = asyncio.get_running_loop()
            interrupted = loop.time()
            session.cancel()
            await asyncio.wait({session}, timeout=PROMPT_EXIT + 10)
            took = loop.time() - interrupted
            if not session.done():
                model.close()  # lets the held answer go, so the session can end
                await asyncio.wait({session}, timeout=30)
            return asked[0], took

        asked, took = asyncio.run(run())
        (question,) = [queue.get(request_id) for request_id in asked]
        request = queue.get(other)
        queue.close()
    assert took < PROMPT_EXIT, f"the interrupted session took {took:.1f} s to end"
    assert (question.state, question.result) == ("cancelled", None)
    # the model was asked the question alone; the daemon's request waits for its worker
    assert len(model.requests) == 1
    assert "is nginx ok?" in str(model.requests[0]["messages"])
    assert (request.state, request.attempts, request.result) == ("pending", 0, None)
