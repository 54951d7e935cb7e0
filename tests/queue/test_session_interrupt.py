"""A conversation's session that serves the queue itself (no daemon running) and is interrupted
(Ctrl-C) ends at once, even while its worker answers another caller's request: that request
goes back to the queue unanswered, for the next worker, instead of holding the person's
terminal for as long as the LLM takes. Real SQLite queue, a scripted model over real HTTP."""

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


def test_an_interrupted_session_gives_back_another_callers_request(tmp_path: Path) -> None:
    with ScriptedModel(then=delay(120, say("far too late"))) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                            llm=LLMSettings(backend="openai", url=model.url, model="scripted"))
        queue = open_queue(settings)

        async def run() -> tuple[str, float]:
            entered = asyncio.Event()

            async def conversation() -> None:
                async with llm_session(settings, Priority.INTERACTIVE):
                    entered.set()
                    await asyncio.Event().wait()  # a person reading, until Ctrl-C

            session = asyncio.create_task(conversation())
            await asyncio.wait_for(entered.wait(), 30)
            # another `ask`, which found this session's worker serving and relies on it
            other = queue.submit("chat", chat_payload([Message("user", "hi")], []),
                                 "interactive").request_id
            await until(lambda: model.requests, 30, "the other request to reach the model")
            loop = asyncio.get_running_loop()
            interrupted = loop.time()
            session.cancel()
            await asyncio.wait({session}, timeout=PROMPT_EXIT + 10)
            took = loop.time() - interrupted
            if not session.done():
                model.close()  # lets the held answer go, so the session can end
                await asyncio.wait({session}, timeout=30)
            return other, took

        other, took = asyncio.run(run())
        request = queue.get(other)
        queue.close()
    assert took < PROMPT_EXIT, f"the interrupted session took {took:.1f} s to end"
    assert (request.state, request.attempts, request.result) == ("pending", 0, None)

