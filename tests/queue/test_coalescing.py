"""Coalescing joins only requests that ask the same thing: a conversation never receives the
answer to another one's turn, while a request submitted twice is answered once. Against SQLite
and a real redis-server, with the real handler and a scripted model over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.config import LLMSettings, Settings
from ai_sysadmin.llm.client import QueuedLLM
from ai_sysadmin.llm.handlers import build_handler, chat_payload
from ai_sysadmin.llm.queue import Request, RequestQueue
from ai_sysadmin.llm.queue.leases import LeasedQueue
from ai_sysadmin.llm.types import Message, Priority
from tests.support.polling import until
from tests.support.scripted_model import JSON, ScriptedModel, Step, say

from .conftest import serving

MakeQueue = Callable[..., RequestQueue]
KEY = "incident:7"


def echo(request: JSON) -> Step:
    """The model's answer names the last message it was asked about."""
    return say(f"answer to {request['messages'][-1]['content']}")


def conversation(*turns: str) -> list[Message]:
    messages = [Message("system", "you are hal"), Message("user", "nginx.service failed")]
    for turn in turns:
        messages += [Message("assistant", f"looking at {turn}"), Message("user", turn)]
    return messages


def model_settings(model: ScriptedModel, tmp_path: Path) -> Settings:
    return Settings(ai_name="hal", state_dir=tmp_path / "state",
                    llm=LLMSettings(url=model.url, model="scripted", timeout=10))


def test_only_the_same_request_coalesces(make_queue: MakeQueue) -> None:
    queue = make_queue()
    first = queue.submit("chat", {"turn": 1, "of": "a"}, "autonomous", coalesce_key=KEY)
    same = queue.submit("chat", {"of": "a", "turn": 1}, "autonomous", coalesce_key=KEY)
    other_turn = queue.submit("chat", {"turn": 2, "of": "a"}, "autonomous", coalesce_key=KEY)
    other_key = queue.submit("chat", {"turn": 1, "of": "a"}, "autonomous", coalesce_key="k2")
    other_kind = queue.submit("embed", {"turn": 1, "of": "a"}, "autonomous", coalesce_key=KEY)
    no_key = queue.submit("chat", {"turn": 1, "of": "a"}, "autonomous")

    assert same.coalesced and same.request_id == first.request_id
    distinct = {s.request_id for s in (first, other_turn, other_key, other_kind, no_key)}
    assert len(distinct) == 5
    assert not any(s.coalesced for s in (first, other_turn, other_key, other_kind, no_key))
    assert queue.stats().pending["autonomous"] == 5
    assert KEY in (queue.get(first.request_id).coalesce_key or "")

    async def handler(request: Request) -> dict[str, Any]:
        return {}

    async def run() -> None:
        async with serving(queue, handler):
            await queue.wait(first.request_id, 10)

    asyncio.run(run())
    later = queue.submit("chat", {"turn": 1, "of": "a"}, "autonomous", coalesce_key=KEY)
    assert not later.coalesced and later.request_id != first.request_id


@pytest.mark.parametrize("stale_state", ["pending", "in_flight"])
def test_a_stale_turn_never_answers_a_new_conversation(
    make_queue: MakeQueue, tmp_path: Path, stale_state: str
) -> None:
    """A daemon died mid-investigation, leaving its turn queued (or leased by itself); the
    restarted investigation asks its own first question under the same incident key."""
    queue = make_queue()
    assert isinstance(queue, LeasedQueue)
    stale = queue.submit("chat", chat_payload(conversation("journal of nginx"), []),
                         Priority.AUTONOMOUS, coalesce_key=KEY).request_id
    if stale_state == "in_flight":
        claim = queue.claim("dead-daemon")
        assert claim is not None and claim.request.id == stale
    assert queue.get(stale).state == stale_state

    with ScriptedModel([echo] * 4) as model:
        async def run() -> tuple[str, list[str]]:
            async with serving(queue, build_handler(model_settings(model, tmp_path))):
                llm = QueuedLLM(queue, Priority.AUTONOMOUS, coalesce_key=KEY, timeout=10)
                answer = await llm(conversation(), [])
                return answer.message.content, llm.request_ids

        answer, request_ids = asyncio.run(run())

    assert answer == "answer to nginx.service failed"
    assert request_ids != [stale]
    asked = [r["messages"][-1]["content"] for r in model.requests]
    assert "nginx.service failed" in asked
    if stale_state == "pending":  # the stale turn is still answered, with its own answer
        assert queue.get(stale).result is not None
        assert queue.get(stale).result["message"]["content"] == "answer to journal of nginx"


def test_a_request_submitted_twice_is_answered_once(
    make_queue: MakeQueue, tmp_path: Path
) -> None:
    queue = make_queue()
    with ScriptedModel([echo] * 4) as model:
        async def run() -> tuple[list[str], list[str]]:
            calls = [QueuedLLM(queue, Priority.AUTONOMOUS, coalesce_key=KEY, timeout=10)
                     for _ in range(2)]
            # both asked before a worker answers (a remote queue submits from a thread: with
            # a worker already serving, the first could be answered before the second asks)
            asking = [asyncio.create_task(llm(conversation("disk usage"), [])) for llm in calls]
            await until(lambda: all(llm.request_ids for llm in calls), 10,
                        "both callers to submit")
            async with serving(queue, build_handler(model_settings(model, tmp_path))):
                answers = await asyncio.gather(*asking)
            return ([a.message.content for a in answers],
                    [i for llm in calls for i in llm.request_ids])

        answers, request_ids = asyncio.run(run())

    assert answers == ["answer to disk usage"] * 2
    assert len(set(request_ids)) == 1
    assert len(model.requests) == 1
