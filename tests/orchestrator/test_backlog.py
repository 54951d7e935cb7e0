"""Many incidents at once (the LLM back after an outage, a host back with a dozen failed units)
are investigated at the model's own speed, most severe first: each asks the queue only when
it is served, so none times out waiting behind the others and then waits an outage's backoff
(an hour) while the model sits idle. An incident that moved on while it waited, or between
two turns, costs the model nothing more."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.context import KnowledgeRecall
from ai_sysadmin.llm.backends import make_backend
from ai_sysadmin.llm.client import DirectLLM, QueuedLLM
from ai_sysadmin.llm.handlers import build_handler
from ai_sysadmin.llm.queue import RequestQueue, open_for_service
from ai_sysadmin.llm.types import Message, Priority
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.investigator import Investigator
from ai_sysadmin.store import Database, IncidentStore
from tests.orchestrator.investigating import failed_unit
from tests.support.polling import TIMEOUT, until
from tests.support.scripted_model import ScriptedModel, Step, call, delay, say, tool_results

#: what a person's chat asks, to tell its request from the investigations'
CHAT = "a person's question"


def _settings(tmp_path: Path, model: ScriptedModel, wait_timeout: float,
              backoff: float) -> Settings:
    return Settings(ai_name="hal", state_dir=tmp_path, knowledge={"enabled": False},
                    agent={"retry_backoff_seconds": backoff},
                    queue={"wait_timeout": wait_timeout, "concurrency": 1, "lease_seconds": 2},
                    llm={"backend": "ollama", "url": model.url, "model": "scripted",
                         "timeout": 30})


def _investigator(settings: Settings, store: IncidentStore,
                  queue: RequestQueue) -> Investigator:
    """The daemon's investigator: each incident's requests through the queue, as autonomous
    ones of one coalescing key."""
    return Investigator(
        settings, store, {"web1": object()},  # type: ignore[dict-item]
        lambda iid: QueuedLLM(queue, Priority.AUTONOMOUS, coalesce_key=f"incident:{iid}",
                              timeout=settings.queue.wait_timeout),
        knowledge=KnowledgeRecall(settings), here="hal")


def _failures(store: IncidentStore) -> list[str]:
    return [event.detail for incident in store.incidents(states=None)
            for event in store.get(incident.id, history=None).events
            if event.kind == "investigation_failed"]


def test_a_burst_of_incidents_is_diagnosed_in_turn_without_timing_out_in_the_queue(
        tmp_path: Path) -> None:
    """Each request may wait ``queue.wait_timeout`` (here less than the burst's first turns
    take together): all asked at once, most timed out and waited an hour's backoff."""
    count, first_asked = 12, []

    def answer(request: dict[str, Any]) -> Step:
        subject = re.findall(r"u\d+\.service|db\.service", json.dumps(request["messages"]))[0]
        if subject not in first_asked:
            first_asked.append(subject)
        # the evidence comes as the first tool result: two calls of the model's own, then
        # its diagnosis
        if len(tool_results(request)) < 3:
            return delay(0.3, call("no_such_tool", turn=len(tool_results(request))))
        return delay(0.3, say("DIAGNOSIS: the unit failed."))

    with ScriptedModel(then=answer) as model:
        settings = _settings(tmp_path, model, wait_timeout=2.0, backoff=3600)
        store = IncidentStore(Database(settings.db_path))
        # warnings first, the critical one (a database) opened last
        findings = [failed_unit(f"u{i}.service") for i in range(count - 1)]
        findings.append(Finding("web1", "failed_unit", "db.service", Severity.CRITICAL,
                                "db.service has failed", ("db.service: active=failed",)))
        opened = store.record_check("web1", findings, {"failed_unit"}).opened
        queue = open_for_service(settings, "the tests")

        async def go() -> None:
            stop = asyncio.Event()
            worker = asyncio.create_task(queue.serve(build_handler(settings), concurrency=1,
                                                     worker_name="w", stop=stop))
            investigator = _investigator(settings, store, queue)
            try:
                for incident_id in opened:
                    investigator.schedule(incident_id, again=False)
                # a failure ends the wait: it would wait an hour
                await until(lambda: _failures(store) or all(
                    store.get(i, history=0).diagnosis for i in opened),
                    what="every incident diagnosed")
            finally:
                await investigator.close()
                stop.set()
                await worker
                queue.close()

        asyncio.run(go())
    assert _failures(store) == []
    assert all(store.get(i).diagnosis for i in opened)
    assert len(model.requests) == 3 * count  # one run each: none asked again
    # the first to come may be asked before the critical one is known; then it goes next
    assert "db.service" in first_asked[:2]


