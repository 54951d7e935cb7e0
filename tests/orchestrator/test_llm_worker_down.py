"""With ``queue.embedded_worker = false`` a separate worker (its own unit) takes the daemon's
LLM requests from the queue. One that is stopped or dead leaves every investigation's request
unanswered, and its incidents wait: a person is told once, when no worker has taken a request
for ``notify.llm_down_after_seconds`` (the queue says none serves it), and once more when one
takes them again; a restart in the middle says it no second time (a worker that is only busy
is no dead worker: tests/queue/test_client_waits.py).
The daemon's real investigator, retry loop and delivery loops, the real queue (SQLite and a
real redis-server) with no worker, then a worker with the real handler; a scripted model over
HTTP; Gotify's stand-in receiving what a person reads."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin import logs
from ai_sysadmin.config import Settings
from ai_sysadmin.llm.handlers import build_handler
from ai_sysadmin.llm.queue import RequestQueue, describe_queue, open_queue
from ai_sysadmin.store import Database, IncidentStore
from ai_sysadmin.store.outbox import Outbox
from tests.conftest import BIN
from tests.notify.conftest import TOKEN, secret_file
from tests.notify.servers import GotifyServer
from tests.orchestrator.investigating import Daemon, failed_unit
from tests.queue.conftest import redis_server, redis_url  # noqa: F401 - fixtures
from tests.support.polling import until
from tests.support.scripted_model import ScriptedModel, say

NOTHING = say("DIAGNOSIS: nginx.service failed; no idea why.")
#: how long the daemon waits for one answer, and how long no worker may take one
WAIT, DOWN_AFTER = 0.3, 1.0


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return "sqlite://"  # state_dir/queue.db, as installed
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
def gotify() -> Iterator[GotifyServer]:
    with GotifyServer(TOKEN) as server:
        yield server


def _settings(tmp_path: Path, model: ScriptedModel, gotify: GotifyServer,
              queue_url: str) -> Settings:
    return Settings(ai_name="hal", state_dir=tmp_path,
                    gotify_url=gotify.url,
                    gotify_token_file=secret_file(tmp_path / "gotify.token", TOKEN),
                    agent={"max_investigations": 3, "retry_backoff_seconds": 0.001},
                    notify={"llm_down_after_seconds": DOWN_AFTER},
                    queue={"url": queue_url, "embedded_worker": False, "wait_timeout": WAIT},
                    llm={"backend": "ollama", "url": model.url, "model": "scripted"})


@contextlib.asynccontextmanager
async def worker(settings: Settings) -> AsyncIterator[RequestQueue]:
    """What ``ai-sysadmin worker`` runs: the real handler on its own connection to the
    queue, for the block."""
    queue = open_queue(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(queue.serve(build_handler(settings), concurrency=1,
                                           worker_name="web0-4242", stop=stop))
    try:
        yield queue
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        queue.close()


def _worker_said(gotify: GotifyServer) -> list[dict[str, Any]]:
    return [m for m in gotify.accepted if "worker" in str(m.get("title"))]


def _failures(store: IncidentStore) -> list[tuple[float, str]]:
    return sorted((e.at, e.detail) for i in store.incidents()
                  for e in store.get(i.id, history=None).events
                  if e.kind == "investigation_failed")


def test_a_person_is_told_once_when_no_worker_takes_requests_and_once_when_one_does(
        tmp_path: Path, gotify: GotifyServer, queue_url: str) -> None:
    with ScriptedModel(then=lambda _request: NOTHING) as model:
        settings = _settings(tmp_path, model, gotify, queue_url)
        store = IncidentStore(Database(settings.db_path))
        store.record_check("web1", [failed_unit("nginx.service"), failed_unit("php-fpm.service")],
                           {"failed_unit"})

        async def steps() -> None:
            (down,) = await until(lambda: _worker_said(gotify))
            # no worker for longer still, each incident failing twice more: nothing more
            failed = len(_failures(store))
            await until(lambda: len(_failures(store)) >= failed + 4)
            assert _worker_said(gotify) == [down]
            assert model.requests == []  # nobody served the queue: not the daemon either
            async with worker(settings):
                await until(lambda: len(_worker_said(gotify)) == 2)
                await until(lambda: all(i.diagnosis for i in store.incidents()))

        asyncio.run(Daemon(settings, store, queued=True).run(steps))
    down, back = _worker_said(gotify)
    assert down["title"] == "[hal] hal: no LLM worker takes requests: 2 incident(s) wait"
    assert down["priority"] == 8
    body = down["message"]
    assert f"LLM requests wait in the queue {describe_queue(settings)}, but no worker has " \
        "taken one since " in body
    assert "none serves the queue" in body
    assert "systemctl status hal-llm-worker.service (`ai-sysadmin worker`)" in body
    assert body.endswith("Next: hal-queue")
    # the LLM server was never asked, so nothing is said of it
    assert not [m for m in gotify.accepted if "the LLM does not answer" in m["title"]]
    with store.db.transaction() as conn:
        (event,) = [e for e in Outbox.events(conn, ("sent",)) if e.kind == "worker_down"]
    # since the first request no worker took was queued, and not told before the threshold
    first_at, first_error = _failures(store)[0]
    assert first_error.startswith("NoWorker: no answer to LLM request ")
    assert "no worker serves the queue" in first_error
    assert first_at - WAIT - 0.5 <= event.facts["since"] <= first_at - WAIT + 0.5
    assert event.facts["since"] <= event.at - DOWN_AFTER
    assert back["title"] == "[hal] hal: an LLM worker takes requests again"
    assert back["priority"] == 2
    assert "takes LLM requests from the queue" in back["message"]
    assert "Next: hal-issues list" in back["message"]
    assert len(_worker_said(gotify)) == 2


def test_a_restart_while_no_worker_runs_says_it_no_second_time(
        tmp_path: Path, gotify: GotifyServer) -> None:
    with ScriptedModel(then=lambda _request: NOTHING) as model:
        settings = _settings(tmp_path, model, gotify, "sqlite://")
        store = IncidentStore(Database(settings.db_path))
        store.record_check("web1", [failed_unit("nginx.service")], {"failed_unit"})

        async def until_told() -> None:
            # and recorded as delivered: a send cut off by the stop is sent again, by design
            await until(lambda: _worker_said(gotify)
                         and not Outbox(store.db).deliveries(("pending",)))

        asyncio.run(Daemon(settings, store, queued=True).run(until_told))

        async def still_none_then_one() -> None:
            # the new daemon sees no worker for longer than the threshold itself
            started = time.time()
            await until(lambda: _failures(store)[-1][0] > started + DOWN_AFTER + WAIT)
            async with worker(settings):
                await until(lambda: len(_worker_said(gotify)) == 2)
                await until(lambda: store.incidents()[0].diagnosis)

        asyncio.run(Daemon(settings, store, queued=True).run(still_none_then_one))
    assert [m["title"] for m in _worker_said(gotify)] == [
        "[hal] hal: no LLM worker takes requests: 1 incident(s) wait",
        "[hal] hal: an LLM worker takes requests again"]


def _no_worker_logged(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The daemon's log of investigations no worker took: (the whole explanation, at warning;
    the short lines)."""
    failed = [r for r in logs.read(settings.log_dir, "decisions", 100_000)
              if r.get("event") == "investigation_failed"
              and "no worker serves the queue" in r["msg"]]
    whole = [r for r in failed if "none announced itself" in r["msg"]]
    return whole, [r for r in failed if r not in whole]


