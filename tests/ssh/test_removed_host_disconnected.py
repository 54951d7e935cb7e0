"""A host removed with `systems remove` while the daemon runs is let go: the daemon's SSH
connection to it ends, as a host nobody manages should see no login of ours held open for as
long as the daemon runs (weeks), nor its sshd a session process for it; and what the daemon
saw of it goes with it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

from ai_sysadmin.config import load_settings
from ai_sysadmin.knowledge.context import KnowledgeRecall
from ai_sysadmin.llm.backends import make_backend
from ai_sysadmin.llm.client import DirectLLM
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.daemon import Daemon
from ai_sysadmin.orchestrator.investigator import Investigator
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import Database, HostStore, IncidentStore
from tests.support.polling import until
from tests.support.scripted_model import ScriptedModel, Step, call, say

from .conftest import Hosts


def test_a_host_removed_while_the_daemon_runs_keeps_no_ssh_connection_of_it(
        ssh_hosts: Hosts, known_hosts: Path, config_file: Callable[[str], Path],
        cli: Callable[..., tuple[int, str, str]]) -> None:
    netlab = ssh_hosts.netlab
    netns, address = netlab.namespace()
    web = netlab.sshd("web9-removed", netns, [address])
    kept = ssh_hosts.beta
    web.write_known_hosts(known_hosts, kept)
    config_file('ai_name = "hal"\ncheck_interval = 1\n'
                f'[ssh]\nknown_hosts = "{known_hosts}"\nkey_files = ["{web.client.private}"]\n'
                'user = "root"\nuse_ssh_config = false\nconnect_timeout = 5\n'
                "[agent]\ninvestigate = false\n[knowledge]\nenabled = false\n")
    settings = load_settings().settings
    store = IncidentStore(Database(settings.db_path))
    for name, where in (("web9", address), ("kept", kept.address)):
        assert cli("systems", "add", "--no-probe", f"root@{where}", "--name", name)[0] == 0
    kept_before = set(kept.session_pids())

    async def go() -> tuple[list[int], bool]:
        daemon = Daemon(Runtime(settings, store))
        task = asyncio.create_task(daemon.run())
        try:
            await until(lambda: HostStore(store.db).get("web9")["last_check"] is not None,
                        what="a check of web9")
            assert web.session_pids(), "the daemon keeps a connection to a host it checks"
            done = await asyncio.to_thread(cli, "systems", "remove", "web9")
            assert done[0] == 0, done
            await until(lambda: not web.session_pids(), timeout=30,
                        what="the removed host's sshd to see the daemon's connection end")
            # nor does it keep what it saw of it: a daemon runs for months, and each host
            # ever removed held some hundreds of KiB of snapshots and parses
            gone = daemon.runtime.checkers["web9"]
            await until(lambda: gone.seen is None and gone.previous is None, timeout=30,
                        what="the removed host's snapshots let go")
            assert "web9" not in daemon.failures._hosts
            # the hosts still managed are still reached
            checked = HostStore(store.db).get("kept")["last_check"]
            await until(lambda: HostStore(store.db).get("kept")["last_check"] != checked,
                        what="a check of the host still managed")
            return web.session_pids(), bool(set(kept.session_pids()) - kept_before)
        finally:
            daemon.stop_event.set()
            await asyncio.wait_for(task, 30)

    left, kept_connected = asyncio.run(go())
    assert left == []
    assert kept_connected


def test_a_host_removed_while_its_investigation_waits_for_the_model_is_not_logged_into_again(
        ssh_hosts: Hosts, known_hosts: Path, config_file: Callable[[str], Path],
        cli: Callable[..., tuple[int, str, str]]) -> None:
    """The model's answer, which came after `systems remove` and the daemon let the host go,
    calls a tool on it: that opened a new login to a host nobody manages (another machine at
    that address, maybe), which nothing ever closed, the host's loop having ended."""
    netlab = ssh_hosts.netlab
    netns, address = netlab.namespace()
    web = netlab.sshd("web9-investigated", netns, [address])
    web.write_known_hosts(known_hosts)
    removed = threading.Event()

    def answer_once_removed(request: dict[str, object]) -> Step:
        # the model thinks until the host is gone: its answer is in flight meanwhile
        assert removed.wait(60), "the host was never removed"
        return call("failed_units")

    with ScriptedModel([answer_once_removed], then=say("DIAGNOSIS: nginx failed.")) as model:
        config_file('ai_name = "hal"\n'
                    f'[ssh]\nknown_hosts = "{known_hosts}"\nkey_files = ["{web.client.private}"]\n'
                    'user = "root"\nuse_ssh_config = false\nconnect_timeout = 5\n'
                    "[knowledge]\nenabled = false\n"
                    f'[llm]\nbackend = "openai"\nurl = "{model.url}"\nmodel = "scripted"\n')
        settings = load_settings().settings
        store = IncidentStore(Database(settings.db_path))
        assert cli("systems", "add", "--no-probe", f"root@{address}", "--name", "web9")[0] == 0
        (incident_id,) = store.record_check(
            "web9", [Finding("web9", "failed_unit", "nginx.service", Severity.CRITICAL,
                             "nginx.service has failed", ("nginx.service: active=failed",))],
            {"failed_unit"}).opened

        async def go() -> tuple[int, list[int]]:
            runtime = Runtime(settings, store)
            await runtime.transports["web9"].run(["true"])  # the daemon's checks' login
            investigator = Investigator(settings, store, runtime.transports,
                                        lambda _: DirectLLM(make_backend(settings.llm)),
                                        knowledge=KnowledgeRecall(settings),
                                        reach=runtime.reach)
            try:
                assert investigator.schedule(incident_id)
                await until(lambda: model.requests, what="the model asked")
                done = await asyncio.to_thread(cli, "systems", "remove", "web9")
                assert done[0] == 0, done
                await runtime.let_go("web9")  # what the daemon does once its loop sees it
                logins = web.accepted_logins()
                removed.set()
                await asyncio.wait_for(
                    asyncio.gather(*investigator.running.values(), return_exceptions=True), 60)
                # let go, its session's sshd process ends a moment later (on a loaded suite,
                # after the investigation): one that stays is a login left open
                await until(lambda: not web.session_pids(), timeout=15,
                            what="the removed host's SSH session to end")
                return logins, web.session_pids()
            finally:
                removed.set()
                await investigator.close()
                await runtime.close()

        logins, sessions = asyncio.run(go())
    assert web.accepted_logins() == logins == 1
    assert sessions == []
    # its incident closed by the removal, the model is asked no more
    assert len(model.requests) == 1
    assert store.get(incident_id).state == "closed"
