"""When ``config_repo`` or ``config_branch`` changes, what was indexed from the old one never
answers for the new one: a search refuses until the next sync, and that sync drops all of it.
Real git repositories, real ChromaDB, the real CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.knowledge.config_repo import ConfigRepoError
from ai_sysadmin.knowledge.context import KnowledgeRecall
from ai_sysadmin.knowledge.models import ConfigChunk
from ai_sysadmin.knowledge.store import KnowledgeBase
from tests.knowledge.gitrepo import GitRepo

NGINX = "server {\n  listen 8080;\n  server_name shop.example;\n}\n"
POSTGRES = "max_connections = 500\nshared_buffers = 2GB\n"


def _fleets(tmp_path: Path) -> tuple[GitRepo, GitRepo]:
    web = GitRepo(tmp_path / "web-fleet")
    web.commit({"web1/nginx.conf": NGINX, "README": "web fleet\n"}, "web", when=time.time())
    db = GitRepo(tmp_path / "db-fleet")
    db.commit({"db1/postgresql.conf": POSTGRES, "README": "db fleet\n"}, "db",
              when=time.time())
    return web, db


def _recall(tmp_path: Path, kb: KnowledgeBase, url: Path, branch: str = "main"
            ) -> KnowledgeRecall:
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", config_repo=str(url),
                        config_branch=branch)
    return KnowledgeRecall(settings, kb=kb)


def _paths(recall: KnowledgeRecall, query: str) -> set[str]:
    return {hit.item.path for hit in recall.search_configs(query, 10, max_distance=2.0)}


@pytest.mark.slow
def test_another_repository_is_refused_until_a_sync_drops_all_of_the_old_one(
        tmp_path: Path, kb: KnowledgeBase) -> None:
    web, db = _fleets(tmp_path)
    before = _recall(tmp_path, kb, web.path)
    before.sync_configs()
    assert "web1/nginx.conf" in _paths(before, "nginx listen port")
    # what a sync cut short by a crash leaves: chunks the saved state does not list
    kb.add_config_chunks([ConfigChunk(path="web1/half-done.conf", start_line=1, end_line=1,
                                      commit="0" * 40, text="listen 8443;",
                                      repo=before.repo.key)])

    after = _recall(tmp_path, kb, db.path)
    # before a sync: no answer from the web fleet's files, and why
    with pytest.raises(ConfigRepoError, match="still of another repository.*next sync"):
        after.search_configs("nginx listen port")
    assert after.changes_text("nginx.service") == ""

    report = after.sync_configs()
    assert report.previous == "another repository"
    assert report.removed == ["README", "web1/half-done.conf", "web1/nginx.conf"]
    assert sorted(report.indexed) == ["README", "db1/postgresql.conf"]
    assert set(kb.config_paths()) == {"README", "db1/postgresql.conf"}
    assert _paths(after, "nginx listen port") <= {"README", "db1/postgresql.conf"}
    readme = [h.item for h in after.search_configs("fleet", 10, max_distance=2.0)
              if h.item.path == "README"]
    assert [c.text for c in readme] == ["db fleet"]
    # the next sync of the same repository is an ordinary one again
    again = after.sync_configs()
    assert (again.previous, again.indexed, again.removed) == (None, [], [])


@pytest.mark.slow
def test_another_branch_of_the_same_repository_replaces_the_index(
        tmp_path: Path, kb: KnowledgeBase) -> None:
    web, _ = _fleets(tmp_path)
    web.git("checkout", "--quiet", "-b", "staging")
    web.commit({"web1/nginx.conf": None, "web1/caddy.conf": "shop.example {\n}\n"},
               "caddy on staging", when=time.time())
    _recall(tmp_path, kb, web.path).sync_configs()

    staging = _recall(tmp_path, kb, web.path, branch="staging")
    with pytest.raises(ConfigRepoError, match="still of branch 'main' of config_repo"):
        staging.search_configs("web server")
    report = staging.sync_configs()
    assert report.previous == "branch 'main' of config_repo"
    assert report.removed == ["README", "web1/nginx.conf"]
    assert set(kb.config_paths()) == {"README", "web1/caddy.conf"}


@pytest.mark.slow
def test_configs_refuses_an_old_index_and_its_sync_says_it_dropped_it(
        tmp_path: Path, config_file, cli) -> None:
    web, db = _fleets(tmp_path)
    state = tmp_path / "state"
    config_file(f'ai_name = "hal"\nconfig_repo = "{web.path}"\nstate_dir = "{state}"\n')
    code, _, err = cli("configs", "--sync")
    assert code == 0, err

    config_file(f'ai_name = "hal"\nconfig_repo = "{db.path}"\nstate_dir = "{state}"\n')
    code, out, err = cli("configs", "nginx listen port")
    assert (code, out) == (2, "")
    assert "config_repo or config_branch changed" in err and "configs --sync" in err

    code, out, err = cli("configs", "--sync", "nginx listen port")
    assert code == 0, err
    assert "dropped the index of another repository (2 file(s))" in err
    assert "web1/nginx.conf" not in out and "db1/postgresql.conf" in out

    code, out, _ = cli("configs", "--json", "-n", "10", "nginx listen port")
    assert code == 0
    assert {hit["path"] for hit in json.loads(out)} <= {"README", "db1/postgresql.conf"}


@pytest.mark.slow
def test_a_branch_name_git_refuses_is_the_error_and_the_old_index_never_answers(
        tmp_path: Path, kb: KnowledgeBase, config_file, cli) -> None:
    web, _ = _fleets(tmp_path)
    state = tmp_path / "state"
    config_file(f'ai_name = "hal"\nconfig_repo = "{web.path}"\nstate_dir = "{state}"\n')
    code, _, err = cli("configs", "--sync")
    assert code == 0, err

    path = config_file(f'ai_name = "hal"\nconfig_repo = "{web.path}"\nconfig_branch = "-x"\n'
                       f'state_dir = "{state}"\n')
    # it said "no config_repo is configured", and a search answered from main's index: now
    # the config is refused as it loads, naming the key
    for args in (("configs", "--sync"), ("configs", "nginx listen port"),
                 ("configs", "--sync", "--json", "nginx listen port")):
        code, out, err = cli(*args)
        assert (code, out) == (2, ""), args
        assert f"{path}: key 'config_branch': must be a branch name git accepts" in err, args
    # the daemon's recall alike, for settings no file gave (made in code, never validated):
    # no config search from an index it cannot vouch for
    why = "config_branch '-x' is not a branch name git accepts"
    unchecked = Settings(ai_name="hal", state_dir=state, config_repo=str(web.path)).model_copy(
        update={"config_branch": "-x"})
    recall = KnowledgeRecall(unchecked, kb=kb)
    with pytest.raises(ConfigRepoError, match=why):
        recall.search_configs("nginx listen port")
    with pytest.raises(ConfigRepoError, match=why):
        recall.sync_configs()


def _assistant(tmp_path: Path, name: str, kb: KnowledgeBase, url: Path) -> KnowledgeRecall:
    settings = Settings(ai_name=name, state_dir=tmp_path / name, config_repo=str(url))
    return KnowledgeRecall(settings, kb=kb)


def _found(recall: KnowledgeRecall, query: str) -> dict[str, list[str]]:
    hits = recall.search_configs(query, 10, max_distance=2.0)
    return {path: [h.item.text for h in hits if h.item.path == path]
            for path in {h.item.path for h in hits}}


@pytest.mark.slow
def test_assistants_sharing_one_store_keep_their_repositories_apart(
        tmp_path: Path, kb: KnowledgeBase) -> None:
    web, db = _fleets(tmp_path)
    # one knowledge.url (here one store) for two assistants, each with its config_repo
    hal, eve = _assistant(tmp_path, "hal", kb, web.path), _assistant(tmp_path, "eve", kb, db.path)
    hal.sync_configs()
    eve.sync_configs()

    # hal was answered from eve's files, and eve's README had overwritten hal's
    assert _found(hal, "fleet database web server") == {"README": ["web fleet"],
                                                        "web1/nginx.conf": [NGINX.rstrip()]}
    assert set(_found(eve, "fleet database web server")) == {"README", "db1/postgresql.conf"}
    # a file gone from eve's repository leaves eve's index, not hal's
    db.commit({"README": None}, "no readme", when=time.time())
    assert eve.sync_configs().removed == ["README"]
    assert _found(hal, "fleet")["README"] == ["web fleet"]
    assert "README" not in _found(eve, "fleet")
    # nor does hal's sync remove eve's files as if they were gone from hal's repository
    assert hal.sync_configs().removed == []
    assert set(_found(eve, "postgres connections")) == {"db1/postgresql.conf"}


@pytest.mark.slow
def test_an_index_an_earlier_version_made_is_refused_until_a_sync_makes_it_anew(
        tmp_path: Path, kb: KnowledgeBase) -> None:
    web, _ = _fleets(tmp_path)
    recall = _recall(tmp_path, kb, web.path)
    recall.sync_configs()
    # as an earlier version left it: chunks naming no repository, a state without its key
    collection = kb.collection("config_chunks")
    collection.delete(ids=collection.get(include=[])["ids"])
    kb.add_config_chunks([ConfigChunk(path="web1/nginx.conf", start_line=1, end_line=4,
                                      commit="0" * 40, text=NGINX.rstrip())])
    index = tmp_path / "state" / "config-repo-index.json"
    index.write_text(json.dumps({k: v for k, v in json.loads(index.read_text()).items()
                                 if k != "repo_key"}))

    with pytest.raises(ConfigRepoError, match="earlier version.*next sync indexes it again"):
        recall.search_configs("nginx listen port")
    report = recall.sync_configs()

    assert report.earlier_version and report.removed == []
    assert sorted(report.indexed) == ["README", "web1/nginx.conf"]
    assert kb.config_paths("") == {}  # the chunks that named no repository are gone
    assert set(_found(recall, "nginx listen port")) == {"README", "web1/nginx.conf"}
