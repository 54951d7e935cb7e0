"""What a worker says of the LLM it serves (llm/readiness.py): read back safely whatever a
queue holds, and logged by what its probes find, not by every chat."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.llm.readiness import Readiness, Served, heard, listing, ready_or_not
from ai_sysadmin.llm.types import LLMBusy, LLMUnavailable
from tests.support.scripted_model import ScriptedModel

WORD = {"backend": "ollama", "url": "http://gpu1:11434", "model": "m", "ready": True,
        "detail": "", "at": 1000.0, "listed": True}


def test_words_a_queue_holds_are_read_back_only_where_they_are_whole_and_sane() -> None:
    said = {
        "ok": json.dumps(WORD),
        "newer": json.dumps({**WORD, "gpu_memory": "80G"}),  # a later version's field
        "older": json.dumps({k: v for k, v in WORD.items() if k != "listed"}),
        "nan": json.dumps(WORD).replace("1000.0", "NaN"),
        "huge": json.dumps(WORD).replace("1000.0", "1" + "0" * 400),
        "bool-time": json.dumps({**WORD, "at": True}),
        "list": "[1, 2]", "text": '"ready"', "garbage": "{not json",
        "wrong-types": json.dumps({**WORD, "url": 7, "ready": "yes"}),
        "missing": json.dumps({"backend": "ollama"}),
    }
    found = heard(said)
    assert sorted(found) == ["newer", "ok", "older"]
    assert found["older"].listed is None and found["ok"] == Served(**WORD)


def test_one_ready_worker_answers_for_the_queue_and_one_that_listed_the_model_for_probes(
        ) -> None:
    down = Served(**{**WORD, "ready": False, "listed": False, "at": 2000.0})
    up = Served(**WORD)
    fresh = Served(**{**WORD, "ready": None, "listed": None})
    assert ready_or_not({"a": down, "b": up}) == up  # a question gets an answer
    assert ready_or_not({"a": down}) == down
    assert ready_or_not({"c": fresh}) is None  # nobody asked yet: not known
    assert (listing({"a": down, "b": up}), listing({"a": down}), listing({"c": fresh})) == (
        True, False, None)


def test_chats_that_fail_at_a_server_that_lists_its_model_are_told_not_logged_each(
        tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    """A server that lists the model and fails chats: each failure turns the word to not
    ready (a person asking now would wait in vain) until the next probe; the log has the
    probes' word, once, not a line a chat."""
    with ScriptedModel([]) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path,
                            llm={"backend": "ollama", "url": model.url, "model": "scripted"},
                            agent={"retry_backoff_seconds": 0.05})
        log = logging.getLogger("ai_sysadmin.test_readiness")
        readiness = Readiness(settings, log)

        async def run() -> list[bool | None]:
            seen = []
            async with readiness.watching():
                while readiness.now.listed is None:
                    await asyncio.sleep(0.01)
                for _ in range(5):
                    readiness.chat_failed(LLMUnavailable("Ollama at x: lost the connection"))
                    seen.append(readiness.now.ready)
                    readiness.chat_failed(LLMBusy("busy"))  # a busy server: no word of it
                    while not readiness.now.ready:  # its probe finds the model listed
                        await asyncio.sleep(0.01)
                readiness.chat_answered()
                seen.append(readiness.now.ready)
            return seen

        with caplog.at_level(logging.INFO, logger="ai_sysadmin.test_readiness"):
            seen = asyncio.run(asyncio.wait_for(run(), 30))
    assert seen == [False] * 5 + [True]
    said = [r.getMessage() for r in caplog.records if r.name == "ai_sysadmin.test_readiness"]
    assert said == [f"LLM ollama at {model.url}, model scripted: ready"]
    assert json.loads(readiness.says())["listed"] is True


def test_a_workers_word_is_shown_masked_on_one_line_whatever_it_wrote() -> None:
    # another process wrote it: a worker of an older or broken build, a hand in the file
    from ai_sysadmin.cli.workers_word import worker_line

    forged = Served(**{**WORD, "url": "http://admin:hunter2@gpu1:11434",
                       "model": "m\nworker2: ready", "ready": False,
                       "detail": "refused\x1b[2J token=abc123def456", "at": 990.0})
    line = worker_line("gpu1-7", forged, 1000.0)
    assert "\n" not in line and "\x1b" not in line
    assert "hunter2" not in line and "abc123def456" not in line
    assert line.startswith("  gpu1-7: LLM ollama at http://admin:****@gpu1:11434, model m ")
    assert line.endswith("(known 10 s ago)")


def test_a_tiny_backoff_does_not_make_the_worker_probe_a_down_server_in_a_loop(
        tmp_path) -> None:
    """agent.retry_backoff_seconds = 0.001 made the worker probe a server that was down
    back to back, a whole core busy for as long as it was down: probes of a server that is
    not ready are a second apart at least, counted here at a listener that drops each
    connection."""
    import socket
    import threading
    import time

    from ai_sysadmin.llm.readiness import PROBE_AT_MOST_EVERY_SECONDS

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    probes = 0
    done = threading.Event()

    def drop_each() -> None:
        nonlocal probes
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            probes += 1
            conn.close()

    dropper = threading.Thread(target=drop_each, daemon=True)
    dropper.start()
    port = listener.getsockname()[1]
    settings = Settings(ai_name="hal", state_dir=tmp_path,
                        llm={"backend": "ollama", "url": f"http://127.0.0.1:{port}",
                             "model": "m"},
                        agent={"retry_backoff_seconds": 0.001})
    readiness = Readiness(settings, logging.getLogger("ai_sysadmin.test_readiness"))
    window = 3.0

    async def watch_a_while() -> float:
        async with readiness.watching():
            while readiness.now.ready is None:  # the first probe, answered "not ready"
                await asyncio.sleep(0.01)
            started = time.monotonic()
            await asyncio.sleep(window)  # the window the probes are counted over
            return time.monotonic() - started

    try:
        watched = asyncio.run(asyncio.wait_for(watch_a_while(), 30))
    finally:
        done.set()
        dropper.join(5)
        listener.close()
    assert readiness.now.ready is False
    # the first, then one a second at most (two more for the edges of the window)
    assert 1 <= probes <= 1 + watched / PROBE_AT_MOST_EVERY_SECONDS + 2, probes
