"""A model answer with a lone UTF-16 surrogate (JSON ``"\\ud800"``: a broken emoji, a model's
byte-level glitch) is read as U+FFFD: text that UTF-8 can hold, so the conversation goes on
(the next request carries it back) and every store, log and terminal can write it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ai_sysadmin.config import LLMSettings
from ai_sysadmin.llm.backends import ChatBackend
from ai_sysadmin.llm.types import ChatResult, Message, ToolSpec
from tests.support.scripted_model import ScriptedModel, call, calls, say

Make = Callable[..., LLMSettings]
Run = Callable[..., Any]

JOURNAL = ToolSpec("read_journal", "Read a unit's journal.",
                   {"type": "object", "properties": {"unit": {"type": "string"}}})
QUESTION = [Message("user", "Why is the disk full?")]


def test_lone_surrogates_in_an_answer_become_replacement_characters(
        llm_settings: Make, with_backend: Run) -> None:
    answer = calls([call("read_journal", unit="nginx\udc80.service")],
                   text="looking at \ud83d nginx")
    with ScriptedModel([answer, say("disk \ud800 full, \ud83d\ude00 fixed")]) as model:
        async def use(backend: ChatBackend) -> tuple[ChatResult, ChatResult]:
            first = await backend.chat(QUESTION, [JOURNAL])
            [asked] = first.message.tool_calls
            again = [*QUESTION, first.message,
                     Message("tool", "no space left", tool_call_id=asked.id, name=asked.name)]
            return first, await backend.chat(again, [JOURNAL])

        first, second = with_backend(llm_settings(model.url), use)
    [asked] = first.message.tool_calls
    assert first.message.content == "looking at \ufffd nginx"
    assert asked.arguments == {"unit": "nginx\ufffd.service"}
    assert second.message.content == "disk \ufffd full, \U0001f600 fixed"  # a pair is kept
    # the conversation went back to the server, readable
    sent = model.requests[1]["messages"][1]
    assert sent["content"] == "looking at \ufffd nginx"
    arguments = sent["tool_calls"][0]["function"]["arguments"]  # a JSON string in OpenAI's
    assert (json.loads(arguments) if isinstance(arguments, str) else arguments) == {
        "unit": "nginx\ufffd.service"}
    for result in (first, second):
        result.message.content.encode("utf-8")
