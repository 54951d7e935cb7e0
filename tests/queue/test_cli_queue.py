"""``queue`` and ``worker`` as a user sees them, and the worker's handler end to end: the queued
client, the SQLite queue, the real handler and backend, a scripted model over HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from ai_sysadmin.cli import queue_cmd
from ai_sysadmin.cli.context import AppState
from ai_sysadmin.config import LLMSettings, QueueSettings, Settings, load_settings
from ai_sysadmin.errors import ConfigError, NotFoundError
from ai_sysadmin.llm.client import QueuedLLM
from ai_sysadmin.llm.handlers import build_handler
from ai_sysadmin.llm.queue import QueueError, Request, RequestQueue, open_queue
from ai_sysadmin.llm.types import Message, Priority
from tests.support.polling import poll_until, until
from tests.support.scripted_model import ScriptedModel, say

from .conftest import WorkerProcess, serving


def root_app() -> typer.Typer:
    """The two commands mounted the way the main app mounts them."""
    root = typer.Typer()

    @root.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = AppState()

    root.add_typer(queue_cmd.app, name="queue")
    root.command("worker")(queue_cmd.worker)
    return root


@pytest.fixture
def env_queue() -> Iterator[RequestQueue]:
    """The queue the CLI opens: the one of the settings from the (test) environment."""
    queue = open_queue(load_settings().settings)
    yield queue
    queue.close()


def invoke(*args: str) -> Any:
    return CliRunner().invoke(root_app(), list(args))


def test_queue_shows_depth_per_priority(env_queue: RequestQueue) -> None:
    env_queue.submit("chat", {}, "batch")
    env_queue.submit("chat", {}, "batch")
    env_queue.submit("chat", {}, "interactive")

    result = invoke("queue", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["pending"] == {"interactive": 1, "autonomous": 0, "batch": 2}
    assert (data["depth"], data["in_flight"]) == (3, 0)
    assert data["backend"].endswith("queue.db")

    human = invoke("queue")
    assert human.exit_code == 0, human.output
    assert "depth 3 · in flight 0" in human.output
    assert "last hour: 0 done, 0 failed" in human.output


def test_queue_counts_the_workers_that_serve_it(
        queue_url: str, worker_process: Callable[..., WorkerProcess],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # requests that wait with no worker: the worker unit is stopped or dead, and `queue` says
    # so to the person told that no worker takes requests
    monkeypatch.setenv("AI_SYSADMIN_QUEUE__URL", queue_url)

    def workers() -> int:
        result = invoke("queue", "--json")
        assert result.exit_code == 0, result.output
        return int(json.loads(result.output)["workers"])

    assert workers() == 0
    assert "workers serving it: 0" in invoke("queue").output
    worker = worker_process("web0-7", 5.0)
    poll_until(lambda: workers() == 1, 30, "the worker to announce itself")
    assert "workers serving it: 1" in invoke("queue").output
    assert worker.stop() == 0
    poll_until(lambda: workers() == 0, 30, "the stopped worker to be gone")


def test_queue_lists_the_last_hours_failed_requests_with_their_ids(
        queue_url: str, make_queue: Callable[..., RequestQueue],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a person told that investigations fail finds the requests, and `queue show` takes the id
    monkeypatch.setenv("AI_SYSADMIN_QUEUE__URL", queue_url)
    queue = make_queue(max_attempts=1)
    done = queue.submit("chat", {}, "batch").request_id
    failing = queue.submit("investigate", {}, "autonomous").request_id

    async def answer(request: Request) -> dict[str, Any]:
        if request.id == failing:
            raise ValueError("the model answered no JSON\n[red]second line[/red]")
        return {"ok": True}

    async def serve() -> None:
        async with serving(queue, answer):
            await until(lambda: queue.get(failing).state == "failed"
                        and queue.get(done).state == "done", 30, "both answered")

    asyncio.run(serve())
    data = json.loads(invoke("queue", "--json").output)
    (failed,) = data["failed_requests"]
    assert (failed["id"], failed["kind"], failed["priority"]) == (
        failing, "investigate", "autonomous")
    assert failed["error"].startswith("ValueError: the model answered no JSON")
    human = invoke("queue")
    assert human.exit_code == 0, human.output
    assert "failed in the last hour" in human.output and failing in human.output
    assert "ValueError: the model answered no JSON" in human.output
    assert "second line" not in human.output  # the first line; `queue show` has the rest
    assert "failed" in invoke("queue", "show", failing).output


def test_queue_show_tells_one_request(env_queue: RequestQueue) -> None:
    env_queue.submit("chat", {}, "interactive")
    request_id = env_queue.submit("chat", {}, "autonomous", coalesce_key="incident-3").request_id

    result = invoke("queue", "show", request_id)
    assert result.exit_code == 0, result.output
    assert "pending (1 ahead)" in result.output
    assert "incident-3" in result.output
    data = json.loads(invoke("queue", "show", request_id, "--json").output)
    assert (data["id"], data["state"], data["priority"], data["ahead"]) == (
        request_id, "pending", "autonomous", 1)

    missing = invoke("queue", "show", "q-nope")
    assert isinstance(missing.exception, NotFoundError)


def _field(output: str, name: str) -> str:
    (line,) = [line for line in output.splitlines() if line.strip().startswith(f"{name}:")]
    return line.split(":", 1)[1].strip()


def test_queue_show_tells_how_long_a_request_waited_and_what_it_answered(
        env_queue: RequestQueue) -> None:
    """A request cancelled while it waited showed a wait that went on growing after it ended,
    and one answered showed no answer, though the help promises it."""
    cancelled = env_queue.submit("chat", {}, "interactive").request_id
    env_queue.cancel(cancelled)
    answered = env_queue.submit("chat", {}, "interactive").request_id

    async def answer(request: Request) -> dict[str, Any]:
        return {"message": {"role": "assistant", "content": "nginx lost its config"}}

    async def serve() -> None:
        async with serving(env_queue, answer):
            await until(lambda: env_queue.get(answered).state == "done", 30, "answered")

    asyncio.run(serve())
    # submitted an hour ago, cancelled half an hour later
    with env_queue.db.transaction() as conn:  # type: ignore[attr-defined]
        conn.execute("UPDATE requests SET created_at=created_at-3600, "
                     "finished_at=created_at-1800 WHERE id=?", (cancelled,))
    shown = invoke("queue", "show", cancelled).output
    assert _field(shown, "state") == "cancelled" and _field(shown, "waited") == "30.0 min"
    shown = invoke("queue", "show", answered).output
    assert _field(shown, "answer") == "nginx lost its config", shown


def test_waits_read_no_less_than_nothing_after_the_clock_is_set_back(
        env_queue: RequestQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests submitted while the clock ran an hour ahead, then set back (NTP at boot, a VM
    resumed): `queue` and `queue show` said they had waited "-3600000 ms"."""
    ahead = [3600.0]
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + ahead[0])
    waiting = env_queue.submit("chat", {}, "batch").request_id
    answered = env_queue.submit("chat", {}, "interactive").request_id
    ahead[0] = 0.0  # set back
    claim = env_queue.claim("worker")
    assert claim is not None and claim.request.id == answered
    assert env_queue.complete(claim, {"message": {"role": "assistant", "content": "ok"}})

    data = json.loads(invoke("queue", "--json").output)
    assert data["oldest_pending_age"] >= 0 and data["mean_wait_last_hour"] >= 0
    human = invoke("queue").output
    assert "oldest pending waits 0 ms" in human and "mean wait 0 ms" in human, human
    for request_id in (waiting, answered):
        assert _field(invoke("queue", "show", request_id).output, "waited") == "0 ms"


