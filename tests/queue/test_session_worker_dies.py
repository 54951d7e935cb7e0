"""A conversation that began while a worker served the queue (the daemon's, or
`ai-sysadmin worker`) and whose worker dies mid-session answers its next questions itself,
saying so once, where each waited for the queue's timeout and the person got a timeout
instead of an answer. Nothing is answered twice. A real `ai-sysadmin worker` process killed
with SIGKILL, the real queue (SQLite and a real redis-server), a scripted model over HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ai_sysadmin.cli.library_warnings import shown
from ai_sysadmin.config import Settings
from ai_sysadmin.llm.queue import open_queue
from ai_sysadmin.llm.types import Message, Priority
from ai_sysadmin.orchestrator.session import llm_session
from tests.queue.conftest import redis_server, redis_url  # noqa: F401 - fixtures
from tests.queue.worker_cli import worker_process
from tests.support.polling import poll_until, until
from tests.support.scripted_model import ScriptedModel, delay, say

#: the queue's timeout: what the person waited for before getting one, and far longer than
#: the worker's silence (5 s) that tells a session it is gone
WAIT = 40.0
QUESTIONS = ("is nginx ok?", "and php-fpm?", "and the disk?")
#: a lease short enough that a question the killed worker held goes back to the queue soon
LEASE = 2.0


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}"
    return str(request.getfixturevalue("redis_url"))


def _answer(request: dict[str, object]) -> object:
    # the last question, echoed: each answer shows which question it answers
    return say(f"answer to {request['messages'][-1]['content']}")  # type: ignore[index]



@pytest.mark.slow
def test_a_conversation_whose_worker_is_killed_answers_its_next_questions_itself(
        tmp_path: Path, queue_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with ScriptedModel(then=_answer) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                            llm={"backend": "openai", "url": model.url, "model": "scripted"},
                            queue={"url": queue_url, "wait_timeout": WAIT})
        queue = open_queue(settings)
        worker = worker_process(tmp_path, settings)
        try:
            poll_until(lambda: queue.live_workers() == 1 or worker.poll() is not None, 60,
                       "the worker to serve the queue")
            assert worker.poll() is None, (tmp_path / "worker.stderr").read_text()

            async def conversation() -> tuple[list[str], list[str]]:
                answers: list[str] = []
                async with llm_session(settings, Priority.INTERACTIVE) as llm:
                    for number, question in enumerate(QUESTIONS):
                        if number == 1:
                            worker.kill()
                            worker.wait(30)
                        result = await llm([Message("user", question)], [])
                        answers.append(result.message.content)
                    return llm.request_ids, answers

            with shown("ask"):
                ids, answers = asyncio.run(conversation())
        finally:
            if worker.poll() is None:
                worker.kill()
            worker.wait(30)
        requests = [queue.get(request_id) for request_id in ids]
        queue.close()
    assert answers == [f"answer to {question}" for question in QUESTIONS]
    # the first by the worker, the rest by the session itself, each once
    assert [(r.state, r.attempts) for r in requests] == [("done", 1)] * 3
    assert "-session-" not in (requests[0].worker or "")
    assert all("-session-" in (r.worker or "") for r in requests[1:])
    assert [m["messages"][-1]["content"] for m in model.requests] == list(QUESTIONS)
    said = capsys.readouterr().err
    assert said.count("warning: ") == 1, said
    assert ("warning: the LLM worker serving the queue stopped (none announced itself for "
            "5 s): hal answers this conversation's requests itself from now on") in said


@pytest.mark.slow
def test_a_question_the_killed_worker_was_answering_is_answered_by_the_session_once(
        tmp_path: Path, queue_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Its lease runs out, and the session, serving its own requests by then, takes it: the
    model is asked again, and the question is answered once."""
    # the worker's answer to the second question never comes: it is killed first
    with ScriptedModel([say("answer to is nginx ok?"), delay(600, say("never"))],
                       then=_answer) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                            llm={"backend": "openai", "url": model.url, "model": "scripted"},
                            queue={"url": queue_url, "wait_timeout": WAIT,
                                   "lease_seconds": LEASE})
        queue = open_queue(settings)
        worker = worker_process(tmp_path, settings)
        try:
            poll_until(lambda: queue.live_workers() == 1 or worker.poll() is not None, 60,
                       "the worker to serve the queue")
            assert worker.poll() is None, (tmp_path / "worker.stderr").read_text()

            async def conversation() -> tuple[list[str], list[str]]:
                answers: list[str] = []
                async with llm_session(settings, Priority.INTERACTIVE) as llm:
                    for question in QUESTIONS[:2]:
                        result = await llm([Message("user", question)], [])
                        answers.append(result.message.content)
                    return llm.request_ids, answers

            async def killed_mid_answer() -> tuple[list[str], list[str]]:
                talk = asyncio.create_task(conversation())
                await until(lambda: len(model.requests) >= 2 or talk.done(), 60,
                            "the worker to ask the model the second question")
                assert not talk.done(), talk
                worker.kill()
                return await talk

            with shown("ask"):
                ids, answers = asyncio.run(asyncio.wait_for(killed_mid_answer(), WAIT))
        finally:
            if worker.poll() is None:
                worker.kill()
            worker.wait(30)
        first, second = [queue.get(request_id) for request_id in ids]
        queue.close()
    assert answers == [f"answer to {question}" for question in QUESTIONS[:2]]
    assert (first.state, first.attempts) == ("done", 1)
    # taken again once the dead worker's lease ran out, by the session, and answered once
    assert (second.state, second.attempts, second.result is not None) == ("done", 2, True)
    assert "-session-" in (second.worker or "")
    assert [m["messages"][-1]["content"] for m in model.requests] == [
        QUESTIONS[0], QUESTIONS[1], QUESTIONS[1]]
    assert capsys.readouterr().err.count("warning: the LLM worker serving the queue stopped") == 1
