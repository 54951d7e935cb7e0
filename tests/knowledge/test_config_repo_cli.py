"""``{name}-configs``: fetch and index a real git repository into a real ChromaDB, then search it
by meaning, as path:line snippets or JSON; re-indexing touches only what changed."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import socket
import time
from pathlib import Path

import pytest

from ai_sysadmin.config import load_settings
from ai_sysadmin.knowledge.config_repo import _telling_line
from ai_sysadmin.knowledge.context import KnowledgeRecall
from tests.knowledge.gitrepo import GitRepo

NGINX = """{ config, ... }:
{
  services.nginx = {
    enable = true;
    virtualHosts."shop.example.org" = {
      forceSSL = true;
      root = "/srv/shop";
    };
  };
}
"""
POSTGRES = """{ ... }:
{
  services.postgresql = {
    enable = true;
    ensureDatabases = [ "shop" ];
  };
}
"""


@pytest.mark.slow
def test_configs_sync_then_search_by_meaning(tmp_path: Path, config_file, cli) -> None:
    upstream = GitRepo(tmp_path / "fleet")
    upstream.commit({"hosts/web/nginx.nix": NGINX, "hosts/db/postgres.nix": POSTGRES},
                    "fleet", when=time.time() - 3600)
    config_file(f'ai_name = "hal"\nconfig_repo = "{upstream.path}"\n'
                f'state_dir = "{tmp_path / "state"}"\n')

    code, out, err = cli("configs", "--sync", "--json")
    assert code == 0, err
    synced = json.loads(out)["sync"]
    assert sorted(synced["indexed"]) == ["hosts/db/postgres.nix", "hosts/web/nginx.nix"]

    code, out, err = cli("web server for the shop with TLS", argv0="hal-configs")
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.startswith("hosts/web/nginx.nix:1-10") for line in lines[:3]), out
    assert '      3    services.nginx = {' in out

    code, out, _ = cli("configs", "--json", "-n", "1", "which databases exist")
    (hit,) = json.loads(out)
    assert (hit["path"], hit["start_line"]) == ("hosts/db/postgres.nix", 1)
    assert hit["commit"] == upstream.git("rev-parse", "HEAD").strip()

    # a changed file is indexed again, the other is not read; a removed one leaves
    upstream.commit({"hosts/web/nginx.nix": NGINX.replace("/srv/shop", "/srv/store"),
                     "hosts/db/postgres.nix": None}, "move the shop", when=time.time())
    code, out, _ = cli("configs", "--sync", "--json")
    synced = json.loads(out)["sync"]
    assert (synced["indexed"], synced["removed"]) == (["hosts/web/nginx.nix"],
                                                      ["hosts/db/postgres.nix"])
    code, out, _ = cli("configs", "--json", "-n", "5", "which databases exist")
    assert {h["path"] for h in json.loads(out)} == {"hosts/web/nginx.nix"}


#: a key the host's TLS needs, committed as NixOS configs often hold one (masked when read)
TLS_KEY = ("-----BEGIN PRIVATE KEY-----\n"
           + "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n" * 24
           + "-----END PRIVATE KEY-----\n")
WEB_NIX = ("{\n  services.nginx.enable = true;\n  services.nginx.sslKey = ''\n" + TLS_KEY
           + "  '';\n  services.nginx.listenPort = 8443;\n}\n")
# a form feed, a line separator and a lone carriage return end no line for git
APP_CONF = "".join(f"line{n} = value{n}\n" for n in range(1, 10)) + "\f\n" + \
    "".join(f"line{n} = value{n}\u2028x\rq\n" for n in range(11, 20)) + \
    "".join(f"line{n} = value{n}\r\n" for n in range(20, 61))


@pytest.mark.slow
def test_configs_says_the_line_git_says_after_a_private_key_or_a_form_feed(
        tmp_path: Path, config_file, cli) -> None:
    upstream = GitRepo(tmp_path / "fleet")
    upstream.commit({"web.nix": WEB_NIX, "app.conf": APP_CONF, "hosts/db/postgres.nix": POSTGRES},
                    "fleet", when=time.time() - 3600)
    config_file(f'ai_name = "hal"\nconfig_repo = "{upstream.path}"\n'
                f'state_dir = "{tmp_path / "state"}"\n')
    assert upstream.git("grep", "-n", "listenPort").startswith("web.nix:31:")
    assert upstream.git("grep", "-n", "line39 =").startswith("app.conf:39:")
    code, out, err = cli("configs", "--sync", "--json")
    assert code == 0, err

    code, out, _ = cli("configs", "--json", "-n", "1", "nginx listen port")
    (hit,) = json.loads(out)
    lines = hit["text"].split("\n")
    # the key is masked, its lines kept: the port is on line 31 of the chunk's lines
    assert "[redacted private key]" in hit["text"] and "MIIEvQ" not in hit["text"]
    assert lines[31 - hit["start_line"]] == "  services.nginx.listenPort = 8443;"
    assert hit["end_line"] == 32
    code, out, _ = cli("configs", "-n", "1", "nginx listen port")
    assert "     31    services.nginx.listenPort = 8443;" in out, out

    code, out, _ = cli("configs", "--json", "-n", "5", "line39 value39")
    (hit,) = [h for h in json.loads(out) if h["start_line"] <= 39 <= h["end_line"]]
    assert hit["text"].split("\n")[39 - hit["start_line"]] == "line39 = value39"
    assert max(h["end_line"] for h in json.loads(out)) == 60

    # an index an earlier version numbered (its state says no numbering): the file whose
    # lines it numbered otherwise is indexed again at the next sync, the other is not
    (state,) = (tmp_path / "state").rglob("config-repo-index.json")
    saved = json.loads(state.read_text())
    del saved["numbering"]
    state.write_text(json.dumps(saved))
    code, out, err = cli("configs", "--sync", "--json")
    assert code == 0, err
    assert sorted(json.loads(out)["sync"]["indexed"]) == ["app.conf", "web.nix"]
    code, out, err = cli("configs", "--sync", "--json")
    assert json.loads(out)["sync"]["indexed"] == []


def test_configs_says_what_is_missing(tmp_path: Path, config_file, cli) -> None:
    code, _, err = cli("configs", "nginx")
    assert code == 2 and "no config_repo is configured" in err
    upstream = GitRepo(tmp_path / "fleet", branch="trunk")
    upstream.commit({"a.nix": "{ }\n"}, "a", when=time.time())
    config_file(f'config_repo = "{upstream.path}"\n')
    code, _, err = cli("configs", "nginx")
    assert code == 2 and "configs --sync" in err
    code, _, err = cli("configs", "--sync")
    assert code == 2 and "has no branch 'main' (config_branch)" in err
    code, _, err = cli("configs")
    assert code == 2 and "give a QUERY" in err


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("where", ["missing", "ssh"])
def test_a_repository_that_cannot_be_fetched_is_one_line_and_the_log_keeps_all_git_said(
        tmp_path: Path, config_file, cli, caplog: pytest.LogCaptureFixture,
        where: str) -> None:
    if where == "missing":
        url = str(tmp_path / "no-such-repo")
        said = f"'{url}' does not appear to be a git repository"
    else:
        port = _refused_port()
        url = f"ssh://127.0.0.1:{port}/fleet.git"
        # ssh's own reason, not git's "Could not read from remote repository" after it
        said = f"ssh: connect to host 127.0.0.1 port {port}: Connection refused"
    path = config_file(f'config_repo = "{url}"\n[knowledge]\nenabled = false\n')
    code, out, err = cli("configs", "--sync")
    assert (code, out) == (2, "")
    assert err == (f"error: git fetch of {url} failed: {said} (check config_repo and that "
                   "this host reaches it; `git ls-remote` of it shows all git says)\n")

    # the daemon's refresh logs the same line, and all git said beside it
    recall = KnowledgeRecall(load_settings(path).settings)

    async def refresh() -> list[logging.LogRecord]:
        await recall.config_changes("nginx.service")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            failed = [r for r in caplog.records if getattr(r, "event", "") ==
                      "config_repo_failed"]
            if failed:
                return failed
            await asyncio.sleep(0.05)
        raise AssertionError("no config_repo_failed record")

    with caplog.at_level(logging.WARNING, logger="ai_sysadmin"):
        (record,) = asyncio.run(refresh())
    assert record.getMessage() == f"config_repo not refreshed: git fetch of {url} failed: {said}"
    assert "Please make sure you have the correct access rights" in record.git_said


@pytest.mark.slow
def test_a_minified_file_is_indexed_cut_and_a_file_that_fails_stops_no_other(
        tmp_path: Path, config_file, cli, caplog: pytest.LogCaptureFixture) -> None:
    # a Grafana dashboard as exported: one line of 37,000 characters
    panels = ",".join(f'{{"id":{i},"title":"Requests {i}","targets":[{{"expr":'
                      f'"rate(nginx_http_requests_total[5m])"}}]}}' for i in range(400))
    dashboard = f'{{"title":"nginx","panels":[{panels}]}}\n'
    # a path longer than an index record takes (five directories of 250 characters)
    deep = "/".join(["d" * 250] * 5) + "/deep.nix"
    upstream = GitRepo(tmp_path / "fleet")
    upstream.commit({"dashboards/a-nginx.json": dashboard,
                     deep: "{ services.openssh.enable = true; }\n",
                     "hosts/web/nginx.nix": NGINX}, "fleet", when=time.time() - 3600)
    config_file(f'ai_name = "hal"\nconfig_repo = "{upstream.path}"\n'
                f'state_dir = "{tmp_path / "state"}"\n')

    with caplog.at_level(logging.WARNING, logger="ai_sysadmin"):
        code, out, err = cli("configs", "--sync")
    assert code == 0, err
    assert "3 file(s), 2 indexed again (2 chunks), 1 failed, 0 removed" in out
    assert err.startswith(f"not indexed: {deep}: path: String should have at most 1024 "
                          "characters (tried again at the next sync)")
    # the daemon's sync logs it the same way
    (record,) = [r for r in caplog.records if getattr(r, "event", "") == "config_file_failed"]
    assert record.path == deep

    code, out, err = cli("configs", "--json", "-n", "5", "grafana dashboard nginx requests")
    assert code == 0, err
    found = {hit["path"]: hit["text"] for hit in json.loads(out)}
    assert set(found) == {"dashboards/a-nginx.json", "hosts/web/nginx.nix"}
    assert found["dashboards/a-nginx.json"].startswith('{"title":"nginx","panels":[{"id":0,')
    assert found["dashboards/a-nginx.json"].endswith(" more characters]")
    # shown to a person: the line's start, not a screenful of it
    code, out, err = cli("configs", "-n", "5", "grafana dashboard nginx requests")
    assert code == 0, err
    (shown,) = [line for line in out.splitlines() if '{"title":"nginx"' in line]
    assert shown.startswith('      1  {"title":"nginx","panels":[{"id":0,')
    assert re.search(r"[^.] \.\.\. \(2\d{3} more characters\)$", shown) and len(shown) < 260

    # what failed is tried again; what was indexed is not read again
    code, out, err = cli("configs", "--sync", "--json")
    synced = json.loads(out)["sync"]
    assert (synced["indexed"], list(synced["failed"])) == ([], [deep])


@pytest.mark.slow
def test_a_store_made_anew_gets_the_whole_index_back_at_the_next_sync(
        tmp_path: Path, config_file, cli) -> None:
    upstream = GitRepo(tmp_path / "fleet")
    upstream.commit({"hosts/web/nginx.nix": NGINX, "hosts/db/postgres.nix": POSTGRES},
                    "fleet", when=time.time() - 3600)
    state = tmp_path / "state"
    base = f'ai_name = "hal"\nconfig_repo = "{upstream.path}"\nstate_dir = "{state}"\n'
    config_file(base)

    def sync_then_find() -> tuple[str, set[str]]:
        code, out, err = cli("configs", "--sync")
        assert code == 0, err
        code, found, err = cli("configs", "--json", "-n", "5", "which databases exist")
        assert code == 0, err
        return out, {hit["path"] for hit in json.loads(found)}

    first, _ = sync_then_find()
    assert "2 indexed again" in first
    # the store moved aside, as its own corruption error tells a person to do
    (state / "knowledge").rename(tmp_path / "knowledge.broken")
    out, paths = sync_then_find()
    assert "2 file(s), 2 indexed again (2 chunks), 0 removed" in out
    assert paths == {"hosts/db/postgres.nix", "hosts/web/nginx.nix"}
    out, _ = sync_then_find()
    assert "0 indexed again" in out  # and then only what changes

    # another knowledge.path: the same
    config_file(base + f'[knowledge]\npath = "{tmp_path / "elsewhere"}"\n')
    out, paths = sync_then_find()
    assert "2 indexed again" in out and paths == {"hosts/db/postgres.nix",
                                                  "hosts/web/nginx.nix"}

    # the state an older version wrote names no store: one that holds none of its files is
    # another
    index = state / "config-repo-index.json"
    written = json.loads(index.read_text())
    index.write_text(json.dumps({k: v for k, v in written.items() if k != "store"}))
    config_file(base + f'[knowledge]\npath = "{tmp_path / "third"}"\n')
    out, paths = sync_then_find()
    assert "2 indexed again" in out and paths == {"hosts/db/postgres.nix",
                                                  "hosts/web/nginx.nix"}


def test_a_fetch_whose_ssh_says_nothing_names_git_s_own_words() -> None:
    said = ("fatal: Could not read from remote repository.\n\n"
            "Please make sure you have the correct access rights\n"
            "and the repository exists.\n")
    assert _telling_line(said) == "Could not read from remote repository."


#: git as the test has it: every read of a file's content is noted, then the real git
NOTING_GIT = """#!/bin/sh
case " $* " in
*" cat-file "*) echo "$*" >> "{log}";;
esac
exec {git} "$@"
"""


@pytest.mark.slow
def test_a_file_too_large_to_be_a_config_is_never_read_and_said_apart(
        tmp_path: Path, config_file, cli) -> None:
    real_git = shutil.which("git")
    assert real_git is not None
    reads = tmp_path / "cat-file.log"
    git = tmp_path / "git"
    git.write_text(NOTING_GIT.format(log=reads, git=real_git))
    git.chmod(0o755)
    upstream = GitRepo(tmp_path / "fleet")
    upstream.commit({"hosts/web/nginx.nix": NGINX,
                     "db/shop.sql": "CREATE TABLE shop_orders (id serial, total numeric);\n"},
                    "fleet", when=time.time() - 3600)
    config_file(f'ai_name = "hal"\nconfig_repo = "{upstream.path}"\n'
                f'state_dir = "{tmp_path / "state"}"\n[programs]\ngit = "{git}"\n')
    code, out, err = cli("configs", "--sync")
    assert code == 0, err
    # the schema became a dump of the shop's rows: 300 KiB, over what a config is
    rows = "".join(f"INSERT INTO shop_orders VALUES ({i}, {i}.50);\n" for i in range(7000))
    upstream.commit({"db/shop.sql": rows}, "dump the orders", when=time.time())
    dump = upstream.git("rev-parse", "HEAD:db/shop.sql").strip()

    code, out, err = cli("configs", "--sync")

    assert code == 0, err
    assert "2 file(s), 0 indexed again (0 chunks), 1 too large to index, 0 removed" in out
    assert "not indexed: db/shop.sql: over 256 KiB, data rather than a config (not read)" in err
    # never read: a 400 MB dump was read whole, 800 MB of memory, at every sync it changed
    assert reads.read_text().count("cat-file") == 2 and dump not in reads.read_text()
    # what was indexed of the file before is gone with it
    code, out, err = cli("configs", "--json", "-n", "5", "the shop's orders table")
    assert code == 0, err
    assert {hit["path"] for hit in json.loads(out)} == {"hosts/web/nginx.nix"}
    # not looked at again until it changes
    code, out, err = cli("configs", "--sync", "--json")
    assert code == 0, err
    assert json.loads(out)["sync"]["too_large"] == []


#: a NixOS module whose last line ("}") fell just past a chunk's 40 lines
POSTGRES_LONG = "\n".join(
    ["{ config, pkgs, ... }:", "{", "  services.postgresql = {", "    enable = true;",
     "    package = pkgs.postgresql_15;", "    settings = {"]
    + [f"      setting_{i} = {i};" for i in range(33)] + ["  };", "}"]) + "\n"
#: a hosts file of one line longer than a chunk, between its braces
HOSTS = ("{\n  networking.hosts = { "
         + " ".join(f'"10.0.{i // 250}.{i % 250}" = [ "node{i}.lan" ];' for i in range(80))
         + " };\n}\n")


def test_a_chunk_is_never_a_brace_alone() -> None:
    from ai_sysadmin.knowledge.config_repo import chunk_lines

    lines = POSTGRES_LONG.splitlines()
    assert list(chunk_lines(lines)) == [(1, 41)]
    # a long line stays with the lines that say what it is
    assert len(HOSTS.splitlines()[1]) > 2400
    assert list(chunk_lines(HOSTS.splitlines())) == [(1, 3)]
    # a closing brace cut off after a long file's own chunks joins the chunk before it
    many = [f"  option{i} = {i};" for i in range(80)] + ["  };", "}"]
    ranges = list(chunk_lines(many))
    assert ranges[-1][1] == 82 and ranges[-1][0] < 81
    assert [n for a, b in ranges for n in range(a, b + 1)] == list(range(1, 83))
    # a banner of lines without words joined them all, and the chunk after it: one chunk
    # of 2016 lines, 126 KB, embedded as its first words, the banner
    banner = ["# " + "-=" * 30] * 2000 + [f"option{i} = {i};" for i in range(100)]
    ranges = list(chunk_lines(banner))
    assert max(b - a + 1 for a, b in ranges) <= 60
    assert [n for a, b in ranges for n in range(a, b + 1)] == list(range(1, 2101))


@pytest.mark.slow
def test_a_search_finds_content_not_the_brace_that_ends_a_file(
        tmp_path: Path, config_file, cli) -> None:
    """The `}` that ended postgres.nix one line past its first chunk was a chunk of its own,
    embedded as little more than the path: the first hit for any search of that file."""
    upstream = GitRepo(tmp_path / "fleet")
    upstream.commit({"postgres.nix": POSTGRES_LONG, "hosts.nix": HOSTS}, "fleet",
                    when=time.time() - 3600)
    config_file(f'ai_name = "hal"\nconfig_repo = "{upstream.path}"\n'
                f'state_dir = "{tmp_path / "state"}"\n')
    assert cli("configs", "--sync")[0] == 0
    for query in ("postgresql database settings", "hosts"):
        code, out, err = cli("configs", "--json", "-n", "5", query)
        assert code == 0, err
        hits = json.loads(out)
        assert all(any(c.isalnum() for c in hit["text"]) for hit in hits), hits
    assert [(h["path"], h["start_line"], h["end_line"]) for h in hits] == [
        ("hosts.nix", 1, 3), ("postgres.nix", 1, 41)]


#: an escape sequence in a file's name: sets the terminal's title, clears the screen
EVIL = "evil\x1b]0;PWNED\x07\x1b[2J"


@pytest.mark.slow
def test_a_file_that_is_not_utf8_text_is_said_not_counted_indexed(
        tmp_path: Path, config_file, cli) -> None:
    """Latin-1, UTF-16, binary: counted as indexed (with no chunk), never named, never found,
    and never tried again. Named once, by a name without its escapes: a repository's paths
    are text others wrote."""
    upstream = GitRepo(tmp_path / "fleet")
    (upstream.path / "latin.conf").write_bytes(b"listen_addresses = '*' # \xe9t\xe9 latin1\n")
    (upstream.path / "utf16.conf").write_bytes("redis maxmemory 2gb\n".encode("utf-16"))
    (upstream.path / f"{EVIL}.bin").write_bytes(b"\x00\x01\x02redis")
    upstream.git("add", "--", "latin.conf", "utf16.conf", f"{EVIL}.bin")
    upstream.commit({"configuration.nix": NGINX}, "fleet", when=time.time() - 3600)
    config_file(f'ai_name = "hal"\nconfig_repo = "{upstream.path}"\n'
                f'state_dir = "{tmp_path / "state"}"\n')

    code, out, err = cli("configs", "--sync")
    assert code == 0, err
    assert "4 file(s), 1 indexed again (1 chunks), 3 not UTF-8 text, 0 removed" in out, out
    not_text = ("not UTF-8 text (a binary file, or another encoding such as Latin-1 or "
                "UTF-16)")
    assert err.splitlines() == [f"not indexed: {path}: {not_text}"
                                for path in ("evil.bin", "latin.conf", "utf16.conf")], err
    # said once: not read again until it changes
    code, out, err = cli("configs", "--sync", "--json")
    synced = json.loads(out)["sync"]
    assert code == 0 and (synced["indexed"], synced["not_text"]) == ([], []), err
    upstream.commit({"latin.conf": "listen_addresses = '*' # été\n"}, "utf-8 now",
                    when=time.time())
    code, out, err = cli("configs", "--sync", "--json")
    synced = json.loads(out)["sync"]
    assert code == 0 and (synced["indexed"], synced["not_text"]) == (["latin.conf"], []), err


@pytest.mark.slow
def test_a_search_shows_chunks_masked_and_paths_without_escapes(
        tmp_path: Path, config_file, cli) -> None:
    """A chunk an older version stored with weaker masking (indexed again only when its file
    changes) was shown as stored, where --json masked it; a file's name reached the terminal
    with its escapes."""
    upstream = GitRepo(tmp_path / "fleet")
    upstream.commit({f"{EVIL}.nix": "{ services.redis.servers.cache.enable = true; }\n",
                     "configuration.nix": NGINX}, "fleet", when=time.time() - 3600)
    config_file(f'ai_name = "hal"\nconfig_repo = "{upstream.path}"\n'
                f'state_dir = "{tmp_path / "state"}"\n')
    assert cli("configs", "--sync")[0] == 0
    code, out, err = cli("configs", "-n", "5", "redis cache server")
    assert code == 0, err
    assert "evil.nix:1-1" in out and "\x1b" not in out and "\x07" not in out

    from ai_sysadmin.knowledge.models import ConfigChunk

    recall = KnowledgeRecall(load_settings().settings)
    assert recall.repo is not None
    recall._with_kb(lambda kb: kb.add_config_chunks([ConfigChunk(
        path="mail.nix", start_line=1, end_line=4, commit=recall.repo.head(),
        repo=recall.repo.key, text='{ config, ... }:\n{\n  services.postfix.relayHost = '
        '"smtp.example.org";\n  smtp password = "hunter2hunter2"; token: '
        'ghp_abcdefghijklmnopqrstuvwxyz0123456789')]))
    code, out, err = cli("configs", "-n", "1", "postfix smtp relay host")
    assert code == 0, err
    assert "mail.nix:1-4" in out
    assert "hunter2hunter2" not in out and "ghp_abcdef" not in out, out
    assert '      4    smtp password = "[redacted]"; token: [redacted]' in out, out
    code, out, err = cli("configs", "-n", "1", "--json", "postfix smtp relay host")
    assert "mail.nix" in out and "hunter2hunter2" not in out


@pytest.mark.slow
def test_a_local_repository_another_user_owns_says_why_and_what_to_do(
        tmp_path: Path, config_file, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """/etc/nixos is root's, the daemon's user another: git's cause ("detected dubious
    ownership") was cut off, and its hint (`git config --global`) was a person's."""
    import os
    import subprocess

    from tests.support.needs_root import needs_root

    needs_root("a repository given to another user")
    upstream = GitRepo(tmp_path / "nixos")
    upstream.commit({"configuration.nix": NGINX}, "nixos", when=time.time() - 3600)
    for root, dirs, files in os.walk(upstream.path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.lchown(name, 65534, 65534)
    tmp_path.chmod(0o755)
    monkeypatch.delenv("SUDO_UID", raising=False)  # git takes root for its sudo caller
    system = tmp_path / "gitconfig"
    monkeypatch.setenv("GIT_CONFIG_SYSTEM", str(system))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config_file(f'ai_name = "hal"\nconfig_repo = "{upstream.path}"\n'
                f'state_dir = "{tmp_path / "state"}"\n')

    code, out, err = cli("configs", "--sync")
    dot_git = f"{upstream.path}/.git"
    assert code == 2 and err.startswith(
        f"error: git fetch of {upstream.path} failed: detected dubious ownership in "
        f"repository at '{dot_git}': "), err
    command = f"git config --system --add safe.directory {dot_git}"
    assert f"`{command}`" in err and "programs.git.config.safe.directory" in err
    assert f"HOME={tmp_path / 'home'}" in err and "check config_repo" not in err
    # what it says works
    subprocess.run(command.split(), check=True, env=os.environ)
    code, out, err = cli("configs", "--sync")
    assert code == 0 and "1 indexed again" in out, err
