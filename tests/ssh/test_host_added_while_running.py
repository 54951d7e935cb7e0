"""A host added with `systems add` while the daemon runs is checked, and its journal
followed, by that daemon within a check interval, without a restart; so is one removed while
it runs (its loop ended, its connection closed) and then added back. A daemon runs for
months: a host that waits for its restart is a host nobody watches."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings, load_settings
from ai_sysadmin.orchestrator.daemon import Daemon
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import Database, HostStore, IncidentStore
from tests.support.polling import poll_until, until

from .conftest import Hosts, SshHost

#: far more than a check interval (1 s here) and the look for new hosts: a daemon that
#: leaves a host to its restart fails here, not after the default 90 s
CHECKED_WITHIN = 30.0


def _settings(config_file: Callable[[str], Path], known_hosts: Path, web: SshHost) -> Settings:
    web.write_known_hosts(known_hosts)
    config_file('ai_name = "hal"\ncheck_interval = 1\njournal_follow = true\n'
                f'[ssh]\nknown_hosts = "{known_hosts}"\nkey_files = ["{web.client.private}"]\n'
                'user = "root"\nuse_ssh_config = false\nconnect_timeout = 5\n'
                "[agent]\ninvestigate = false\n[knowledge]\nenabled = false\n")
    return load_settings().settings


def _checked(store: IncidentStore, host: str) -> bool:
    """What `systems list` shows: the host's last check, reached."""
    row = HostStore(store.db).get(host)
    return row["last_check"] is not None and bool(row["reachable"])


def _said(caplog: pytest.LogCaptureFixture, event: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if getattr(r, "event", None) == event]


def test_a_host_added_while_the_daemon_runs_is_checked_and_followed_by_it(
        ssh_hosts: Hosts, known_hosts: Path, config_file: Callable[[str], Path],
        cli: Callable[..., tuple[int, str, str]], caplog: pytest.LogCaptureFixture) -> None:
    netns, address = ssh_hosts.netlab.namespace()
    web = ssh_hosts.netlab.sshd("web2-added", netns, [address])
    settings = _settings(config_file, known_hosts, web)
    store = IncidentStore(Database(settings.db_path))

    async def go() -> str:
        runtime = Runtime(settings, store)
        daemon = Daemon(runtime)
        task = asyncio.create_task(daemon.run())
        try:
            # the daemon is running, its own host checked, before web2 exists for it
            await until(lambda: runtime.local.host in {h["name"] for h in
                                                       HostStore(store.db).all()},
                        what="the daemon's first check")
            code, out, _ = await asyncio.to_thread(
                cli, "systems", "add", "--no-probe", f"root@{address}", "--name", "web2")
            assert code == 0, out
            await until(lambda: _checked(store, "web2"), timeout=CHECKED_WITHIN,
                        what="the running daemon's check of web2")
            assert web.session_pids(), "the daemon's connection to the host it checks"
            await until(lambda: any(f.transport.host == "web2" and f.started.is_set()
                                    for f in daemon.followers),
                        timeout=CHECKED_WITHIN, what="web2's journal followed")
            # a fix for web2 (the executor) and an investigation reach it as the others
            assert runtime.executor.transports["web2"] is runtime.transport("web2")
            return out
        finally:
            daemon.stop_event.set()
            await asyncio.wait_for(task, 30)

    with caplog.at_level(logging.INFO, logger="ai_sysadmin.service"):
        said = asyncio.run(go())
    assert "a running daemon within one check interval" in said
    assert _said(caplog, "host_managed") == [
        "web2 is managed now (`systems add`): checked from now on"]
    # the stop closes the connection of a host taken on; sshd's process for it ends a moment
    # after the client has closed its side
    poll_until(lambda: not web.session_pids(), timeout=10,
               what="the stop to close the connection of a host taken on")


def test_a_host_removed_while_the_daemon_runs_then_added_back_is_checked_again(
        ssh_hosts: Hosts, known_hosts: Path, config_file: Callable[[str], Path],
        cli: Callable[..., tuple[int, str, str]], caplog: pytest.LogCaptureFixture) -> None:
    netns, address = ssh_hosts.netlab.namespace()
    web = ssh_hosts.netlab.sshd("web9-back", netns, [address])
    settings = _settings(config_file, known_hosts, web)
    store = IncidentStore(Database(settings.db_path))
    assert cli("systems", "add", "--no-probe", f"root@{address}", "--name", "web9")[0] == 0

    async def go() -> None:
        daemon = Daemon(Runtime(settings, store))
        task = asyncio.create_task(daemon.run())
        try:
            await until(lambda: _checked(store, "web9"), what="a check of web9")
            done = await asyncio.to_thread(cli, "systems", "remove", "web9")
            assert done[0] == 0, done
            # its loop ended: the daemon let its connection go
            await until(lambda: not web.session_pids(), timeout=CHECKED_WITHIN,
                        what="the removed host's connection to end")
            done = await asyncio.to_thread(cli, "systems", "add", "--no-probe",
                                           f"root@{address}", "--name", "web9")
            assert done[0] == 0, done
            # `systems add` of a removed host clears what its last checks stored
            assert HostStore(store.db).get("web9")["last_check"] is None
            await until(lambda: _checked(store, "web9"), timeout=CHECKED_WITHIN,
                        what="the running daemon's check of web9 added back")
            assert web.session_pids(), "the daemon's connection to the host it checks"
        finally:
            daemon.stop_event.set()
            await asyncio.wait_for(task, 30)

    with caplog.at_level(logging.INFO, logger="ai_sysadmin.service"):
        asyncio.run(go())
    # said once each: the removal, then the host as added back
    assert [m for m in (r.getMessage() for r in caplog.records) if "web9 was" in m] == [
        "web9 was removed (`systems remove`): no longer checked nor followed",
        "web9 was added again (`systems add` after `systems remove`): checked afresh, as a "
        "new host"]
