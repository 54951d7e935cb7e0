"""Two syncs of config_repo at once (the daemon's at its start and a person's `configs
--sync`, or two people's): real processes on one state directory, a real git repository and a
real ChromaDB. The one that fetched an older commit must not save its index over the newer
one's: a file deleted upstream would be found again, as if it were still the fleet's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import BIN
from tests.knowledge.gitrepo import GitRepo
from tests.support.polling import poll_until

#: git as the test has it: in a process started with HOLD_AT set, the first read of a file's
#: content (the index's chunking, after the fetch) says so and waits for the test's ``go`` (a
#: deadline, not a pause); then, and in every other process, the real git
GIT = """#!/bin/sh
case " $* " in
*" cat-file "*)
  if [ -n "$HOLD_AT" ] && [ ! -e "$HOLD_AT/arrived" ]; then
    : > "$HOLD_AT/arrived"
    n=0
    until [ -e "$HOLD_AT/go" ]; do n=$((n+1)); [ "$n" -gt 2400 ] && exit 3; sleep 0.05; done
  fi;;
esac
exec {git} "$@"
"""

FTP = "{ ... }:\n{\n  services.vsftpd.enable = true;  # the legacy FTP server for uploads\n}\n"
NGINX = "{ ... }:\n{\n  services.nginx.enable = true;  # the shop's web server\n}\n"


@pytest.mark.slow
def test_a_sync_that_fetched_first_does_not_bring_back_a_file_a_later_sync_dropped(
        tmp_path: Path, config_file) -> None:  # type: ignore[no-untyped-def]
    real_git = shutil.which("git")
    assert real_git is not None
    git = tmp_path / "git"
    git.write_text(GIT.format(git=real_git))
    git.chmod(0o755)
    upstream = GitRepo(tmp_path / "fleet")
    upstream.commit({"hosts/ftp.nix": FTP, "hosts/web.nix": NGINX}, "fleet",
                    when=time.time() - 3600)
    config_file(f'ai_name = "hal"\nconfig_repo = "{upstream.path}"\n'
                f'state_dir = "{tmp_path / "state"}"\n[programs]\ngit = "{git}"\n')
    hold = tmp_path / "hold"
    hold.mkdir()

    def sync(**env: str) -> subprocess.Popen[str]:
        return subprocess.Popen([str(BIN), "configs", "--sync"], env={**os.environ, **env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = sync(HOLD_AT=str(hold))  # the daemon's, say: it fetched the fleet with ftp.nix
    second: subprocess.Popen[str] | None = None
    try:
        poll_until((hold / "arrived").exists, what="the first sync to fetch and index")
        upstream.commit({"hosts/ftp.nix": None}, "the FTP server is gone", when=time.time())
        said = tmp_path / "second.err"
        with said.open("w") as stderr:
            second = subprocess.Popen([str(BIN), "configs", "--sync"], env=dict(os.environ),
                                      stdout=subprocess.PIPE, stderr=stderr, text=True)
        # the second sync ends (nothing holds it), or says it waits for the first
        poll_until(lambda: second.poll() is not None or "waiting" in said.read_text(),
                   what="the second sync to end or to wait")
    finally:
        (hold / "go").write_text("")
        answers = [(p.wait(timeout=300), p.communicate()) for p in (first, second) if p]
    assert [code for code, _ in answers] == [0, 0], answers
    found = subprocess.run([str(BIN), "configs", "legacy FTP server for uploads", "--json"],
                           capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert found.returncode == 0, found.stderr
    assert {hit["path"] for hit in json.loads(found.stdout)} == {"hosts/web.nix"}
    # the person who synced second was told why their sync took its time
    waited = said.read_text()
    assert "config_repo is being synced by pid" in waited and "waiting for it to end" in waited