def test_the_daemons_log_explains_no_worker_once_an_outage_then_says_it_briefly(
        tmp_path: Path, gotify: GotifyServer) -> None:
    # two incidents retried while no worker runs: the paragraph that says what to look at
    # once, each later failure in a line, and once more in the next outage
    with ScriptedModel(then=lambda _request: NOTHING) as model:
        settings = _settings(tmp_path, model, gotify, "sqlite://")
        logs.configure(settings.log_dir, "hal")
        store = IncidentStore(Database(settings.db_path))
        store.record_check("web1", [failed_unit("nginx.service"), failed_unit("php-fpm.service")],
                           {"failed_unit"})

        async def steps() -> None:
            await until(lambda: len(_failures(store)) >= 8 and _worker_said(gotify))
            async with worker(settings):
                await until(lambda: len(_worker_said(gotify)) == 2)
            # the worker is gone, and two more units fail: the next outage is explained anew
            store.record_check("web1", [failed_unit(f"{name}.service") for name in
                                        ("nginx", "php-fpm", "redis", "mysql")],
                               {"failed_unit"})
            before = sum(map(len, _no_worker_logged(settings)))
            await until(lambda: sum(map(len, _no_worker_logged(settings))) >= before + 3)

        asyncio.run(Daemon(settings, store, queued=True).run(steps))
    whole, short = _no_worker_logged(settings)
    assert len(whole) == 2 and {r["level"] for r in whole} == {"warning"}
    assert "is `ai-sysadmin worker`, the *-llm-worker unit, running?" in whole[0]["msg"]
    assert len(short) >= 6 and {r["level"] for r in short} == {"info"}
    for r in short:
        assert re.fullmatch(r"investigation of incident \d+ failed: no worker serves the queue,"
                            r" since \d\d:\d\d:\d\d; retry in \d+ s", r["msg"]), r["msg"]