def test_a_request_that_timed_out_behind_a_persons_is_asked_again_at_the_next_answer(
        tmp_path: Path) -> None:
    """A person's chat goes first and held the model longer than ``queue.wait_timeout``:
    the investigation waiting behind it was retried at a backoff the LLM's outage before had
    grown to an hour, though nothing failed but the wait."""
    chat_held = threading.Event()

    def answer(request: dict[str, Any]) -> Step:
        if CHAT in json.dumps(request["messages"]):
            assert chat_held.wait(TIMEOUT), "the chat was never let go"
            return say("an answer for the person")
        return say("DIAGNOSIS: the unit failed.")

    with ScriptedModel(then=answer) as model:
        settings = _settings(tmp_path, model, wait_timeout=4.0, backoff=60)
        store = IncidentStore(Database(settings.db_path))
        (first,) = store.record_check("web1", [failed_unit("a.service")],
                                      {"failed_unit"}).opened
        queue = open_for_service(settings, "the tests")

        async def go() -> float:
            stop = asyncio.Event()
            worker = asyncio.create_task(queue.serve(build_handler(settings), concurrency=1,
                                                     worker_name="w", stop=stop))
            investigator = _investigator(settings, store, queue)
            chat = QueuedLLM(queue, Priority.INTERACTIVE, timeout=TIMEOUT)
            try:
                # the model answered since this process started
                investigator.schedule(first)
                await until(lambda: store.get(first, history=0).diagnosis, what="a diagnosis")
                asking = asyncio.create_task(chat([Message("user", CHAT)], []))
                await until(lambda: any(CHAT in json.dumps(r) for r in model.requests),
                            what="the chat's request taken by the worker")
                (behind,) = store.record_check(
                    "web1", [failed_unit("a.service"), failed_unit("b.service")],
                    {"failed_unit"}).opened
                for _ in range(8):  # an outage of some two hours before
                    store.record_investigation(behind, None, "LLMUnavailable: refused",
                                               time.time() + 3000)
                investigator.schedule(behind)
                await until(lambda: (store.get(behind, history=0).investigation_error or "")
                            .startswith("QueueTimeout"), what="the request timed out")
                (retry_at,) = store.db.conn.execute(
                    "SELECT next_investigation_at FROM incidents WHERE id=?", (behind,)
                ).fetchone()
                retry_in = retry_at - time.time()
                # another incident's investigation is answered once the chat is; asked
                # after the chat's answer, where it waits for no request (behind one, on a
                # busy machine, it timed out too, and the model answered no investigation)
                chat_held.set()
                await asyncio.wait_for(asyncio.shield(asking), TIMEOUT)
                (last,) = store.record_check(
                    "web1", [failed_unit(f"{u}.service") for u in "abc"],
                    {"failed_unit"}).opened
                investigator.schedule(last)
                await until(lambda: store.get(behind, history=0).diagnosis,
                            what="the incident that timed out diagnosed")
                return retry_in
            finally:
                chat_held.set()
                await investigator.close()
                stop.set()
                await worker
                queue.close()

        retry_in = asyncio.run(go())
    assert retry_in <= settings.agent.retry_backoff_seconds  # not the outage's hour


def test_an_incident_resolved_between_two_turns_costs_the_model_no_more_turns(
        tmp_path: Path) -> None:
    thinking = threading.Event()

    def first_answer(request: dict[str, Any]) -> Step:
        assert thinking.wait(TIMEOUT), "never let go"
        return call("no_such_tool")

    with ScriptedModel([first_answer], then=say("DIAGNOSIS: it failed.")) as model:
        settings = _settings(tmp_path, model, wait_timeout=60, backoff=60)
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [failed_unit("a.service")],
                                            {"failed_unit"}).opened

        async def go() -> None:
            investigator = Investigator(
                settings, store, {"web1": object()},  # type: ignore[dict-item]
                lambda _: DirectLLM(make_backend(settings.llm)),
                knowledge=KnowledgeRecall(settings), here="hal")
            try:
                investigator.schedule(incident_id)
                await until(lambda: model.requests, what="the model asked")
                # the daemon's next check: the unit is fine again
                assert store.record_check("web1", [], {"failed_unit"}).resolved == [incident_id]
                thinking.set()
                await asyncio.wait_for(asyncio.shield(investigator.running[incident_id]),
                                       TIMEOUT)
            finally:
                thinking.set()
                await investigator.close()

        asyncio.run(go())
    assert len(model.requests) == 1
    incident = store.get(incident_id, history=None)
    assert incident.state == "resolved"
    assert [e for e in incident.events if e.kind == "investigation_failed"] == []


def test_an_incident_resolved_as_its_investigation_starts_is_no_crash(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's next check lands between the investigation's read of the incident and
    its move to investigating (several reads in threads apart): that move is refused, and
    was logged as an investigation that crashed, a bug's traceback at ERROR."""
    settings = Settings(ai_name="hal", state_dir=tmp_path, knowledge={"enabled": False},
                        llm={"backend": "ollama", "url": "http://127.0.0.1:9", "model": "x"})
    store = IncidentStore(Database(settings.db_path))
    (incident_id,) = store.record_check("web1", [failed_unit("nginx.service")],
                                        {"failed_unit"}).opened
    live_of = store.live_of
    resolved: list[int] = []

    def check_lands_meanwhile(host: str, rules: Any) -> int | None:
        resolved.extend(store.record_check("web1", [], {"failed_unit"}).resolved)
        return live_of(host, rules)

    monkeypatch.setattr(store, "live_of", check_lands_meanwhile)

    async def go() -> None:
        investigator = Investigator(
            settings, store, {"web1": object()},  # type: ignore[dict-item]
            lambda _: DirectLLM(make_backend(settings.llm)),
            knowledge=KnowledgeRecall(settings), here="hal")
        investigator.schedule(incident_id)
        await asyncio.gather(*investigator.running.values(), return_exceptions=True)
        await investigator.close()

    with caplog.at_level(logging.INFO, logger="ai_sysadmin"):
        asyncio.run(go())
    assert resolved == [incident_id]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert store.get(incident_id).state == "resolved"
