"""A host that cannot be reached cannot be investigated through it: the model's tools all run
on it. Its ``host_unreachable`` incident pages a person once and is never sent to the model
(no LLM calls spent, no second page "needs a person ... retries spent"); an investigation
whose host went down under it spends none of the incident's tries. The daemon's real retry
and delivery loops, a scripted model over HTTP, Gotify's stand-in."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from ai_sysadmin.config import Settings
from ai_sysadmin.store import Database, IncidentStore
from tests.notify.conftest import TOKEN, secret_file, unreachable
from tests.notify.servers import GotifyServer
from tests.orchestrator.investigating import Daemon, failed_unit
from tests.support.polling import until
from tests.support.scripted_model import ScriptedModel, say

NOTHING = say("DIAGNOSIS: nothing to propose.")
DOWN, UP = ([unreachable("web1")], {"host_unreachable"}), ([], {"host_unreachable"})


def _settings(tmp_path: Path, model: ScriptedModel, gotify: GotifyServer,
              tries: int) -> Settings:
    return Settings(ai_name="hal", state_dir=tmp_path, gotify_url=gotify.url,
                    gotify_token_file=secret_file(tmp_path / "gotify.token", TOKEN),
                    agent={"max_investigations": tries, "retry_backoff_seconds": 0.001},
                    llm={"backend": "ollama", "url": model.url, "model": "scripted"})


def _about(model: ScriptedModel, text: str) -> int:
    return sum(text in str(request) for request in model.requests)


def test_an_unreachable_host_is_paged_once_and_never_sent_to_the_model(
        tmp_path: Path) -> None:
    with GotifyServer(TOKEN) as gotify, ScriptedModel(then=lambda _: NOTHING) as model:
        settings = _settings(tmp_path, model, gotify, tries=3)
        store = IncidentStore(Database(settings.db_path))
        (down,) = store.record_check("web1", *DOWN).opened

        async def steps() -> None:
            await until(lambda: "[hal] web1: unreachable" in gotify.titles())
            store.record_check("web1", *UP)
            await until(lambda: "[hal] web1: reachable again" in gotify.titles())
            # the retry loop runs: an incident of the host reached again is investigated
            (unit,) = store.record_check("web1", [failed_unit("nginx.service")],
                                         {"failed_unit"}).opened
            await until(lambda: store.get(unit).diagnosis)

        asyncio.run(Daemon(settings, store).run(steps))
    assert _about(model, "web1 is unreachable") == 0
    assert not [t for t in gotify.titles() if "needs a person" in t]
    assert store.get(down).state == "resolved" and store.get(down).diagnosis is None


def test_a_host_gone_during_its_investigation_spends_no_try_and_is_waited_for(
        tmp_path: Path) -> None:
    answered = threading.Event()

    def host_goes_down(_request: Any) -> Any:
        # the host stops answering while the model reads it: its tools failed
        if not answered.is_set():
            IncidentStore(Database(settings.db_path)).record_check("web1", *DOWN)
            answered.set()
        return NOTHING

    with GotifyServer(TOKEN) as gotify, ScriptedModel(then=host_goes_down) as model:
        settings = _settings(tmp_path, model, gotify, tries=2)
        store = IncidentStore(Database(settings.db_path))
        (unit,) = store.record_check("web1", [failed_unit("nginx.service")],
                                     {"failed_unit"}).opened

        async def steps() -> None:
            await until(lambda: (store.get(unit).investigation_error or "").startswith(
                "HostUnreachable: web1 could not be reached"), timeout=30)
            assert len(model.requests) == 1  # waits for the host, not retried meanwhile
            store.record_check("web1", *UP)
            await until(lambda: len([e for e in store.get(unit, history=None).events
                                     if e.kind == "diagnosis"]) == 1)

        asyncio.run(Daemon(settings, store).run(steps))
    # one answer of the model's own (the host back) of two tries: not escalated
    events = store.get(unit, history=None).events
    assert [e for e in events if e.kind == "escalated"] == []
    assert not [t for t in gotify.titles() if "needs a person" in t]
    assert len(model.requests) == 2
