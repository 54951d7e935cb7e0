"""A model that answers garbage for an incident, again and again, will not do better by
waiting: after ``agent.max_investigations`` unusable answers a person is told, with the reason.
A server that is down (or a proxy's 502 while it is) is waited out, however long, and spends
none of the tries of a model that proposes nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.context import KnowledgeRecall
from ai_sysadmin.llm.backends import make_backend
from ai_sysadmin.llm.client import DirectLLM, QueuedLLM
from ai_sysadmin.llm.queue.base import Request
from ai_sysadmin.llm.queue.sqlite import SqliteQueue
from ai_sysadmin.llm.types import Priority
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.notify.message import render
from ai_sysadmin.orchestrator.investigator import Investigator
from ai_sysadmin.store import Database, IncidentStore
from ai_sysadmin.store.outbox import Outbox
from tests.queue.conftest import serving
from tests.support.investigations import sweep_until
from tests.support.polling import until
from tests.support.scripted_model import (
    ScriptedModel,
    call,
    garbage,
    http_error,
    say,
)

FAILED = Finding("web1", "failed_unit", "nginx.service", Severity.CRITICAL,
                 "nginx.service has failed", ("nginx.service: active=failed",))


def _sweep(settings: Settings, store: IncidentStore, incident_id: int,
           done: Callable[[], bool]) -> None:
    """The daemon's retry loop, until ``done``."""
    asyncio.run(sweep_until(settings, store, incident_id, done))


def _settings(tmp_path: Path, url: str, backoff: float = 0.001,
              backend: str = "ollama") -> Settings:
    return Settings(ai_name="hal", state_dir=tmp_path,
                    agent={"max_investigations": 3, "retry_backoff_seconds": backoff},
                    llm={"backend": backend, "url": url, "model": "scripted"})


def test_a_model_that_answers_garbage_is_escalated_to_a_person_with_the_reason(
        tmp_path: Path) -> None:
    # two garbage answers, a proxy's 502 while the server behind it restarts (an outage: it
    # neither counts nor starts the count again), then garbage for good
    with ScriptedModel([garbage(), garbage(), http_error(502, "bad gateway")],
                       then=lambda _request: garbage()) as model:
        settings = _settings(tmp_path, model.url)
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened

        def escalated() -> list[str]:
            return [e.detail for e in store.get(incident_id, history=None).events
                    if e.kind == "escalated"]

        # long enough for a wrong retry after the escalation to be seen
        _sweep(settings, store, incident_id, lambda: bool(escalated()) or len(model.requests) >= 8)
        asked = len(model.requests)
    assert asked == 4  # three unusable answers and the outage between them, then no more
    (said,) = escalated()
    assert "unusable 3 time(s) in a row" in said and "LLMBadResponse" in said
    incident = store.get(incident_id)
    assert incident.state == "open" and incident.diagnosis is None  # never healthy
    assert store.investigation_due(time.time() + 86400) == []  # a person's now, not a retry's
    with store.db.transaction() as conn:
        told = [e for e in Outbox.events(conn, ("new",)) if e.kind == "escalated"]
    (message,) = [render(e, "hal") for e in told]
    assert message.title == "[hal] web1: needs a person: nginx.service has failed"
    assert "unusable 3 time(s)" in message.body and "not JSON" in message.body


@pytest.mark.parametrize(("backend", "refusal"), [
    ("ollama", http_error(400, '{"error": "registry.ollama.ai/library/scripted:latest does '
                               'not support tools"}')),
    # llama.cpp's llama-server without --jinja, in versions that answer 500: it was waited
    # out as an outage, retried for ever, and no person was told
    ("openai", http_error(500, '{"error": {"code": 500, "message": "tools param requires '
                               '--jinja flag", "type": "server_error"}}')),
])
def test_a_server_that_refuses_the_tools_is_escalated_saying_what_to_set(
        tmp_path: Path, backend: str, refusal: object) -> None:
    """The model never answered: the person read "the model's answer was unusable", and
    nothing of the mode that investigates without tool calls."""
    with ScriptedModel(then=lambda _request: refusal) as model:
        settings = _settings(tmp_path, model.url, backend=backend)
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened
        _sweep(settings, store, incident_id,
               lambda: bool(_escalations(store, incident_id)) or len(model.requests) >= 6)
        asked = len(model.requests)
    assert asked == 3  # agent.max_investigations tries, then a person's
    (said,) = _escalations(store, incident_id)
    assert said.startswith("the LLM server refused to offer tools to model scripted 3 time(s) "
                           "in a row (agent.max_investigations = 3): the model never saw the "
                           "question. Investigate without tool calls with agent.mode = "
                           "\"evidence\""), said
    assert "unusable" not in said and "LLMToolsUnsupported" in said
    incident = store.get(incident_id)
    assert incident.state == "open" and incident.diagnosis is None
    assert store.investigation_due(time.time() + 86400) == []


