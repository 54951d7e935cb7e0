"""An LLM server that does not answer is waited out, and incidents stay open; with autonomy on,
a person relies on the daemon to act, so they are told: once when investigations have failed
for ``notify.llm_down_after_seconds`` while incidents wait, once more when it answers again.
The daemon's real retry loop and delivery loops, a scripted model over HTTP, Gotify's
stand-in receiving what a person reads."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.notify.message import render
from ai_sysadmin.orchestrator import investigator
from ai_sysadmin.store import Database, IncidentStore
from ai_sysadmin.store.outbox import EVENT_STATES, Outbox
from tests.notify.conftest import TOKEN, secret_file
from tests.notify.servers import GotifyServer
from tests.orchestrator.investigating import Daemon, failed_unit
from tests.support.polling import until
from tests.support.scripted_model import ScriptedModel, delay, http_error, say

NOTHING = say("DIAGNOSIS: nginx.service failed; no idea why.")
PASSWORD, KEY = "Hunter2-llm", "Key-5e1f9"


def _settings(tmp_path: Path, model: ScriptedModel, gotify: GotifyServer,
              down_after: float) -> Settings:
    # a proxy's password and key in the URL: a message shows neither
    url = model.url.replace("http://", f"http://llm:{PASSWORD}@") + f"/?key={KEY}"
    return Settings(ai_name="hal", state_dir=tmp_path,
                    gotify_url=gotify.url,
                    gotify_token_file=secret_file(tmp_path / "gotify.token", TOKEN),
                    agent={"max_investigations": 3, "retry_backoff_seconds": 0.001},
                    notify={"llm_down_after_seconds": down_after},
                    llm={"backend": "ollama", "url": url, "model": "scripted"})


def _llm_said(gotify: GotifyServer) -> list[dict[str, Any]]:
    return [m for m in gotify.accepted if "the LLM" in str(m.get("title"))]


def _failures(store: IncidentStore) -> list[float]:
    return sorted(e.at for i in store.incidents() for e in store.get(i.id, history=None).events
                  if e.kind == "investigation_failed")


def test_a_person_is_told_once_when_the_llm_does_not_answer_and_once_when_it_is_back(
        tmp_path: Path) -> None:
    up = threading.Event()
    with GotifyServer(TOKEN) as gotify, ScriptedModel(
            then=lambda _request: NOTHING if up.is_set() else http_error(502, "bad gateway")
    ) as model:
        settings = _settings(tmp_path, model, gotify, down_after=0.5)
        store = IncidentStore(Database(settings.db_path))
        store.record_check("web1", [failed_unit("nginx.service"), failed_unit("php-fpm.service")],
                           {"failed_unit"})

        async def steps() -> None:
            (down,) = await until(lambda: _llm_said(gotify))
            # down for longer still, each incident failing twice more: nothing more is said
            failed = len(model.requests)
            await until(lambda: len(model.requests) >= failed + 4)
            assert _llm_said(gotify) == [down]
            up.set()
            await until(lambda: len(_llm_said(gotify)) == 2)
            # both answered again and again (then escalated: no proposal), no third message
            await until(lambda: all(i.diagnosis for i in store.incidents()))

        asyncio.run(Daemon(settings, store).run(steps))
    down, back = _llm_said(gotify)
    assert down["title"] == "[hal] hal: the LLM does not answer: 2 incident(s) wait"
    assert down["priority"] == 8
    body = down["message"]
    assert f"The LLM at http://llm:****@127.0.0.1:{model.url.rsplit(':', 1)[1]}/?key=****" \
        " has not answered investigations since " in body
    assert "Last error: LLMServerError: " in body and "502" in body
    assert body.endswith("Next: ai-sysadmin llm status")
    assert PASSWORD not in str(gotify.accepted) and KEY not in str(gotify.accepted)
    with store.db.transaction() as conn:
        (event,) = [e for e in Outbox.events(conn, ("sent",)) if e.kind == "llm_down"]
    # not before the threshold: half a second of failures since the first
    assert _failures(store)[0] <= event.facts["since"] <= event.at - 0.5
    assert back["title"] == "[hal] hal: the LLM answers again" and back["priority"] == 2
    assert "answers again" in back["message"] and "Next: hal-issues list" in back["message"]
    assert len(_llm_said(gotify)) == 2


def test_a_short_outage_or_a_slow_answer_tells_nobody(tmp_path: Path) -> None:
    # a proxy's 502 twice, then an answer that takes twice the threshold: slow, not down.
    # The threshold is well over one retry (a whole investigation: a second on a busy
    # machine), or the two 502s were an outage that long
    down_after = 2.5
    with GotifyServer(TOKEN) as gotify, ScriptedModel(
            [http_error(502, "bad gateway"), http_error(502, "bad gateway"),
             delay(2 * down_after, NOTHING)], then=lambda _request: NOTHING) as model:
        settings = _settings(tmp_path, model, gotify, down_after)
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [failed_unit("nginx.service")],
                                            {"failed_unit"}).opened

        async def steps() -> None:
            # three answers without a proposal: escalated, a message a person gets
            await until(lambda: any("needs a person" in t for t in gotify.titles()))

        asyncio.run(Daemon(settings, store).run(steps))
        assert len(model.requests) == 5
    assert len(_failures(store)) == 2
    assert _llm_said(gotify) == []
    with store.db.transaction() as conn:
        assert [e.kind for e in Outbox.events(conn, EVENT_STATES)
                if e.kind.startswith("llm")] == []
    assert store.get(incident_id).diagnosis == NOTHING.text


def test_a_restart_in_an_outage_says_it_no_second_time_and_the_next_daemon_says_it_is_back(
        tmp_path: Path) -> None:
    up = threading.Event()
    with GotifyServer(TOKEN) as gotify, ScriptedModel(
            then=lambda _request: NOTHING if up.is_set() else http_error(502, "bad gateway")
    ) as model:
        settings = _settings(tmp_path, model, gotify, down_after=0.3)
        store = IncidentStore(Database(settings.db_path))
        store.record_check("web1", [failed_unit("nginx.service")], {"failed_unit"})

        async def until_told() -> None:
            # and recorded as delivered: a send cut off by the stop is sent again, by design
            await until(lambda: _llm_said(gotify)
                         and not Outbox(store.db).deliveries(("pending",)))

        asyncio.run(Daemon(settings, store).run(until_told))

        async def down_then_up() -> None:
            # the new daemon sees the outage for longer than the threshold itself
            started = time.time()
            await until(lambda: _failures(store)[-1] > started + 0.6)
            up.set()
            await until(lambda: len(_llm_said(gotify)) == 2)
            await until(lambda: store.incidents()[0].diagnosis)

        asyncio.run(Daemon(settings, store).run(down_then_up))
    assert [m["title"] for m in _llm_said(gotify)] == [
        "[hal] hal: the LLM does not answer: 1 incident(s) wait",
        "[hal] hal: the LLM answers again"]


def test_an_investigation_a_stop_cuts_off_as_it_starts_is_investigated_by_the_next_daemon(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the stop comes while its "investigating" is written (a busy machine's slow write): the
    # write lands, the run is gone; the next daemon's start takes it up again
    writing, stopping = threading.Event(), threading.Event()
    transition = IncidentStore.transition

    def slow_start(self: IncidentStore, incident_id: int, new: str, *args: Any) -> Any:
        if new == "investigating" and not stopping.is_set():
            writing.set()
            stopping.wait(10)
        return transition(self, incident_id, new, *args)

    close = investigator.Investigator.close

    async def stop_in_the_write(self: investigator.Investigator) -> None:
        for task in self.running.values():
            task.cancel()  # cut off while the write waits, then the write lands
        stopping.set()
        await close(self)

    monkeypatch.setattr(IncidentStore, "transition", slow_start)
    monkeypatch.setattr(investigator.Investigator, "close", stop_in_the_write)
    with GotifyServer(TOKEN) as gotify, ScriptedModel(then=lambda _request: NOTHING) as model:
        settings = _settings(tmp_path, model, gotify, down_after=60)
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [failed_unit("nginx.service")],
                                            {"failed_unit"}).opened

        async def until_writing() -> None:
            await until(writing.is_set)

        asyncio.run(Daemon(settings, store).run(until_writing))
        assert store.get(incident_id).state == "investigating" and model.requests == []

        async def until_diagnosed() -> None:
            await until(lambda: store.get(incident_id).diagnosis)

        asyncio.run(Daemon(settings, store).run(until_diagnosed))
    assert store.get(incident_id).diagnosis == NOTHING.text


def test_what_was_said_of_the_llm_outlives_pruning_and_reads_without_an_incident(
        tmp_path: Path) -> None:
    # a month's outage: pruning keeps its "down", or its "back" would never be said
    store = IncidentStore(Database(tmp_path / "state.db"))
    store.record_check("web1", [failed_unit("nginx.service")], {"failed_unit"})
    (incident,) = store.incidents()
    store.record_investigation(incident.id, None, "LLMUnavailable: connection refused",
                               time.time() + 60)
    facts = {"host": "hal", "since": time.time() - 3600, "url": "http://127.0.0.1:11434",
             "error": "LLMUnavailable: connection refused\nNext: forged"}
    assert store.tell_llm_down(facts, {"LLMUnavailable"})
    assert store.tell_llm_down(facts, {"LLMUnavailable"})  # said already: once an outage
    outbox = Outbox(store.db)
    with store.db.transaction() as conn:
        (down,) = [e for e in Outbox.events(conn, ("new",)) if e.kind == "llm_down"]
        Outbox.mark(conn, [down.id], "sent")
    message = render(down, "hal")
    assert message.title == "[hal] hal: the LLM does not answer: 1 incident(s) wait"
    # the server's error is one line: it cannot forge a command of its own
    assert [line for line in message.body.splitlines() if line.startswith("Next:")] == [
        "Next: ai-sysadmin llm status"]
    assert "(for 60 min)" in message.body
    outbox.prune(time.time() + 1)
    assert store.tell_back({"host": "hal", "url": "http://127.0.0.1:11434"})
    with store.db.transaction() as conn:
        (back,) = [e for e in Outbox.events(conn, ("new",)) if e.kind.startswith("llm")]
    assert back.kind == "llm_back" and back.facts["since"] == facts["since"]
    assert not store.tell_back({"host": "hal", "url": "http://127.0.0.1:11434"})


def _mentions(model: ScriptedModel, unit: str) -> int:
    return sum(unit in str(request) for request in model.requests)


def _retry_at(store: IncidentStore, incident_id: int) -> float:
    (at,) = store.db.conn.execute("SELECT next_investigation_at FROM incidents WHERE id=?",
                                  (incident_id,)).fetchone()
    return float(at)


def test_the_incidents_that_waited_are_investigated_when_it_answers_again_not_at_their_retry(
        tmp_path: Path) -> None:
    # the message says "the incidents that waited are investigated now": with an hour's
    # backoff (a long outage's), they were only at their next retry, an hour on
    up = threading.Event()
    with GotifyServer(TOKEN) as gotify, ScriptedModel(
            then=lambda _request: NOTHING if up.is_set() else http_error(502, "bad gateway")
    ) as model:
        settings = _settings(tmp_path, model, gotify, down_after=1e-6)
        settings.agent.retry_backoff_seconds = 3600
        store = IncidentStore(Database(settings.db_path))
        findings = [Finding("web1", "failed_unit", "nginx.service", Severity.CRITICAL,
                            "nginx.service has failed", ("nginx.service: active=failed",)),
                    *(failed_unit(unit) for unit in ("mailer.service", "php-fpm.service",
                                                      "cron.service"))]
        waiting, mailer, spent, held = store.record_check("web1", findings,
                                                          {"failed_unit"}).opened
        # held back for reasons of their own: its retries spent, a day's hold
        store.record_no_fix(spent, "no idea", retry_at=None)
        now = time.time()
        store.hold_for_person(held, "investigated 12 times in 24 hours", now - 86400,
                              now + 3600)

        async def steps() -> None:
            await until(lambda: _llm_said(gotify))  # both waited, and failed: told
            assert _retry_at(store, waiting) > time.time() + 3000
            up.set()
            # a new incident is investigated at once: the LLM answers again
            store.record_check("web1", [*findings, failed_unit("redis.service")],
                               {"failed_unit"})
            await until(lambda: len(_llm_said(gotify)) == 2)
            await until(lambda: store.get(waiting).diagnosis and store.get(mailer).diagnosis,
                        timeout=30, what="the incidents that waited, investigated")

        asyncio.run(Daemon(settings, store).run(steps))
    assert _llm_said(gotify)[1]["title"] == "[hal] hal: the LLM answers again"
    assert store.get(waiting).diagnosis == NOTHING.text
    # not those held back for another reason
    assert _mentions(model, "php-fpm.service") == _mentions(model, "cron.service") == 0
    assert _retry_at(store, held) > time.time() + 3000


def _tags(model: ScriptedModel) -> int:
    return sum(1 for hit in model.hits if hit.path.split("?")[0] == "/api/tags")


def test_a_server_back_after_a_long_outage_is_found_by_its_probe_not_at_the_hours_retry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A long outage's backoff is an hour: the incidents that waited for the LLM, and the
    person told it was down, waited up to an hour after it answered again. While they wait,
    the server is asked every agent.retry_backoff_seconds whether it lists the model; what
    waited is sent once it does, not at each probe (a listed model is no answer), and again
    after PROBE_RESEND_SECONDS while it lists the model and cannot chat yet (loading it)."""
    up = threading.Event()
    with GotifyServer(TOKEN) as gotify, ScriptedModel(
            then=lambda _request: NOTHING if up.is_set() else http_error(502, "bad gateway")
    ) as model:
        settings = _settings(tmp_path, model, gotify, down_after=1e-6)
        settings.agent.retry_backoff_seconds = 0.2  # the probe's period
        store = IncidentStore(Database(settings.db_path))
        (waiting,) = store.record_check("web1", [failed_unit("nginx.service")],
                                        {"failed_unit"}).opened
        for _ in range(15):  # as a long outage left it: its retry an hour away
            store.record_investigation(waiting, None, "LLMServerError: 502 bad gateway",
                                       time.time() + 3600)
        model.listing_error = http_error(502, "bad gateway")

        async def steps() -> None:
            await until(lambda: _tags(model) >= 3, what="probes of a server that is down")
            assert model.requests == []  # nothing sent while it answers no probe
            # it lists the model, and chats fail still: what waited is sent once
            model.listing_error = None
            await until(lambda: model.requests, what="the waiting incident sent")
            probes = _tags(model)
            await until(lambda: _tags(model) >= probes + 4, what="more probes")
            assert len(model.requests) == 1
            assert _retry_at(store, waiting) > time.time() + 3000
            # its log says what was seen: a list of models, no answer yet
            (sent,) = [r.getMessage() for r in caplog.records
                       if getattr(r, "event", "") == "waiting_rescheduled"]
            assert "lists its model again (a probe, no chat yet): 1 incident" in sent, sent
            # listing it still, chats failing: sent again once the resend period is over
            monkeypatch.setattr(investigator, "PROBE_RESEND_SECONDS", 1.0)
            await until(lambda: len(model.requests) == 2, what="the incident sent again")
            monkeypatch.setattr(investigator, "PROBE_RESEND_SECONDS", 300.0)
            # told by the second failure (the first can come within the microsecond of
            # notify.llm_down_after_seconds this test sets)
            await until(lambda: _llm_said(gotify), what="the outage told")
            # down, then up for real: found by the probe, and a person told
            model.listing_error = http_error(502, "bad gateway")
            probes = _tags(model)
            await until(lambda: _tags(model) >= probes + 2, what="a probe finding it down")
            model.listing_error = None
            up.set()
            await until(lambda: store.get(waiting).diagnosis, timeout=30,
                        what="the incident that waited, investigated")
            await until(lambda: len(_llm_said(gotify)) == 2, what="its return told")

        with caplog.at_level("INFO", logger="ai_sysadmin"):
            asyncio.run(Daemon(settings, store).run(steps))
    assert store.get(waiting).diagnosis == NOTHING.text
    assert len(model.requests) == 3
    down, back = _llm_said(gotify)
    assert "does not answer" in down["title"] and back["title"] == \
        "[hal] hal: the LLM answers again"


