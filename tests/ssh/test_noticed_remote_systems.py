"""``systems add`` tries the host it adds, over real SSH, and says what it answered (managing it
all the same); ``systems remove`` cut short leaves the host managed or removed, never half."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import ActionStore, Database, HostStore, IncidentStore
from tests.conftest import BIN

from .conftest import SshHost, wait_until
from .test_refusing_hosts import odd_host  # noqa: F401 - the fixture
from .test_remote_approve import _cli


@pytest.fixture
def bare(odd_host: SshHost, known_hosts: Path, tmp_path: Path) -> Path:  # noqa: F811
    """A config that manages no remote host, with the key and known_hosts for odd_host."""
    odd_host.write_known_hosts(known_hosts)
    path = tmp_path / "config.toml"
    path.write_text(
        f'ai_name = "hal"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[ssh]\nknown_hosts = "{known_hosts}"\nkey_files = ["{odd_host.client.private}"]\n'
        'use_ssh_config = false\nconnect_timeout = 3\n')
    return path


def _managed(config: Path) -> set[str]:
    return {r["name"] for r in json.loads(_cli(config, "systems", "list", "--json").stdout)}


def test_adding_a_host_says_what_it_answered_and_manages_it_anyway(
    bare: Path, odd_host: SshHost  # noqa: F811
) -> None:
    addr = odd_host.address
    done = _cli(bare, "systems", "add", f"root@{addr}", "--name", "good")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout.splitlines()[1] == "good answered and ran a command"
    assert _cli(bare, "systems", "remove", "good").returncode == 0

    # one machine per name: each account is tried once the one before is removed
    tries = {
        "port": (f"root@{addr}:2", f"warning: no command ran on port: connection refused "
                                   f"(root@{addr}:2)"),
        "login": (f"nobody-here@{addr}", "warning: no command ran on login: authentication "
                                         "as 'nobody-here' failed at "),
        "shell": (f"nolog@{addr}", "warning: shell answered but runs no command: the login "
                                   "shell of nolog refuses to run commands"),
    }
    for name, (target, said) in tries.items():
        done = _cli(bare, "systems", "add", target, "--name", name)
        assert done.returncode == 0, done.stderr
        assert f"{name} ({target}) is managed now" in done.stdout
        assert done.stderr.startswith(said), done.stderr
        assert f"it is managed all the same; `systems refresh {name}` tries again" \
            in done.stderr
        assert name in _managed(bare)
        assert _cli(bare, "systems", "remove", name).returncode == 0

    offline = _cli(bare, "systems", "add", "root@127.0.0.1:1", "--no-probe", "--name", "later")
    assert (offline.returncode, offline.stderr) == (0, "")
    assert offline.stdout.splitlines()[1] == "later was not contacted (--no-probe)"


@pytest.fixture
def silent_queue() -> Iterator[int]:
    """A port on 127.0.0.1 that takes connections and never answers: a Redis queue that
    hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_a_remove_cut_short_leaves_no_half_removed_host(
    tmp_path: Path, silent_queue: int
) -> None:
    state = tmp_path / "state"
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\nstate_dir = "{state}"\n'
                      f'[queue]\nurl = "redis://127.0.0.1:{silent_queue}/0"\n')
    assert _cli(config, "systems", "add", "web1", "--no-probe").returncode == 0
    store = IncidentStore(Database(state / "state.db"))
    finding = Finding("web1", "failed_unit", "nginx.service", Severity.CRITICAL, "nginx failed")
    (incident_id,) = store.record_check("web1", [finding], {"failed_unit"}).opened
    fix = ActionStore(store.db).create(
        incident_id=incident_id, proposal_id=None, host="web1", kind="restart_unit",
        params={"unit": "nginx.service"}, subject="nginx.service", risk="low", plan={},
        outcome="approval", reason="needs a person", state="pending")

    remove = subprocess.Popen([str(BIN), "systems", "remove", "web1"],
                              env={**os.environ, "AI_SYSADMIN_CONFIG": str(config)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        hosts = HostStore(store.db)
        wait_until(lambda: hosts.get("web1")["status"] == "removed", "web1 removed")
        # the person waiting on the hung queue gives up
        remove.send_signal(signal.SIGINT)
        out, err = remove.communicate(timeout=30)
    finally:
        if remove.poll() is None:
            remove.kill()
            remove.wait()
    assert remove.returncode == 130, (out, err)
    assert err.splitlines()[-1] == "interrupted", err  # said, as in every command
    # removed is removed in full: nothing of it is left open or approvable
    assert store.get(incident_id).state == "closed"
    assert ActionStore(store.db).get(fix.id).state == "not_needed"