QUESTION = "is nginx ok?"


def _asked(request: dict[str, Any]) -> bool:
    """Whether a chat request the model got is the `ask`'s (not an investigation's)."""
    return any(QUESTION in str(m.get("content")) for m in request.get("messages", []))


async def _run(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """The real program in a child process, this event loop (the daemon's) going on."""
    proc = await asyncio.create_subprocess_exec(
        str(BIN), *argv, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, stdout.decode(), stderr.decode()


def test_an_ask_while_no_worker_runs_answers_itself_and_leaves_the_daemons_requests(
        tmp_path: Path, gotify: GotifyServer, queue_url: str) -> None:
    """`ask` with no worker answers its own question in its own process; the daemon's
    investigations are the worker's, which is down: `ask` takes none of them, is counted as
    no worker, and the person is not told that a worker takes requests again."""
    release = threading.Event()

    def model_answer(request: dict[str, Any]) -> Any:
        if not _asked(request):
            return NOTHING
        release.wait(60)  # held while the test looks at the queue
        return say("nginx is fine, says hal")

    with ScriptedModel(then=model_answer) as model:
        settings = _settings(tmp_path, model, gotify, queue_url)
        store = IncidentStore(Database(settings.db_path))
        store.record_check("web1", [failed_unit("nginx.service"), failed_unit("php-fpm.service")],
                           {"failed_unit"})
        config = tmp_path / "cli.toml"
        config.write_text('ai_name = "hal"\n')
        env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config),
               "AI_SYSADMIN_STATE_DIR": str(tmp_path), "AI_SYSADMIN_QUEUE__URL": queue_url,
               "AI_SYSADMIN_LLM__URL": model.url, "AI_SYSADMIN_LLM__BACKEND": "ollama",
               "AI_SYSADMIN_LLM__MODEL": "scripted",
               # a slot free while the question is answered, as between an ask's turns
               "AI_SYSADMIN_QUEUE__CONCURRENCY": "2"}
        queue = open_queue(settings)
        seen: dict[str, Any] = {}

        async def look_while_asking() -> None:
            await until(lambda: any(map(_asked, model.requests)), what="the question")
            # the daemon's investigations go on meanwhile: queued, and left there
            failed = len(_failures(store))
            await until(lambda: len(_failures(store)) >= failed + 2
                        or any(i.diagnosis for i in store.incidents()),
                        what="two investigations to end while the ask is answered")
            seen["failed"] = [detail for _, detail in _failures(store)[failed:]]
            seen["workers"] = queue.live_workers()
            seen["in_flight"] = [r.worker for r in queue.stats().in_flight_requests]
            _, shown, _ = await _run(["queue", "--json"], env)
            seen["queue"] = json.loads(shown)
            release.set()

        async def steps() -> None:
            (down,) = await until(lambda: _worker_said(gotify))
            looking = asyncio.create_task(look_while_asking())
            try:
                seen["ask"] = await _run(["ask", QUESTION], env)
                await looking
            finally:
                release.set()
            # the daemon's requests still find no worker: each incident fails on
            failed = len(_failures(store))
            await until(lambda: len(_failures(store)) >= failed + 2)
            # and until then it delivered anything it had to say
            await until(lambda: not Outbox(store.db).deliveries(("pending",)))
            assert _worker_said(gotify) == [down]

        try:
            asyncio.run(Daemon(settings, store, queued=True).run(steps))
        finally:
            queue.close()
    code, stdout, stderr = seen["ask"]
    assert code == 0, stderr
    assert "nginx is fine, says hal" in stdout
    # the ask's own worker was at work, and counted as none
    assert seen["workers"] == 0
    assert len(seen["in_flight"]) == 1 and "-session-" in seen["in_flight"][0]
    assert seen["queue"]["workers"] == 0
    # the daemon's log and incidents say why they wait: no worker, not a slow LLM
    assert seen["failed"] and all(d.startswith("NoWorker: ") for d in seen["failed"])
    assert [m["title"] for m in _worker_said(gotify)] == [
        "[hal] hal: no LLM worker takes requests: 2 incident(s) wait"]
    # the model answered the ask alone; no incident got a diagnosis
    assert model.requests and all(map(_asked, model.requests))
    assert not [i.id for i in store.incidents() if i.diagnosis]