def test_a_proxy_that_answers_502_while_its_server_is_down_is_waited_out(
        tmp_path: Path) -> None:
    script = [*[http_error(502, "bad gateway")] * 6,
              call("propose_action", kind="restart_unit", parameters={"unit": "nginx.service"},
                   rationale="it failed"),
              say("DIAGNOSIS: nginx.service failed.")]
    with ScriptedModel(script) as model:
        settings = _settings(tmp_path, model.url)
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened
        _sweep(settings, store, incident_id,
               lambda: store.get(incident_id).diagnosis is not None)
    incident = store.get(incident_id, history=None)
    assert not [e for e in incident.events if e.kind == "escalated"]
    assert incident.diagnosis == "DIAGNOSIS: nginx.service failed."
    assert [p["kind"] for p in store.proposals(incident_id)] == ["restart_unit"]


def _escalations(store: IncidentStore, incident_id: int) -> list[str]:
    return [e.detail for e in store.get(incident_id, history=None).events
            if e.kind == "escalated"]


def test_outages_spend_none_of_the_tries_of_a_model_that_proposes_nothing(
        tmp_path: Path) -> None:
    # a proxy's 502 before each answer; the model answers three times, proposing nothing
    # (twice) or garbage (once): only then are the tries spent
    outage = http_error(502, "bad gateway")
    nothing = say("DIAGNOSIS: nginx.service failed; no idea why.")
    with ScriptedModel([outage, outage, nothing, outage, garbage(), outage, outage, nothing],
                       then=lambda _request: nothing) as model:
        settings = _settings(tmp_path, model.url)
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened
        # long enough for a wrong retry after the escalation to be seen
        _sweep(settings, store, incident_id,
               lambda: bool(_escalations(store, incident_id)) or len(model.requests) >= 11)
        asked = len(model.requests)
    assert asked == 8  # five outages waited out, three answers, then a person's
    (said,) = _escalations(store, incident_id)
    assert said == "the investigation ended without a proposal; retries spent: escalated " \
        "to a person"
    incident = store.get(incident_id)
    assert incident.state == "open" and incident.diagnosis == nothing.text
    assert store.investigation_due(time.time() + 86400) == []


def test_answers_without_a_proposal_and_unusable_ones_count_together(tmp_path: Path) -> None:
    """max_investigations = 3: two answers without a proposal, then garbage. An unusable
    answer was counted from the last diagnosis on, so a person was told at the fifth."""
    nothing = say("DIAGNOSIS: unclear.\nPROPOSALS: none")
    with ScriptedModel([nothing, nothing], then=lambda _request: garbage()) as model:
        settings = _settings(tmp_path, model.url)
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened
        _sweep(settings, store, incident_id,
               lambda: bool(_escalations(store, incident_id)) or len(model.requests) >= 7)
        asked = len(model.requests)
    assert asked == 3
    (said,) = _escalations(store, incident_id)
    assert "unusable 3 time(s) in a row" in said, said


def _investigate(settings: Settings, store: IncidentStore, incident_id: int,
                 times: int = 1) -> None:
    """What the daemon does for an incident that changed or reopened: investigate it now,
    ``times`` times one after the other."""

    async def go() -> None:
        investigator = Investigator(settings, store, {"web1": object()},  # type: ignore[dict-item]
                                    lambda _: DirectLLM(make_backend(settings.llm)),
                                    knowledge=KnowledgeRecall(settings))
        for _ in range(times):
            assert investigator.schedule(incident_id, again=False)
            await asyncio.wait_for(asyncio.shield(investigator.running[incident_id]), 30)
        await investigator.close()

    asyncio.run(go())


