"""Secrets committed to the config repository reach neither the index nor an investigation:
files made of secrets (config_repo_exclude) are never read, and every other file is masked,
by its format and, for a .pgpass, by its name. Real git, real ChromaDB, the real CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings, load_settings
from ai_sysadmin.knowledge.config_repo import ConfigRepo
from ai_sysadmin.knowledge.context import KnowledgeRecall
from tests.knowledge.gitrepo import GitRepo
from tests.knowledge.test_config_repo_git import ListSink

# one commit of a web host's nginx with basic auth, its mail and backup settings and a
# database password file: every value below is a secret an investigation must not see
APR1 = "$apr1$r31xYz12$.JgkjXH6oJKAd6IMbbmdX."
SHA512 = ("$6$saltsaltsalt$8IHP/Lv4xgoLwSV.4A/A0WEy3edCXz.xNTyBRLPp6ExEdMML3lmVX.X.xG5sBX2Cs5"
          "dmkq9W4K5NK.5dhIkru.")
FILES = {
    "hosts/web/nginx.nix": (
        '{ pkgs, ... }:\n{\n  services.nginx.enable = true;\n'
        '  services.nginx.virtualHosts."shop.example".basicAuthFile =\n'
        f'    pkgs.writeText "htpasswd" "shop:{APR1}";\n'
        # the option's own form: user name -> password in clear
        '  services.nginx.virtualHosts."stats.example".basicAuth = {\n'
        '    admin = "StatsBasicAuth77";\n  };\n'
        f'  users.users.deploy.hashedPassword = "{SHA512}";\n}}\n'),
    "hosts/web/nginx.htpasswd": ("admin:$2y$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZd"
                                 "L17lhWy\n"),
    "hosts/web/msmtprc": ("# nginx error mails\naccount default\nhost smtp.example.org\n"
                          "user nginx\npassword MsmtpPassw0rd\n"),
    "hosts/web/rclone.conf": ("# nginx logs to B2\n[b2]\ntype = b2\naccount = 0012345abcde\n"
                              "key = K001RcloneAppKeyValue1234567\n"),
    "hosts/db/.pgpass": "# nginx's shop database\ndb.example.org:5432:shop:shop:PgPassShop77\n",
}
SECRETS = ("JgkjXH6oJKAd6IMbbmdX", "8IHP/Lv4xgoLwSV", "N9qo8uLOickgx2ZMRZoMye", "MsmtpPassw0rd",
           "K001RcloneAppKeyValue", "PgPassShop77", "StatsBasicAuth77")
EXCLUDED_BY_DEFAULT = ["hosts/db/.pgpass", "hosts/web/msmtprc", "hosts/web/nginx.htpasswd"]


def _fleet(tmp_path: Path) -> GitRepo:
    upstream = GitRepo(tmp_path / "fleet")
    upstream.commit({"README": "the shop's fleet\n"}, "start", when=time.time() - 7200)
    upstream.commit(dict(FILES), "nginx: basic auth for the shop", when=time.time() - 3600)
    return upstream


def _leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


@pytest.mark.slow
def test_files_of_secrets_are_never_indexed_nor_shown_and_the_rest_is_masked(
        tmp_path: Path, config_file, cli) -> None:
    upstream = _fleet(tmp_path)
    path = config_file(f'ai_name = "hal"\nconfig_repo = "{upstream.path}"\n'
                       f'state_dir = "{tmp_path / "state"}"\n')

    code, out, err = cli("configs", "--sync")
    assert code == 0, err
    assert "6 file(s) (3 left out by config_repo_exclude), 3 indexed again" in out
    code, out, err = cli("configs", "--sync", "--json")
    assert json.loads(out)["sync"]["excluded"] == EXCLUDED_BY_DEFAULT

    # every chunk the index holds, as a search shows it
    code, out, err = cli("configs", "--json", "-n", "100", "password key secret")
    assert code == 0, err
    found = json.loads(out)
    assert {hit["path"] for hit in found} == {"README", "hosts/web/nginx.nix",
                                              "hosts/web/rclone.conf"}
    assert _leaks(out) == []
    assert "key = [redacted]" in out and "$apr1$[redacted]" in out

    # what an investigation of a failed nginx is shown: the commit names every file, the
    # diff shows those not excluded, masked
    shown = KnowledgeRecall(load_settings(path).settings).changes_text("nginx.service",
                                                                       diffs=1)
    assert "nginx: basic auth for the shop" in shown
    assert "+  users.users.deploy.hashedPassword = \"[redacted]\";" in shown
    assert "+    admin = \"[redacted]\";" in shown
    assert "[diff not shown (config_repo_exclude): hosts/db/.pgpass, hosts/web/msmtprc, " \
        "hosts/web/nginx.htpasswd]" in shown
    assert _leaks(shown) == []


def test_with_nothing_excluded_every_file_is_masked_by_its_format_or_name(
        tmp_path: Path, config_file, cli) -> None:
    upstream = _fleet(tmp_path)
    # the knowledge base off: the copy is fetched for the recent changes, nothing indexed
    path = config_file(f'ai_name = "hal"\nconfig_repo = "{upstream.path}"\n'
                       f'state_dir = "{tmp_path / "state"}"\nconfig_repo_exclude = []\n'
                       "[knowledge]\nenabled = false\n")
    code, out, err = cli("configs", "--sync")
    assert code == 0, err
    recall = KnowledgeRecall(load_settings(path).settings)
    assert recall.repo is not None
    shown = recall.changes_text("nginx.service", diffs=1)
    # the diff of all five files (at most five are shown)
    for name in FILES:
        assert f"diff --git a/{name} b/{name}" in shown
    assert "+db.example.org:5432:shop:shop:[redacted]" in shown
    assert "+password [redacted]" in shown and "+admin:$2y$[redacted]" in shown
    assert _leaks(shown) == []
    # and so are the chunks the index would hold
    commit = recall.repo.head()
    chunks = [chunk.text for name, blob in recall.repo.files(commit).items()
              for chunk in recall.repo.chunks(name, blob, commit)]
    assert _leaks("\n".join(chunks)) == []


def test_a_file_excluded_after_it_was_indexed_leaves_the_index(tmp_path: Path) -> None:
    upstream = _fleet(tmp_path)
    everything = Settings(ai_name="hal", state_dir=tmp_path / "state",
                          config_repo=str(upstream.path), config_repo_exclude=[])
    sink = ListSink()
    ConfigRepo(everything).sync(sink)
    assert set(FILES) <= set(sink.by_path)

    report = ConfigRepo(everything.model_copy(
        update={"config_repo_exclude": ["*htpasswd*", "hosts/db/*"]})).sync(sink)
    assert report.removed == ["hosts/db/.pgpass", "hosts/web/nginx.htpasswd"]
    assert report.excluded == ["hosts/db/.pgpass", "hosts/web/nginx.htpasswd"]
    assert "hosts/web/nginx.htpasswd" not in sink.by_path
