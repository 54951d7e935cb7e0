"""The shipped seed is loaded into a knowledge base once, ever: an operator who removed every
seed note (to keep only their own) does not see them all come back at the next open."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.embeddings import MiniLMEmbedding
from ai_sysadmin.knowledge.seed import seed_entries
from ai_sysadmin.knowledge.store import KnowledgeBase

pytestmark = pytest.mark.slow


def test_removing_every_seed_note_is_not_undone(kb_settings: Settings,
                                                embedder: MiniLMEmbedding) -> None:
    kb = KnowledgeBase.open(kb_settings, embedder=embedder)
    assert kb.count()["knowledge"] == len(seed_entries())
    for entry in kb.list(provenance="seed"):
        kb.remove(entry.id)
    assert kb.count()["knowledge"] == 0
    # what the next `knowledge list`, or the daemon's start, does
    reopened = KnowledgeBase.open(kb_settings, embedder=embedder)
    assert reopened.count()["knowledge"] == 0
    assert reopened.list(provenance="seed") == []


def test_a_store_opened_without_the_seed_gets_it_while_still_empty(
        kb_settings: Settings, embedder: MiniLMEmbedding) -> None:
    KnowledgeBase.open(kb_settings, embedder=embedder, seed=False)
    kb = KnowledgeBase.open(kb_settings, embedder=embedder)
    assert kb.count()["knowledge"] == len(seed_entries())


def test_an_export_imported_into_a_new_store_does_not_bring_back_removed_seed_notes(
        cli: Callable[..., tuple[int, str, str]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The way out of a store (export, a new store, import) gives back what was exported:
    the seed notes the operator removed stay removed, as they do at every open."""
    code, out, err = cli("knowledge", "list", "--provenance", "seed", "--json")
    assert code == 0, err
    kept, *removed = [entry["id"] for entry in json.loads(out)]
    assert removed
    for entry_id in removed:
        assert cli("knowledge", "remove", entry_id)[0] == 0
    dump = tmp_path / "kb.jsonl"
    assert cli("knowledge", "export", str(dump))[0] == 0

    monkeypatch.setenv("AI_SYSADMIN_STATE_DIR", str(tmp_path / "new-state"))
    code, out, err = cli("knowledge", "import", str(dump), "--json")
    assert code == 0, err
    assert json.loads(out) == {"added": [kept], "replaced": [], "untrusted": [],
                               "kept_untrusted": [], "seeded": 0, "merged": [], "kept": []}
    for _ in range(2):  # the import, then the next open (the daemon's start)
        code, out, _ = cli("knowledge", "list", "--json")
        assert [entry["id"] for entry in json.loads(out)] == [kept]


def test_notes_of_ones_own_imported_into_a_new_store_come_with_the_shipped_ones(
        cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    """A new install whose first knowledge command imports a notes file the operator wrote:
    the shipped notes were never loaded, and nothing said so."""
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"type": "entry", "topic": "web1 runs php-fpm",
                                 "text": "nginx on web1 needs php-fpm.service up first"}) + "\n")
    code, out, err = cli("knowledge", "import", "--trust-operator-notes", str(notes))
    assert code == 0, err
    shipped = len(seed_entries())
    assert out == (f"imported 1 new and 0 replaced\nand the {shipped} shipped notes, which a "
                   "new store starts with (knowledge.seed): the file held none of them\n")
    for _ in range(2):  # the import, then the next open (the daemon's start)
        code, out, _ = cli("knowledge", "list", "--json")
        provenances = [entry["provenance"] for entry in json.loads(out)]
        assert provenances.count("seed") == shipped and provenances.count("operator") == 1
    # a second file into the store, now seeded, brings no seed again
    code, out, err = cli("knowledge", "import", str(notes), "--json")
    assert code == 0 and json.loads(out)["seeded"] == 0, err


def test_an_export_of_a_store_without_any_shipped_note_fills_a_new_store_with_none(
        cli: Callable[..., tuple[int, str, str]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator who removed every shipped note, moving the store (export, a new store,
    import): the file holds no seed note, and the import took it for notes a person wrote
    and brought back all of them."""
    code, out, err = cli("knowledge", "add", "--topic", "web1 runs php-fpm",
                         "--text", "nginx on web1 needs php-fpm.service up first", "--json")
    assert code == 0, err
    mine = json.loads(out)["id"]
    code, out, err = cli("knowledge", "list", "--provenance", "seed", "--json")
    for entry in json.loads(out):
        assert cli("knowledge", "remove", entry["id"])[0] == 0
    dump = tmp_path / "kb.jsonl"
    assert cli("knowledge", "export", str(dump))[0] == 0

    monkeypatch.setenv("AI_SYSADMIN_STATE_DIR", str(tmp_path / "new-state"))
    code, out, err = cli("knowledge", "import", "--trust-operator-notes", str(dump), "--json")
    assert code == 0, err
    assert json.loads(out) == {"added": [mine], "replaced": [], "untrusted": [],
                               "kept_untrusted": [], "seeded": 0, "merged": [], "kept": []}
    for _ in range(2):  # the import, then the next open (the daemon's start)
        code, out, _ = cli("knowledge", "list", "--json")
        assert [entry["id"] for entry in json.loads(out)] == [mine]

    # an export written before exports had their first line cannot be told from a person's
    # notes: it is taken for theirs, the usual file, and comes with the shipped notes
    monkeypatch.setenv("AI_SYSADMIN_STATE_DIR", str(tmp_path / "third-state"))
    older = tmp_path / "older.jsonl"
    older.write_text("".join(dump.read_text().splitlines(keepends=True)[1:]))
    code, out, err = cli("knowledge", "import", "--trust-operator-notes", str(older), "--json")
    assert code == 0 and json.loads(out)["seeded"] == len(seed_entries()), err