def _comes_back(store: IncidentStore, incident_id: int, finding: Finding = FAILED) -> None:
    """The finding clears, then the daemon's next check sees it again."""
    assert store.record_check("web1", [], {"failed_unit"}).resolved == [incident_id]
    assert store.record_check("web1", [finding], {"failed_unit"}).reopened == [incident_id]


def test_after_a_reopening_or_an_escalation_the_model_has_its_tries_afresh(
        tmp_path: Path) -> None:
    nothing = say("DIAGNOSIS: nginx.service failed; no idea why.")
    with ScriptedModel(then=lambda _request: nothing) as model:
        settings = _settings(tmp_path, model.url)
        store = IncidentStore(Database(settings.db_path))
        warned = Finding("web1", "failed_unit", "nginx.service", Severity.WARNING,
                         "nginx.service has failed", ("nginx.service: active=failed",))
        (incident_id,) = store.record_check("web1", [warned], {"failed_unit"}).opened
        _investigate(settings, store, incident_id, 2)
        # resolved, then back: a new episode, retried as the first was
        _comes_back(store, incident_id, warned)
        _investigate(settings, store, incident_id)
        assert _escalations(store, incident_id) == []
        assert [i.id for i in store.investigation_due(time.time() + 86400)] == [incident_id]
        _investigate(settings, store, incident_id, 2)
        assert len(_escalations(store, incident_id)) == 1
        # it got worse: a person was told of the last three, the model tries again
        assert store.record_check("web1", [FAILED], {"failed_unit"}).changed == [incident_id]
        _investigate(settings, store, incident_id)
        asked = len(model.requests)
    assert asked == 6
    assert len(_escalations(store, incident_id)) == 1
    incident = store.get(incident_id)
    assert incident.investigation_error == "the investigation ended without a proposal"
    assert [i.id for i in store.investigation_due(time.time() + 86400)] == [incident_id]


def test_unusable_answers_before_a_reopening_are_not_counted_after_it(tmp_path: Path) -> None:
    with ScriptedModel(then=lambda _request: garbage()) as model:
        settings = _settings(tmp_path, model.url)
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened
        _investigate(settings, store, incident_id, 2)
        _comes_back(store, incident_id)
        _investigate(settings, store, incident_id)
        assert _escalations(store, incident_id) == []  # one unusable answer since it came back
        assert [i.id for i in store.investigation_due(time.time() + 86400)] == [incident_id]
        _investigate(settings, store, incident_id, 2)
        asked = len(model.requests)
    assert asked == 5
    (said,) = _escalations(store, incident_id)
    assert "unusable 3 time(s) in a row" in said


def test_an_escalated_incident_that_check_reopens_is_investigated_by_the_daemon(
        tmp_path: Path) -> None:
    nothing = say("DIAGNOSIS: nginx.service failed; no idea why.")
    with ScriptedModel(then=lambda _request: nothing) as model:
        # the retry the new episode plans is not due while the test looks
        settings = _settings(tmp_path, model.url, backoff=3600)
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened
        _investigate(settings, store, incident_id, 3)
        assert len(_escalations(store, incident_id)) == 1
        # `check` sees it clear, then back: the daemon's own checks then see it as known
        assert store.record_check("web1", [], {"failed_unit"}, consumer="check").resolved \
            == [incident_id]
        assert store.record_check("web1", [FAILED], {"failed_unit"}, consumer="check") \
            .reopened == [incident_id]

        def diagnoses() -> int:
            return sum(e.kind == "diagnosis" for e in store.get(incident_id, history=None).events)

        _sweep(settings, store, incident_id, lambda: diagnoses() == 4)
        asked = len(model.requests)
    assert asked == 4
    incident = store.get(incident_id)
    assert (incident.state, incident.diagnosis) == ("open", nothing.text)
    assert len(_escalations(store, incident_id)) == 1  # the new episode's first try
    assert store.investigation_due(time.time() + 600) == []
    assert [i.id for i in store.investigation_due(time.time() + 7200)] == [incident_id]


