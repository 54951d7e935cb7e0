"""The daemon's knowledge base closes once nothing used it for knowledge.close_after_seconds,
giving its memory back, and opens again at its next use with all it held."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.context import close_idle, shared
from ai_sysadmin.knowledge.models import KnowledgeEntry
from tests.knowledge.gitrepo import GitRepo
from tests.knowledge.test_learning import _snapshot

#: opening a knowledge base (ChromaDB, the embedding model) costs seconds
pytestmark = pytest.mark.slow


def test_a_store_in_use_stays_open_an_idle_one_closes_and_opens_again_whole(
        tmp_path: Path) -> None:
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", knowledge={"seed": False})
    recall = shared(settings)
    recall.kb.add(KnowledgeEntry(id="frob", topic="frobnicator.service wedges",
                                 text="its lock file /run/frob.lock is stale: remove it"))
    assert "/run/frob.lock" in recall.search_text("frobnicator wedged")
    # used a moment ago: an hour's idleness is not reached, nothing closes
    assert close_idle(3600) is False
    assert recall.is_open
    assert close_idle(0) is True
    assert not recall.is_open
    assert close_idle(0) is False  # nothing open: nothing to close
    # the next use opens it again, with what it held
    assert "/run/frob.lock" in recall.search_text("frobnicator wedged")
    assert recall.is_open


def test_upkeep_neither_keeps_the_store_open_nor_opens_it_again(tmp_path: Path) -> None:
    """The daemon's own upkeep is no use: a config_repo sync every ten minutes and a host
    profile whose count of running services moves kept the store open for good. A profile
    is not written into a closed store (a close between its look and its write opened it
    again), and the store is not closed under a sync that runs."""
    fleet = GitRepo(tmp_path / "fleet")
    fleet.commit({"hosts/web1/nginx.nix": "{ services.nginx.enable = true; }\n"}, "nginx",
                 when=time.time() - 3600)
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", knowledge={"seed": False},
                        config_repo=str(fleet.path))
    recall = shared(settings)
    recall.search_text("nginx")  # an investigation's use
    used = time.monotonic()
    # its upkeep since: a sync (nothing new), profiles of every check
    recall._sync_in_background()
    for generation in ("41", "42", "43"):
        assert recall.note_system(_snapshot(generation)) is True
    assert close_idle(time.monotonic() - used) is True  # idle since the search, not since
    assert not recall.is_open
    assert recall.note_system(_snapshot("44")) is False
    assert not recall.is_open
    # opened again: a profile as it is stored is not embedded and written again (a fleet's
    # every host was, at each opening); one that changed while it was closed is
    recall.search_text("nginx")
    assert recall.note_system(_snapshot("43")) is False
    assert recall.note_system(_snapshot("44")) is True
    assert recall.kb.get_system(_snapshot("44").host).facts["nixos_generation"] == "44"
    # a sync under way holds the close off
    recall.search_text("nginx")
    with recall._store.background():
        assert close_idle(0) is False
    assert close_idle(0) is True
