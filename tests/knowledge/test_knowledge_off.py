"""``knowledge.enabled = false``: a host that does not want ChromaDB gets none. Nothing opens it
or makes its files, investigations go on from the evidence alone without a warning at each,
the model is not offered a search of it (a call anyway is told the base is off), nothing is
learned, and the commands say it is off
in one line (exit 2)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from ai_sysadmin.agent.context import ToolContext
from ai_sysadmin.agent.tools import REGISTRY
from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.knowledge.context import KnowledgeRecall
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.daemon import build_daemon
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import ActionStore, Database, IncidentStore
from tests.knowledge.gitrepo import GitRepo
from tests.support.scripted_model import ScriptedModel, call, offered_tools, say, tool_results

OFF = "the knowledge base is off (knowledge.enabled = false"


def test_the_commands_say_it_is_off_and_make_nothing(
        cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AI_SYSADMIN_KNOWLEDGE__ENABLED", "false")
    for args in (("knowledge", "list"), ("knowledge", "search", "nginx"),
                 ("knowledge", "add", "--topic", "t", "--text", "a note")):
        code, out, err = cli(*args)
        assert code == 2 and out == "", args
        assert err.startswith(f"error: {OFF}") and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "state" / "knowledge").exists()


def test_an_investigation_goes_on_without_it_and_nothing_is_learned(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    script = [call("search_knowledge", query="demo.service fails"),
              say("DIAGNOSIS: demo.service failed.\nEVIDENCE: its status.\nPROPOSALS: none")]
    with ScriptedModel(script) as model:
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                            knowledge={"enabled": False},
                            llm={"backend": "openai", "url": model.url, "model": "scripted",
                                 "timeout": 10},
                            agent={"retry_backoff_seconds": 3600})
        store = IncidentStore(Database(settings.db_path))
        runtime = Runtime(settings, store, [LocalTransport("testhost")])
        finding = Finding("testhost", "failed_unit", "demo.service", Severity.CRITICAL,
                          "demo.service has failed", ("demo.service: active=failed",))
        (incident_id,) = store.record_check("testhost", [finding], {"failed_unit"}).opened
        fix = ActionStore(store.db).create(
            incident_id=incident_id, proposal_id=None, host="testhost",
            kind="restart_unit", params={"unit": "demo.service"}, subject="demo.service",
            risk="low", plan={}, outcome="auto", reason="ran", state="verified")

        async def go() -> None:
            daemon = build_daemon(runtime)
            assert daemon.investigator is not None and daemon.worker is not None
            stop = asyncio.Event()
            worker = asyncio.create_task(daemon.worker(stop))
            warm = asyncio.create_task(daemon.keep_configs())
            try:
                assert daemon.investigator.schedule(incident_id)
                await asyncio.wait_for(daemon.investigator.running[incident_id], 60)
                await runtime.learn(fix)  # what a fix that ran would teach
                await asyncio.wait_for(warm, 2)  # at once: there is no config_repo to keep
            finally:
                stop.set()
                await daemon.investigator.close()
                await asyncio.wait_for(worker, 30)
                await runtime.close()

        with caplog.at_level(logging.INFO, logger="ai_sysadmin"):
            asyncio.run(go())
        searched = tool_results(model.requests[1])
        offered = offered_tools(model.requests[0])
    incident = store.get(incident_id)
    assert incident.diagnosis.startswith("DIAGNOSIS: demo.service failed.")
    assert any(OFF in result for result in searched), searched
    assert "search_knowledge is not available in this conversation" in searched[-1]
    # nothing to search, no config repository: neither is offered; the host's tools are
    assert not offered & {"search_knowledge", "recent_config_changes"}, offered
    assert {"unit_status", "journal"} <= offered, offered
    assert not settings.knowledge_dir.exists()
    events = {getattr(r, "event", None) for r in caplog.records}
    assert not events & {"knowledge_unavailable", "recall_failed", "recall_skipped",
                         "learn_failed", "learned"}, events
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_config_repo_is_fetched_not_indexed_and_its_changes_still_reach_an_investigation(
        tmp_path: Path) -> None:
    upstream = GitRepo(tmp_path / "upstream")
    now = time.time()
    upstream.commit({"nginx.nix": "{ services.nginx.enable = true; }\n"}, "nginx on", now - 60)
    other = GitRepo(tmp_path / "other")
    other.commit({"nginx.nix": "{ }\n"}, "another repository's history", now - 30)
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", config_repo=str(
        upstream.path), knowledge={"enabled": False})
    recall = KnowledgeRecall(settings)
    report = recall.sync_configs()
    assert (report.files, report.indexed, report.chunks) == (1, [], 0)
    assert "nginx on" in recall.changes_text("nginx.service")
    # a daemon started later (another process) reads the copy as this repository's
    assert "nginx on" in KnowledgeRecall(settings).changes_text("nginx.service")
    assert not settings.knowledge_dir.exists()
    # config_repo changed, not fetched yet: the copy is the old one's, and says nothing
    switched = settings.model_copy(update={"config_repo": str(other.path)})
    assert KnowledgeRecall(switched).changes_text("nginx.service") == ""


def test_a_model_is_offered_the_config_history_without_a_knowledge_base(tmp_path: Path) -> None:
    upstream = GitRepo(tmp_path / "upstream")
    upstream.commit({"nginx.nix": "{ }\n"}, "nginx", time.time() - 60)
    off = {"knowledge": {"enabled": False}}
    with_repo = Settings(ai_name="hal", state_dir=tmp_path / "a", config_repo=str(upstream.path),
                         **off)
    without = Settings(ai_name="hal", state_dir=tmp_path / "b", **off)
    on = Settings(ai_name="hal", state_dir=tmp_path / "c", config_repo=str(upstream.path))

    def offered(settings: Settings) -> set[str]:
        ctx = ToolContext(settings, {}, "web1", knowledge=KnowledgeRecall(settings))
        return set(REGISTRY.offered(ctx)) & {"search_knowledge", "recent_config_changes"}

    assert offered(with_repo) == {"recent_config_changes"}
    assert offered(without) == set()
    assert offered(on) == {"search_knowledge", "recent_config_changes"}
    assert not on.knowledge_dir.exists()  # asking what is offered opens nothing
