"""The embedded knowledge base: what goes in comes back, found by meaning, filtered, exported
and imported whole, and still there after the process ends."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import KnowledgeError, NotFoundError
from ai_sysadmin.knowledge.embeddings import MiniLMEmbedding
from ai_sysadmin.knowledge.models import (
    ActionTaken,
    ConfigChunk,
    IncidentRecord,
    KnowledgeEntry,
    SystemProfile,
)
from ai_sysadmin.knowledge.seed import seed_entries
from ai_sysadmin.knowledge.store import KnowledgeBase


def _entry(topic: str, text: str, **kw) -> KnowledgeEntry:
    return KnowledgeEntry(topic=topic, text=text, **kw)


def test_an_entry_comes_back_as_it_went_in(kb: KnowledgeBase) -> None:
    entry = _entry("nginx port clash", "Apache holds port 80; stop it before nginx starts.",
                   category="service", confidence=0.9, tags=["nginx", "port"],
                   source="incident:7", provenance="learned", verified=True)
    kb.add(entry)
    assert kb.get(entry.id) == entry
    assert kb.count()["knowledge"] == 1
    removed = kb.remove(entry.id)
    assert removed == entry and kb.count()["knowledge"] == 0
    with pytest.raises(NotFoundError, match=entry.id):
        kb.get(entry.id)
    with pytest.raises(NotFoundError):
        kb.remove(entry.id)


def test_search_finds_the_note_by_meaning_not_words(kb: KnowledgeBase) -> None:
    kb.add_many([
        _entry("Journal too big", "Vacuum the systemd journal with journalctl --vacuum-size."),
        _entry("Inodes exhausted", "df -i shows IUse% at 100: millions of small files."),
        _entry("NixOS rollback", "nixos-rebuild switch --rollback returns to the last "
               "generation."),
    ])
    hits = kb.search("the log storage of systemd eats the whole disk", n=3)
    assert hits[0].item.topic == "Journal too big"
    assert hits[0].distance < hits[-1].distance
    assert 0 < hits[0].score <= 1
    hits = kb.search("undo the last system upgrade on nix", n=1)
    assert [h.item.topic for h in hits] == ["NixOS rollback"]


def test_search_and_list_filter_by_provenance_category_and_verified(kb: KnowledgeBase) -> None:
    kb.add_many([
        _entry("restart nginx", "restart nginx after a port clash", provenance="learned",
               verified=True, category="service"),
        _entry("restart nginx (failed)", "restarting nginx did not help", provenance="learned",
               verified=False, category="service"),
        _entry("nginx config test", "run nginx -t before a reload", provenance="operator",
               category="service"),
        _entry("vacuum the journal", "journalctl --vacuum-size", provenance="seed",
               category="journald"),
    ])
    assert {e.topic for e in kb.list(provenance="learned", verified=True)} == {"restart nginx"}
    assert len(kb.list(category="service")) == 3
    assert {h.item.provenance for h in kb.search("nginx", n=10,
                                                  provenance=["operator", "learned"])} == \
        {"operator", "learned"}
    trusted = kb.search("nginx", n=10, verified=True)
    assert [h.item.topic for h in trusted] == ["restart nginx"]
    assert kb.search("nginx", n=10, category="journald", max_distance=2.0)[0].item.topic == \
        "vacuum the journal"
    assert kb.list(limit=2) and len(kb.list(limit=2)) == 2


def test_max_distance_keeps_unrelated_notes_out(kb: KnowledgeBase) -> None:
    kb.add(_entry("Journal too big", "Vacuum the systemd journal."))
    assert kb.search("postgres too many client connections", max_distance=0.3) == []
    assert kb.search("") == []


def test_a_similar_incident_brings_back_its_verified_fix(kb: KnowledgeBase) -> None:
    fix = IncidentRecord(
        id="incident:12", host="web1", rule="unit-failed", subject="nginx.service",
        symptoms="nginx.service failed: bind() to 0.0.0.0:80 failed (Address already in use)",
        diagnosis="a leftover apache2 held port 80",
        actions=[ActionTaken(kind="restart_unit", params={"unit": "nginx.service"})],
        outcome="verified")
    other = IncidentRecord(
        id="incident:13", host="db1", rule="disk-full", subject="/var",
        symptoms="/var is 97% full", diagnosis="journal grew to 30 GiB",
        actions=[ActionTaken(kind="vacuum_journal", params={"max_size": "1G"})],
        outcome="failed")
    kb.record_incident(fix)
    kb.record_incident(other)
    hits = kb.similar_incidents("nginx.service on web2 cannot listen: address already in use")
    assert hits[0].item == fix
    assert [h.item.id for h in kb.similar_incidents("/var is full", outcome="failed")] == \
        ["incident:13"]
    assert kb.get_incident("incident:13") == other


def test_systems_and_config_chunks(kb: KnowledgeBase) -> None:
    kb.upsert_system(SystemProfile(host="web1", os="NixOS 24.05", summary="the web server",
                                   facts={"nginx": "1.26"}))
    kb.upsert_system(SystemProfile(host="web1", os="NixOS 24.11", summary="the web server"))
    assert kb.get_system("web1").os == "NixOS 24.11"
    assert kb.get_system("nowhere") is None
    nginx = ConfigChunk(path="hosts/web1/nginx.nix", start_line=3, end_line=12,
                        commit="abc123", text="services.nginx.virtualHosts.\"example.org\" = {")
    pg = ConfigChunk(path="hosts/db1/postgres.nix", start_line=1, end_line=8, commit="abc123",
                     text="services.postgresql.enable = true;\nservices.postgresql.port = 5432;")
    kb.add_config_chunks([nginx, pg])
    assert kb.search_configs("the database server's port", n=1)[0].item == pg
    assert kb.config_paths() == {"hosts/web1/nginx.nix": "abc123",
                                 "hosts/db1/postgres.nix": "abc123"}
    assert kb.remove_config_chunks("hosts/db1/postgres.nix") == 1
    assert kb.remove_config_chunks("hosts/db1/postgres.nix") == 0
    assert kb.count()["config_chunks"] == 1


def test_export_then_import_into_a_new_store_keeps_everything(
        kb: KnowledgeBase, tmp_path: Path, embedder: MiniLMEmbedding) -> None:
    # a learned entry goes round too, but only one a lesson wrote (tests/knowledge/
    # test_import_trust.py): import refuses a hand-made one
    kb.add_many([_entry("a", "first note", tags=["x"]), _entry("b", "second note",
                                                               category="service")])
    kb.record_incident(IncidentRecord(id="incident:1", host="h", rule="r", symptoms="s",
                                      outcome="escalated"))
    lines = list(kb.export())
    assert [json.loads(line)["type"] for line in lines] == ["export", "entry", "entry",
                                                           "incident"]
    other = KnowledgeBase.open(Settings(state_dir=tmp_path / "other"), embedder=embedder,
                               seed=False)
    # the store's own export, moved: its operator's notes are theirs
    result = other.import_(lines, trust_operator_notes=True)
    assert len(result.added) == 3 and result.replaced == [] and result.untrusted == []
    assert list(other.export()) == lines
    again = other.import_(lines, trust_operator_notes=True)
    assert again.added == [] and len(again.replaced) == 3


def test_a_bad_import_line_is_named_and_nothing_is_written(kb: KnowledgeBase) -> None:
    good = json.dumps({"type": "entry", "topic": "ok", "text": "fine"})
    bad = [good, "not json", json.dumps({"type": "entry", "topic": "x", "text": "y",
                                         "confidence": 3}),
           json.dumps({"type": "weird"})]
    with pytest.raises(KnowledgeError) as err:
        kb.import_(bad)
    message = str(err.value)
    assert "nothing imported" in message
    assert "line 2" in message and "line 3: confidence" in message and "line 4" in message
    assert kb.count()["knowledge"] == 0


@pytest.mark.slow
def test_the_seed_loads_once_into_an_empty_store(kb_settings: Settings,
                                                  embedder: MiniLMEmbedding) -> None:
    seeds = seed_entries()
    assert len(seeds) >= 30
    assert {"systemd", "journald", "disk", "nixos", "service"} <= {e.category for e in seeds}
    kb = KnowledgeBase.open(kb_settings, embedder=embedder)
    assert kb.count()["knowledge"] == len(seeds)
    assert {e.provenance for e in kb.list()} == {"seed"}
    kb.remove("seed-nixos-gc")
    reopened = KnowledgeBase.open(kb_settings, embedder=embedder)
    # a removed seed entry stays removed: the seed is for an empty store only
    assert reopened.count()["knowledge"] == len(seeds) - 1
    assert reopened.search("garbage collect the nix store, old generations")[0].item.id != \
        "seed-nixos-gc"


@pytest.mark.slow
def test_the_store_survives_a_restart_and_reopens_with_our_embedding(
        kb_settings: Settings) -> None:
    """Written by one process, read by the next: no download attempt, our function."""
    program = textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        from ai_sysadmin.config import Settings
        from ai_sysadmin.knowledge.embeddings import MiniLMEmbedding
        from ai_sysadmin.knowledge.models import KnowledgeEntry
        from ai_sysadmin.knowledge.store import KnowledgeBase
        kb = KnowledgeBase.open(Settings(state_dir=Path({str(kb_settings.state_dir)!r})),
                                seed=False)
        for name in ("knowledge", "incidents", "systems", "config_chunks"):
            assert isinstance(kb.collection(name)._embedding_function, MiniLMEmbedding), name
        if sys.argv[1] == "write":
            kb.add(KnowledgeEntry(id="op-1", topic="ssh", text="never stop sshd remotely"))
        else:
            print(json.dumps([h.item.id for h in kb.search("keep remote login alive")]))
    """)
    # a proxy that goes nowhere: any download attempt fails loudly instead of succeeding
    env = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    chroma_models = Path.home() / ".cache" / "chroma" / "onnx_models"
    before = set(chroma_models.rglob("*")) if chroma_models.exists() else set()
    for step in ("write", "read"):
        run = subprocess.run([sys.executable, "-c", program, step], capture_output=True,
                             text=True, timeout=120, env=env)
        assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == ["op-1"]
    # chromadb's default function would have fetched its model here
    assert (set(chroma_models.rglob("*")) if chroma_models.exists() else set()) == before


def test_a_store_made_with_another_embedding_is_refused(kb_settings: Settings,
                                                        embedder: MiniLMEmbedding) -> None:
    KnowledgeBase.open(kb_settings, embedder=embedder, seed=False)

    class Other(MiniLMEmbedding):
        model_name = "another-model"

    with pytest.raises(KnowledgeError, match="made with the embedding 'minilm-l6-v2-int8'"):
        KnowledgeBase.open(kb_settings, embedder=Other(), seed=False)


def test_an_unusable_directory_is_a_clear_error(tmp_path: Path,
                                                embedder: MiniLMEmbedding) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    with pytest.raises(KnowledgeError, match="cannot be made"):
        KnowledgeBase.open(Settings(state_dir=blocker), embedder=embedder, seed=False)
    corrupt = tmp_path / "corrupt" / "knowledge"
    corrupt.mkdir(parents=True)
    (corrupt / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(KnowledgeError, match="cannot be opened.*damaged"):
        KnowledgeBase.open(Settings(state_dir=tmp_path / "corrupt"), embedder=embedder,
                           seed=False)
