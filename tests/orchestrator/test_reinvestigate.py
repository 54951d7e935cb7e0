"""An incident that comes back while its investigation (and the fix it proposed) is still
running is investigated again as soon as that ends: the news never waits for nobody."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.context import KnowledgeRecall
from ai_sysadmin.llm.backends import make_backend
from ai_sysadmin.llm.client import DirectLLM
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.investigator import DAY_SECONDS, Investigator
from ai_sysadmin.store import Database, IncidentStore
from tests.support.investigations import sweep_until
from tests.support.polling import TIMEOUT
from tests.support.scripted_model import ScriptedModel, call, delay, say

FAILED = Finding("web1", "failed_unit", "nginx.service", Severity.CRITICAL,
                 "nginx.service has failed", ("nginx.service: active=failed",))


def comes_back(settings: Settings, store: IncidentStore, incident_id: int, times: int) -> None:
    """The incident resolved and reopened ``times`` times, an investigation asked for after
    each, each waited for."""
    async def go() -> None:
        investigator = Investigator(
            settings, store, {}, lambda _: DirectLLM(make_backend(settings.llm)),
            knowledge=KnowledgeRecall(settings))
        for _ in range(times):
            assert store.record_check("web1", [], {"failed_unit"}).resolved
            assert store.record_check("web1", [FAILED], {"failed_unit"}).reopened
            investigator.schedule(incident_id)
            await asyncio.wait_for(asyncio.shield(investigator.running[incident_id]), TIMEOUT)
        await investigator.close()

    asyncio.run(go())


def test_an_incident_reopened_during_its_fix_is_investigated_again(tmp_path: Path) -> None:
    script = [
        call("propose_action", kind="restart_unit", parameters={"unit": "nginx.service"},
             rationale="it failed once"),
        say("DIAGNOSIS: nginx.service failed.\nPROPOSALS: restart_unit"),
        say("DIAGNOSIS: nginx.service failed again after its restart."),
    ]
    with ScriptedModel(script) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path, agent={"max_investigations": 5},
                            llm={"backend": "openai", "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened
        scheduled_during_fix: list[bool] = []

        async def go() -> None:
            investigator: Investigator

            async def fix_then_it_fails_again(iid: int, host: str, proposals) -> None:
                # the fix ran and held, then the unit failed again: the daemon's next check
                # reopens the incident and asks for an investigation while this one runs
                store.transition(iid, "resolved", "executor", "verified")
                reopened = store.record_check("web1", [FAILED], {"failed_unit"}).reopened
                assert reopened == [iid]
                scheduled_during_fix.append(investigator.schedule(iid))

            investigator = Investigator(
                settings, store, {}, lambda _: DirectLLM(make_backend(settings.llm)),
                on_proposals=fix_then_it_fails_again, knowledge=KnowledgeRecall(settings))
            assert investigator.schedule(incident_id)
            deadline = time.monotonic() + TIMEOUT
            while len(model.requests) < 3 or any(
                    not t.done() for t in investigator.running.values()):
                assert time.monotonic() < deadline, f"{len(model.requests)} requests"
                await asyncio.sleep(0.05)
            await investigator.close()

        asyncio.run(go())
    assert scheduled_during_fix == [False]  # it was still running then
    incident = store.get(incident_id)
    assert incident.diagnosis is not None
    assert incident.diagnosis.startswith("DIAGNOSIS: nginx.service failed again")


def test_the_sweeps_seeing_a_scheduled_investigation_do_not_start_a_second_one(
        tmp_path: Path) -> None:
    """The daemon sweeps untriaged and due incidents right as it starts, while the
    investigations it scheduled have not yet marked their incidents; seeing that same incident
    must not queue a second run, which would skip the retry backoff (and, with a one-answer
    model, overwrite the diagnosis with nothing)."""
    script = [say("DIAGNOSIS: nginx.service failed.")]
    with ScriptedModel(script) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path, agent={"max_investigations": 5},
                            llm={"backend": "openai", "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened

        async def go() -> list[int]:
            investigator = Investigator(
                settings, store, {"web1": object()},  # type: ignore[dict-item]
                lambda _: DirectLLM(make_backend(settings.llm)),
                knowledge=KnowledgeRecall(settings))
            assert investigator.pick_up(store.untriaged()) == [incident_id]
            # the sweep, before the scheduled run has started: still untriaged, still open
            picked = investigator.pick_up(store.untriaged())
            first = investigator.running[incident_id]
            await asyncio.wait_for(asyncio.shield(first), TIMEOUT)
            for _ in range(20):  # let a wrongly queued second run start, if there were one
                await asyncio.sleep(0)
            second = investigator.running.get(incident_id, first) is not first
            await investigator.close()
            return [*picked, *([incident_id] if second else [])]

        assert asyncio.run(go()) == []
    assert len(model.requests) == 1
    incident = store.get(incident_id)
    assert incident.state == "open"
    assert incident.diagnosis == "DIAGNOSIS: nginx.service failed."
    assert incident.investigation_attempts == 1


def test_what_a_failed_investigation_proposed_is_never_decided_beside_the_retry(
        tmp_path: Path) -> None:
    from tests.support.scripted_model import http_error

    script = [call("propose_action", kind="restart_unit", parameters={"unit": "nginx.service"},
                   rationale="it failed"),
              http_error(500, '{"error":"server overloaded"}'),  # the LLM dies mid-run
              call("propose_action", kind="restart_unit", parameters={"unit": "nginx.service"},
                   rationale="it failed"),
              say("DIAGNOSIS: nginx.service failed.")]
    decided: list[list[int]] = []
    with ScriptedModel(script) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path,
                            llm={"backend": "ollama", "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened

        async def on_proposals(iid: int, host: str, proposals) -> None:
            decided.append([p["id"] for p in proposals])

        async def go() -> None:
            investigator = Investigator(
                settings, store, {}, lambda _: DirectLLM(make_backend(settings.llm)),
                on_proposals=on_proposals, knowledge=KnowledgeRecall(settings))
            for _ in range(2):  # the failed run, then its retry
                investigator.schedule(incident_id, again=False)
                await asyncio.wait_for(asyncio.shield(investigator.running[incident_id]), TIMEOUT)
            await investigator.close()

        asyncio.run(go())
    first, second = store.proposals(incident_id)
    assert first["state"] == "abandoned" and second["state"] == "proposed"
    assert decided == [[second["id"]]]
    assert "investigation_failed" in [e.kind for e in store.get(incident_id).events]


def test_a_failing_store_never_ends_the_retry_loop(tmp_path: Path, monkeypatch) -> None:
    settings = Settings(ai_name="hal", state_dir=tmp_path)
    store = IncidentStore(Database(settings.db_path))
    (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened
    investigator = Investigator(settings, store, {"web1": object()},  # type: ignore[dict-item]
                                lambda _: None,  # type: ignore[arg-type,return-value]
                                knowledge=KnowledgeRecall(settings))
    picked: list[int] = []
    calls = {"n": 0}
    due = store.investigation_due

    def due_once_broken():  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            import sqlite3
            raise sqlite3.OperationalError("database is locked")
        return due()

    monkeypatch.setattr(store, "investigation_due", due_once_broken)
    monkeypatch.setattr(investigator, "pick_up", lambda untriaged: picked.extend(
        i.id for i in untriaged) or [])

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(investigator.retry_loop(stop, every=0.05))
        deadline = time.monotonic() + 10
        while not picked:
            assert not loop.done(), loop.exception()
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(loop, 5)

    asyncio.run(go())
    assert calls["n"] >= 2 and picked[0] == incident_id


class StoreThatFailsOnce(IncidentStore):
    """The database fails the first time a failed investigation is recorded (locked past its
    timeout, a full disk): the failure's own handling fails."""

    failed = False

    def record_investigation(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        if not self.failed and args[2] is not None:
            self.failed = True
            import sqlite3
            raise sqlite3.OperationalError("database is locked")
        super().record_investigation(*args, **kwargs)


def test_an_investigation_that_escapes_its_own_handling_is_logged_and_not_left_stuck(
        tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    from tests.support.scripted_model import http_error

    script = [http_error(500, '{"error":"server overloaded"}')]
    with ScriptedModel(script) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path,
                            llm={"backend": "ollama", "url": model.url, "model": "scripted"})
        store = StoreThatFailsOnce(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened

        async def go() -> bool:
            investigator = Investigator(
                settings, store, {}, lambda _: DirectLLM(make_backend(settings.llm)),
                knowledge=KnowledgeRecall(settings))
            investigator.schedule(incident_id, again=False)
            task = investigator.running[incident_id]
            await asyncio.wait({task}, timeout=TIMEOUT)
            for _ in range(5):  # its done-callback runs on the next turns of the loop
                await asyncio.sleep(0)
            kept = incident_id in investigator.running
            await investigator.close()
            return kept

        with caplog.at_level("ERROR", logger="ai_sysadmin.decisions"):
            assert asyncio.run(go()) is False
    assert store.failed
    [record] = [r for r in caplog.records if "ended by OperationalError" in r.getMessage()]
    assert record.exc_info is not None
    incident = store.get(incident_id)
    assert incident.state == "open"  # the retry sweep picks it up again
    assert "OperationalError: database is locked" in (incident.investigation_error or "")
    assert [i.id for i in store.investigation_due(time.time() + 3600)] == [incident_id]


def test_an_incident_that_keeps_coming_back_is_investigated_so_often_a_day_then_waits(
        tmp_path: Path) -> None:
    # a disk at its threshold: resolved, reopened, resolved... every check
    script = [say(f"DIAGNOSIS: nginx.service failed (round {n}).") for n in range(3)]
    with ScriptedModel(script) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path,
                            agent={"max_investigations_per_day": 2, "max_investigations": 9},
                            llm={"backend": "ollama", "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened

        comes_back(settings, store, incident_id, 4)
    assert len(model.requests) == 2  # two investigations, then none
    incident = store.get(incident_id)
    assert incident.state == "reopened"
    said = [e for e in incident.events if e.kind == "escalated"]
    assert len(said) == 1 and "investigated 2 times in 24 hours" in said[0].detail
    # no more today; once the older of the two is a day old, it is due again
    assert store.investigation_due(time.time() + 3600) == []
    assert [i.id for i in store.investigation_due(time.time() + DAY_SECONDS + 60)] == [
        incident_id]


def test_an_llm_that_is_down_does_not_count_as_investigations(tmp_path: Path) -> None:
    """Every retry fails while the LLM is down: the incident is retried (paced by the
    backoff) and never told to wait for a person as one that "keeps coming back"; once the
    LLM answers, it is investigated."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once the socket is closed
    down = Settings(ai_name="hal", state_dir=tmp_path,
                    agent={"max_investigations_per_day": 2, "retry_backoff_seconds": 0.001},
                    llm={"backend": "ollama", "url": f"http://127.0.0.1:{port}", "model": "m"})
    store = IncidentStore(Database(down.db_path))
    (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened

    def failures() -> int:
        return sum(e.kind == "investigation_failed" for e in store.get(incident_id).events)

    asyncio.run(sweep_until(down, store, incident_id, lambda: failures() >= 5))
    incident = store.get(incident_id)
    assert not [e for e in incident.events if e.kind == "escalated"]
    assert "LLMUnavailable" in (incident.investigation_error or "")
    assert [i.id for i in store.investigation_due(time.time() + 3600)] == [incident_id]
    with ScriptedModel([say("DIAGNOSIS: nginx.service failed.")]) as model:
        up = down.model_copy(update={"llm": down.llm.model_copy(update={"url": model.url})})
        asyncio.run(sweep_until(up, store, incident_id,
                                lambda: store.get(incident_id).diagnosis is not None))
    assert store.get(incident_id).diagnosis == "DIAGNOSIS: nginx.service failed."


def test_an_incident_reopened_after_a_long_outage_is_investigated_at_once(
        tmp_path: Path) -> None:
    """Its last episode's investigations failed for hours while the LLM was down, their
    retries paced ever further apart, the last an hour. It went away, and `check` (another
    process) sees it again while the LLM still fails once more: the new episode starts
    afresh, picked up by the daemon's next sweep and retried after the first backoff, not an
    hour later."""
    from ai_sysadmin.orchestrator.investigator import backoff
    from tests.support.scripted_model import http_error

    again = say("DIAGNOSIS: nginx.service failed again.")
    with ScriptedModel([http_error(502, "bad gateway")], then=lambda _request: again) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path,
                            agent={"retry_backoff_seconds": 0.05, "max_investigations": 5},
                            llm={"backend": "ollama", "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened
        # the last episode, as the daemon recorded it: every attempt failed, each retry
        # twice as far off as the one before
        for attempts in range(18):
            store.transition(incident_id, "investigating", "agent", "investigation started")
            store.record_investigation(incident_id, None, "LLMUnavailable: connection refused",
                                       time.time() + backoff(0.05, attempts))
        assert store.investigation_due(time.time() + 3500) == []
        assert [i.id for i in store.investigation_due(time.time() + 3601)] == [incident_id]
        assert store.record_check("web1", [], {"failed_unit"}).resolved == [incident_id]
        reopened = time.time()
        assert store.record_check("web1", [FAILED], {"failed_unit"}).reopened == [incident_id]

        asyncio.run(sweep_until(settings, store, incident_id,
                                lambda: store.get(incident_id).diagnosis is not None))
        assert len(model.requests) == 2
    incident = store.get(incident_id)
    assert incident.diagnosis == again.text
    episode = [e for e in incident.events if e.at >= reopened
               and e.kind in ("investigation_failed", "diagnosis")]
    assert [e.kind for e in episode] == ["investigation_failed", "diagnosis"]
    assert episode[0].detail.startswith("LLMServerError: ")
    # the retry came after the first backoff (0.05 s), not after the last episode's hour
    assert episode[1].at - episode[0].at < 5
    assert incident.investigation_attempts == 2  # counted from the reopening


def test_a_run_cut_off_by_a_stop_leaves_no_proposal_to_decide_beside_the_next(
        tmp_path: Path) -> None:
    """The daemon stops (SIGTERM) after the model proposed a fix and before its answer: the
    restart investigates again and that run proposes afresh, so the cut-off run's proposal is
    abandoned, not decided as well (the fix would run twice)."""
    script = [call("propose_action", kind="restart_unit", parameters={"unit": "nginx.service"},
                   rationale="it failed"),
              delay(3, say("DIAGNOSIS: nginx.service failed."))]
    with ScriptedModel(script) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path,
                            llm={"backend": "ollama", "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened

        async def go() -> None:
            investigator = Investigator(settings, store, {},
                                        lambda _: DirectLLM(make_backend(settings.llm)),
                                        knowledge=KnowledgeRecall(settings))
            investigator.schedule(incident_id)
            deadline = time.monotonic() + TIMEOUT
            while len(model.requests) < 2:  # the proposal is recorded, the answer is coming
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            await investigator.close()  # what the daemon does when it stops

        asyncio.run(go())
    assert [p["state"] for p in store.proposals(incident_id)] == ["abandoned"]
    assert store.undecided_proposals() == []
    assert store.get(incident_id).state == "open"


def test_an_incident_held_for_the_day_is_not_held_for_a_year_when_the_clock_is_set_back(
        tmp_path: Path, monkeypatch) -> None:
    """The clock ran a year ahead while the incident kept coming back and was held for a
    person; NTP sets it right. The hold does not last until the clock catches up: the retry
    sweep takes the incident up again, and it is investigated."""
    script = [say(f"DIAGNOSIS: nginx.service failed (round {n}).") for n in range(3)]
    with ScriptedModel(script) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path,
                            agent={"max_investigations_per_day": 2, "max_investigations": 9},
                            llm={"backend": "ollama", "url": model.url, "model": "scripted"})
        store = IncidentStore(Database(settings.db_path))
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 365 * DAY_SECONDS)
        (incident_id,) = store.record_check("web1", [FAILED], {"failed_unit"}).opened

        comes_back(settings, store, incident_id, 3)
        assert len(model.requests) == 2  # held for a person: "no more investigations today"
        monkeypatch.setattr(time, "time", real)  # set back a year
        assert [i.id for i in store.investigation_due()] == [incident_id]
        asyncio.run(sweep_until(settings, store, incident_id, lambda: len(model.requests) == 3))
    assert store.get(incident_id).diagnosis == "DIAGNOSIS: nginx.service failed (round 2)."