def test_the_outage_probe_takes_the_word_of_the_queues_workers_on_the_llm_they_serve(
        tmp_path: Path) -> None:
    """Workers on another machine reach a server this machine may not (or this machine's
    llm.url names another one): where they say whether theirs is ready, the probe of an
    outage takes their word; where none says, it asks llm.url itself."""
    from dataclasses import replace

    from ai_sysadmin.knowledge.context import KnowledgeRecall
    from ai_sysadmin.llm.queue.sqlite import SqliteQueue
    from ai_sysadmin.llm.readiness import Served

    with ScriptedModel([]) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path,
                            llm={"backend": "ollama", "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        probe = investigator.Investigator(settings, store, {}, lambda _: None,  # type: ignore[arg-type]
                                          knowledge=KnowledgeRecall(settings))
        queue = SqliteQueue(tmp_path / "queue.db")
        probe.workers_say = queue.workers_say
        lists_here = asyncio.run(probe._lists_model())
        told_here = asyncio.run(probe._facts_of(probe._llm))["url"]
        down = Served("ollama", "http://gpu1:11434", "scripted", False, "no answer", time.time(),
                      listed=False)
        queue.announce("gpu1-77", True, down.text())
        theirs_down = asyncio.run(probe._lists_model())
        told_theirs = asyncio.run(probe._facts_of(probe._llm))["url"]
    # their server lists the model: chats failing still (ready False) are no matter here
    queue.announce("gpu1-77", True, replace(down, listed=True).text())
    theirs_up = asyncio.run(probe._lists_model())  # this machine's server gone meanwhile
    queue.announce("gpu1-77", False)
    gone = asyncio.run(probe._lists_model())
    queue.close()
    assert (lists_here, theirs_down, theirs_up, gone) == (True, False, True, False)
    # the outage a person is told of names the server the workers serve
    assert (told_here, told_theirs) == (model.url, "http://gpu1:11434")


@pytest.mark.parametrize(("lasted", "said"), [(23, "(for 23 s)"), (59, "(for 59 s)"),
                                              (61, "(for 1 min)"), (3600, "(for 60 min)")])
def test_an_outage_told_says_how_long_it_lasted_in_seconds_under_a_minute(
        tmp_path: Path, lasted: float, said: str) -> None:
    # notify.llm_down_after_seconds may be under a minute: "for 0 min" said nothing
    store = IncidentStore(Database(tmp_path / "state.db"))
    store.record_check("web1", [failed_unit("nginx.service")], {"failed_unit"})
    (incident,) = store.incidents()
    store.record_investigation(incident.id, None, "LLMUnavailable: connection refused",
                               time.time() + 60)
    assert store.tell_llm_down({"host": "hal", "since": time.time() - lasted,
                                "url": "http://127.0.0.1:11434", "error": "refused"},
                               {"LLMUnavailable"})
    with store.db.transaction() as conn:
        (down,) = [e for e in Outbox.events(conn, ("new",)) if e.kind == "llm_down"]
    assert said in render(down, "hal").body
