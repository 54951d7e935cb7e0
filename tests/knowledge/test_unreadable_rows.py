"""One record this version cannot read (damaged, or written by a newer version) costs that
record, not the knowledge base: list, search, export and recall go on with every good one and
say how many they left out."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import KnowledgeError
from ai_sysadmin.knowledge.context import KnowledgeRecall
from ai_sysadmin.knowledge.embeddings import MiniLMEmbedding
from ai_sysadmin.knowledge.models import ActionTaken, IncidentRecord, KnowledgeEntry
from ai_sysadmin.knowledge.store import KnowledgeBase

Cli = Callable[..., tuple[int, str, str]]


def _record(number: int) -> IncidentRecord:
    return IncidentRecord(
        id=f"incident-{number}-action-{number}", host="web1", rule="failed_unit",
        subject="nginx.service", symptoms="nginx.service failed", diagnosis="port clash",
        actions=[ActionTaken(kind="restart_unit", params={"unit": "nginx.service"})],
        outcome="failed")


def _store_raw(kb: KnowledgeBase) -> None:
    """Rows as a newer version (or a damaged disk) could leave them."""
    good = _record(1)
    kb.record_incident(good)
    kb.add(KnowledgeEntry(id="op-good", topic="nginx port clash", text="stop apache first"))
    # a newer version's record: one field more, every known one valid
    newer = json.loads(good.model_dump_json()) | {"id": "incident-2-action-2",
                                                  "duration": 12.5}
    kb.collection("incidents").upsert(
        ids=[newer["id"]], documents=[good.document()],
        metadatas=[{**good.metadata(), "record": json.dumps(newer)}])
    # damaged: not JSON at all
    kb.collection("incidents").upsert(
        ids=["incident-3-action-3"], documents=[good.document()],
        metadatas=[{**good.metadata(), "record": "{not json"}])
    # a provenance this version does not know: what it may guide is unknown, so unread
    odd = KnowledgeEntry(id="k-new", topic="nginx community note", text="y")
    kb.collection("knowledge").upsert(ids=[odd.id], documents=[odd.document()],
                                      metadatas=[{**odd.metadata(), "provenance": "community"}])


def test_list_search_and_incidents_skip_what_they_cannot_read(
        kb: KnowledgeBase, caplog: pytest.LogCaptureFixture) -> None:
    _store_raw(kb)
    with caplog.at_level(logging.WARNING, logger="ai_sysadmin"):
        assert [e.id for e in kb.list()] == ["op-good"]
        assert [h.item.id for h in kb.search("nginx note", 5)] == ["op-good"]
        assert sorted(r.id for r in kb.incidents()) == ["incident-1-action-1",
                                                        "incident-2-action-2"]
        assert len(kb.similar_incidents("nginx.service failed", 5, max_distance=2.0)) == 2
        kb.list()
    assert sorted(kb.unreadable) == ["incident-3-action-3", "k-new"]
    # said once per record, not at every read
    said = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(said) == 2, said
    with pytest.raises(KnowledgeError, match="k-new.*cannot be read"):
        kb.get("k-new")


def test_export_keeps_every_good_row(kb: KnowledgeBase) -> None:
    _store_raw(kb)
    lines = [json.loads(line) for line in kb.export()]
    assert [(d["type"], d.get("id")) for d in lines] == [
        ("export", None), ("entry", "op-good"), ("incident", "incident-1-action-1"),
        ("incident", "incident-2-action-2")]
    # the unknown field is not carried into a file an older program would refuse
    assert "duration" not in lines[-1]


def test_recall_goes_on_without_the_unreadable(kb: KnowledgeBase,
                                               kb_settings: Settings) -> None:
    _store_raw(kb)
    shown = KnowledgeRecall(kb_settings, kb=kb).search_text("nginx.service failed port clash")
    assert "stop apache first" in shown and "port clash" in shown


def test_the_cli_says_what_it_left_out(cli: Cli, embedder: MiniLMEmbedding, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_SYSADMIN_KNOWLEDGE__SEED", "false")
    code, _, err = cli("knowledge", "add", "--topic", "first", "--text", "one")
    assert code == 0, err
    code, out, err = cli("knowledge", "list", "--json")
    entry = json.loads(out)[0]
    # where the CLI keeps it (tests/conftest.py points AI_SYSADMIN_STATE_DIR there)
    kb = KnowledgeBase.open(Settings(ai_name="hal", state_dir=tmp_path / "state"),
                            embedder=embedder, seed=False)
    odd = KnowledgeEntry(id="k-new", topic="odd", text="y")
    kb.collection("knowledge").upsert(ids=[odd.id], documents=[odd.document()],
                                      metadatas=[{**odd.metadata(), "provenance": "community"}])
    code, out, err = cli("knowledge", "list", "--json")
    assert code == 0 and [e["id"] for e in json.loads(out)] == [entry["id"]]
    assert "1 unreadable" in err and "k-new" in err
    dump = tmp_path / "kb.jsonl"
    code, out, err = cli("knowledge", "export", str(dump))
    assert code == 2 and "k-new" in err and "1 unreadable" in err
    assert [json.loads(line).get("id") for line in dump.read_text().splitlines()] == [
        None, entry["id"]]


def test_an_unreadable_entry_can_be_removed(kb: KnowledgeBase) -> None:
    """The operator told of a record that cannot be read must be able to be rid of it."""
    _store_raw(kb)
    kb.list()
    assert "k-new" in kb.unreadable
    assert kb.remove("k-new") is None
    assert kb.collection("knowledge").get(ids=["k-new"])["ids"] == []
    assert "k-new" not in kb.unreadable
    assert kb.remove("op-good") is not None  # a readable one comes back as it was


@pytest.mark.slow
def test_a_config_chunk_it_cannot_read_costs_that_chunk_not_every_configs_search(
        cli: Cli, embedder: MiniLMEmbedding, tmp_path: Path, config_file) -> None:
    import time

    from tests.knowledge.gitrepo import GitRepo

    upstream = GitRepo(tmp_path / "fleet")
    upstream.commit({"hosts/web.nix": "{ services.nginx.enable = true; }\n"}, "web",
                    when=time.time() - 60)
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                        config_repo=str(upstream.path))
    config_file(f'ai_name = "hal"\nconfig_repo = "{upstream.path}"\n'
                f'state_dir = "{settings.state_dir}"\n')
    code, _, err = cli("configs", "--sync")
    assert code == 0, err
    kb = KnowledgeBase.open(settings, embedder=embedder, seed=False)
    # the repository's key, as the index's state names it
    key = json.loads((settings.state_dir / "config-repo-index.json").read_text()).get(
        "repo_key", "")
    # a later version's chunk (its lines as one field), and one damaged past its path
    kb.collection("config_chunks").upsert(
        ids=[f"{key}:hosts/other.nix:1-3", f"{key}:damaged"],
        documents=["hosts/other.nix\nservices.nginx.root = 1;", "?\nservices.nginx"],
        metadatas=[{"path": "hosts/other.nix", "lines": "1-3", "commit": "c418f4cf66",
                    "repo": key}, {"commit": "c418f4cf66", "repo": key}])

    code, out, err = cli("configs", "--json", "-n", "5", "nginx web server")

    # it was a KeyError traceback at every search
    assert code == 0, err
    assert [hit["path"] for hit in json.loads(out)] == ["hosts/web.nix"]
    assert "2 unreadable record(s)" in err and "hosts/other.nix:1-3" in err
    # a sync lists what is indexed past them too
    upstream.commit({"hosts/web.nix": "{ services.nginx.enable = false; }\n"}, "off",
                    when=time.time())
    code, out, err = cli("configs", "--sync", "--json")
    assert code == 0, err
    assert json.loads(out)["sync"]["indexed"] == ["hosts/web.nix"]


def test_a_host_profile_a_newer_version_wrote_is_written_over_said_once(
        kb: KnowledgeBase, kb_settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """The daemon's checks keep each host's profile: one with a field this version does not
    know was a "host profile not kept" at every check, and never written again."""
    from tests.knowledge.test_learning import _snapshot

    newer = {"host": "nix1", "os": "NixOS", "summary": "x", "facts": {}, "updated_at": 1.0,
             "gpu": "none"}
    kb.collection("systems").upsert(
        ids=["nix1"], documents=["nix1 NixOS"],
        metadatas=[{"host": "nix1", "os": "NixOS", "updated_at": 1.0,
                    "record": json.dumps(newer)}])
    daemon = KnowledgeRecall(kb_settings, kb=kb)
    with caplog.at_level(logging.WARNING, logger="ai_sysadmin"):
        assert daemon.note_system(_snapshot("41")) is True
        assert daemon.note_system(_snapshot("41")) is False
    profile = kb.get_system("nix1")
    assert profile is not None and profile.facts["nixos_generation"] == "41"
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "record systems/nix1 cannot be read" in said[0], said
    assert kb.unreadable == {}