def test_a_500_to_one_incidents_request_while_the_server_answers_others_goes_to_a_person(
        tmp_path: Path) -> None:
    # the server is up (it answers the other incident) and answers this one's request with
    # 500 every time (its conversation past an older llama.cpp's context): it was waited out
    # as an outage, retried for ever, and no person was told
    postgres = Finding("web1", "failed_unit", "postgresql.service", Severity.CRITICAL,
                       "postgresql.service has failed", ("postgresql.service: active=failed",))

    def answer(request: object) -> object:
        if "Investigate incident #1 " in json.dumps(request):
            return http_error(500, '{"error": "the request exceeds the context size"}')
        return say("DIAGNOSIS: postgresql.service failed; no idea why.")

    with ScriptedModel(then=answer) as model:
        settings = _settings(tmp_path, model.url)
        store = IncidentStore(Database(settings.db_path))
        (nginx,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened
        assert nginx == 1  # the request the server cannot serve: "Investigate incident #1 "
        store.record_check("web1", [FAILED, postgres], {"failed_unit"})
        _sweep(settings, store, nginx, lambda: bool(_escalations(store, nginx)))
    (said,) = _escalations(store, nginx)
    assert "unusable 3 time(s) in a row" in said, said
    assert "answered HTTP 500 " in said and "context size" in said
    assert "it answers other investigations meanwhile: it cannot serve this one" in said
    incident = store.get(nginx)
    assert incident.state == "open" and incident.diagnosis is None  # never healthy
    # (postgresql's investigations go on: one cut off as the sweep stopped is due again)
    assert nginx not in [i.id for i in store.investigation_due(time.time() + 86400)]


def test_a_server_that_answers_500_to_everything_is_waited_out(tmp_path: Path) -> None:
    # down for all (a model that fails to load): an outage, not this request's problem
    script = [*[http_error(500, '{"error": "model failed to load"}')] * 6,
              say("DIAGNOSIS: nginx.service failed.")]
    with ScriptedModel(script) as model:
        settings = _settings(tmp_path, model.url)
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened
        _sweep(settings, store, incident_id,
               lambda: store.get(incident_id).diagnosis is not None)
    assert not _escalations(store, incident_id)


def test_a_failure_that_comes_back_at_every_try_is_escalated_to_a_person(
        tmp_path: Path) -> None:
    """A worker that fails every request of the incident by a bug of its own (what the
    queue hands back as a plain LLM error): no outage to wait out, and no try does better.
    It was retried every hour for good and no person was ever told; now it counts toward
    agent.max_investigations as an unusable answer does, and is said as what it is."""
    settings = _settings(tmp_path, "http://127.0.0.1:9")
    store = IncidentStore(Database(settings.db_path))
    (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened
    queue = SqliteQueue(str(tmp_path / "queue.db"))
    asked: list[str] = []

    async def handler(request: Request) -> dict[str, object]:
        asked.append(request.id)
        raise RuntimeError("the handler's own bug: 'choices'")

    def escalated() -> list[str]:
        return [e.detail for e in store.get(incident_id, history=None).events
                if e.kind == "escalated"]

    async def go() -> None:
        investigator = Investigator(
            settings, store, {"web1": object()},  # type: ignore[dict-item]
            lambda key: QueuedLLM(queue, Priority.AUTONOMOUS, coalesce_key=f"incident:{key}",
                                  timeout=10),
            knowledge=KnowledgeRecall(settings))
        stop = asyncio.Event()
        async with serving(queue, handler):
            sweeping = asyncio.create_task(investigator.retry_loop(stop, every=0.02))
            try:
                await until(lambda: bool(escalated()) or len(asked) >= 6,
                            what="an escalation")
            finally:
                stop.set()
                await sweeping
                await investigator.close()

    try:
        asyncio.run(go())
    finally:
        queue.close()
    assert len(asked) == 3  # then a person's, not a retry's
    (said,) = escalated()
    assert said.startswith("the investigation failed 3 time(s) in a row "
                           "(agent.max_investigations = 3)"), said
    assert "RuntimeError: the handler's own bug" in said
    incident = store.get(incident_id)
    assert incident.state == "open" and incident.diagnosis is None  # never healthy
    assert store.investigation_due(time.time() + 86400) == []