def test_a_request_its_worker_dies_on_every_time_goes_to_a_person(tmp_path: Path) -> None:
    # the conversation runs the worker out of memory: each time it takes the request it is
    # killed, the lease runs out, and the queue gives up after its attempts. That failure was
    # no unusable answer nor an outage: retried for ever, and nobody was told
    settings = Settings(ai_name="hal", state_dir=tmp_path,
                        agent={"max_investigations": 3, "retry_backoff_seconds": 0.001},
                        queue={"embedded_worker": False, "lease_seconds": 1},
                        llm={"backend": "ollama", "url": "http://127.0.0.1:9", "model": "m"})
    store = IncidentStore(Database(settings.db_path))
    (incident_id,) = store.record_check("web1", [failed_unit("nginx.service")],
                                        {"failed_unit"}).opened
    stop = threading.Event()

    def killed_on_each() -> None:
        queue = open_queue(settings)
        try:
            while not stop.is_set():
                if queue.claim("oom-killed") is None:  # taken, never answered: it died
                    stop.wait(0.02)
        finally:
            queue.close()

    def escalated() -> list[str]:
        return [e.detail for e in store.get(incident_id, history=None).events
                if e.kind == "escalated"]

    async def steps() -> None:
        await until(escalated, timeout=60, what="the incident escalated to a person")

    dying = threading.Thread(target=killed_on_each, daemon=True)
    dying.start()
    try:
        asyncio.run(Daemon(settings, store, queued=True).run(steps))
    finally:
        stop.set()
        dying.join(10)
    (said,) = escalated()
    assert "unusable 3 time(s) in a row" in said, said
    assert re.search(r"gave up after \d+ attempt\(s\): the worker serving it stopped or lost "
                     r"its lease each time \(last: oom-killed\)", said), said
    incident = store.get(incident_id)
    assert incident.state == "open" and incident.diagnosis is None  # never healthy


def test_a_request_cancelled_while_no_worker_runs_says_no_worker_is_back(
        tmp_path: Path, gotify: GotifyServer) -> None:
    """`systems remove` cancels the queued requests of the host's incidents: that ends their
    wait with no answer, which the daemon took for an answer (an unusable one), and it told a
    person that a worker took requests again, none running."""
    with ScriptedModel(then=lambda _request: NOTHING) as model:
        settings = _settings(tmp_path, model, gotify, "sqlite://")
        store = IncidentStore(Database(settings.db_path))
        store.record_check("web1", [failed_unit("nginx.service")], {"failed_unit"})
        (incident,) = store.incidents()

        async def steps() -> None:
            (down,) = await until(lambda: _worker_said(gotify))
            queue = open_queue(settings)
            try:
                # its next request, cancelled as it waits (each waits WAIT for a worker)
                await until(lambda: queue.cancel_keyed(f"incident:{incident.id}") > 0)
                await until(lambda: any("cancelled" in detail for _, detail in _failures(store)))
                # and the next one that no worker takes: the outage goes on, said once
                failed = len(_failures(store))
                await until(lambda: len(_failures(store)) >= failed + 1)
            finally:
                queue.close()

        asyncio.run(Daemon(settings, store, queued=True).run(steps))
    (down,) = _worker_said(gotify)
    assert down["title"].startswith("[hal] hal: no LLM worker takes requests")
    with store.db.transaction() as conn:  # nothing of the kind on its way either
        assert [e.kind for e in Outbox.events(conn, ("new", "sent", "repeat", "storm"))
                if e.kind in ("worker_back", "llm_back")] == []
    (said,) = [detail for _, detail in _failures(store) if "cancelled" in detail]
    assert said.startswith("RequestCancelled: LLM request "), said