def test_worker_command_parses_its_options() -> None:
    result = invoke("worker", "--help")
    assert result.exit_code == 0, result.output
    assert "--concurrency" in result.output and "--name" in result.output


def test_an_unknown_queue_url_is_refused_loudly(tmp_path: Path) -> None:
    # a URL that cannot work is refused when the settings load, naming queue.url
    for url, words in (("amqp://host/", "must be 'sqlite://'"),
                       ("sqlite://queue.db", "absolute path"),
                       ("redis://127.0.0.1:99999/0", "port is not 1-65535"),
                       ("redis://u:hunter2@[::1/0", "does not parse")):
        with pytest.raises(ConfigError, match=words) as refused:
            load_settings(environ={"AI_SYSADMIN_QUEUE__URL": url})
        assert "queue.url" in str(refused.value) and "hunter2" not in str(refused.value)
    settings = Settings(ai_name="hal", state_dir=tmp_path,
                        queue=QueueSettings(url="redis://127.0.0.1:1/0"))
    with pytest.raises(QueueError, match="cannot reach the queue"):
        open_queue(settings)


def test_serve_queue_answers_with_the_factorys_handler(tmp_path: Path) -> None:
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state")
    built: list[Settings] = []

    def factory(given: Settings) -> Any:
        built.append(given)

        async def handle(request: Request) -> dict[str, Any]:
            return {"echo": request.payload}

        return handle

    async def run() -> Request:
        queue = open_queue(settings)
        request_id = queue.submit("chat", {"x": 1}, "interactive").request_id
        stop = asyncio.Event()
        serving = asyncio.create_task(
            queue_cmd.serve_queue(settings, factory, worker_name="cli-worker", stop=stop))
        try:
            return await queue.wait(request_id, 10)
        finally:
            stop.set()
            await asyncio.wait_for(serving, 10)
            queue.close()

    answered = asyncio.run(run())
    assert built == [settings]
    assert (answered.result, answered.worker) == ({"echo": {"x": 1}}, "cli-worker")


def test_a_chat_goes_through_the_queue_to_the_model_and_back(tmp_path: Path) -> None:
    with ScriptedModel([say("the disk is full")]) as model:
        settings = Settings(
            ai_name="hal", state_dir=tmp_path / "state",
            llm=LLMSettings(url=model.url, model="scripted", timeout=10),
        )

        async def run() -> str:
            queue = open_queue(settings)
            stop = asyncio.Event()
            serving = asyncio.create_task(
                queue_cmd.serve_queue(settings, build_handler, worker_name="w", stop=stop))
            try:
                llm = QueuedLLM(queue, Priority.INTERACTIVE, timeout=10)
                result = await llm([Message("user", "why is / full?")], [])
                return result.message.content
            finally:
                stop.set()
                await asyncio.wait_for(serving, 10)
                queue.close()

        assert asyncio.run(run()) == "the disk is full"
        assert model.requests[0]["messages"][-1]["content"] == "why is / full?"
