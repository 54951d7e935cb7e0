"""A check of a host still running when the host is removed and added again (`systems remove`,
`systems add` of the same name: another machine, maybe) stores nothing: its journal cursor,
entries, incidents and OS are the removed machine's. A real sshd whose session is held by a
FIFO the test opens, so the check stays in flight for as long as the test needs."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_sysadmin.config import load_settings
from ai_sysadmin.orchestrator.daemon import Daemon
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import Database, HostStore, IncidentStore
from ai_sysadmin.store.incidents import Incident
from tests.support.polling import until

from .conftest import Hosts

#: the host's sshd runs every session through this: while HOLD exists, a session (the check
#: script's shell) says it is held and waits for a writer of the FIFO to come and go
GATE = """#!/bin/sh
if [ -e {hold} ]; then
    : > {held}
    cat {fifo} > /dev/null
fi
exec "$SHELL" -c "$SSH_ORIGINAL_COMMAND"
"""


def _release(fifo: Path) -> None:
    """The held session goes on: a writer opens the FIFO (once the session reads it) and
    closes it."""
    os.close(os.open(fifo, os.O_WRONLY))


def test_a_check_in_flight_when_its_host_is_added_again_stores_nothing(
        ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path,
        config_file: Callable[[str], Path], cli: Callable[..., tuple[int, str, str]],
        caplog: pytest.LogCaptureFixture) -> None:
    hold, held, fifo = tmp_path / "hold", tmp_path / "held", tmp_path / "fifo"
    os.mkfifo(fifo)
    gate = tmp_path / "gate"
    gate.write_text(GATE.format(hold=hold, held=held, fifo=fifo))
    gate.chmod(0o755)
    netlab = ssh_hosts.netlab
    netns, address = netlab.namespace()
    web = netlab.sshd("gated", netns, [address], extra=[f"ForceCommand {gate}"])
    web.write_known_hosts(known_hosts)
    config_file('ai_name = "hal"\njournal_follow = false\n'
                f'[ssh]\nknown_hosts = "{known_hosts}"\nkey_files = ["{web.client.private}"]\n'
                'user = "root"\nuse_ssh_config = false\nconnect_timeout = 5\n'
                "[agent]\ninvestigate = false\n[knowledge]\nenabled = false\n")
    settings = load_settings().settings
    store = IncidentStore(Database(settings.db_path))
    assert cli("systems", "add", "--no-probe", f"root@{address}", "--name", "web9")[0] == 0
    hold.touch()

    async def go() -> tuple[dict[str, object], list[Incident], dict[str, object]]:
        runtime = Runtime(settings, store)
        daemon = Daemon(runtime)
        try:
            check = asyncio.create_task(
                daemon.check_host(runtime.checkers["web9"], "interval"))
            await until(held.exists, what="the check of web9 held on the host")
            # the operator replaces web9 meanwhile: the name is another machine's now
            for args in (("remove", "web9"), ("add", "--no-probe", f"root@{address}",
                                               "--name", "web9")):
                done = await asyncio.to_thread(cli, "systems", *args)
                assert done[0] == 0, done
            hold.unlink()
            await asyncio.to_thread(_release, fifo)
            assert await asyncio.wait_for(check, 60)
            after_old = HostStore(store.db).get("web9")
            incidents = store.incidents(host="web9")
            assert store.journal_cursor("web9", "daemon") is None
            # the next check is the host's as added now: it is stored
            assert await daemon.check_host(runtime.checkers["web9"], "interval")
            return after_old, incidents, HostStore(store.db).get("web9")
        finally:
            await runtime.close()

    with caplog.at_level(logging.INFO, logger="ai_sysadmin.orchestrator"):
        after_old, incidents, after_new = asyncio.run(go())
    # nothing the old check saw landed on the host added again: `systems` shows it never
    # checked, with no OS; no incident of it is open; its journal is read from the start
    assert (after_old["last_check"], after_old["os"], after_old["reachable"]) == (None, None,
                                                                                  None)
    assert incidents == []
    assert store.db.conn.execute("SELECT COUNT(*) FROM journal_entries WHERE host='web9' AND "
                                 "at < ?", (after_old["first_seen"],)).fetchone()[0] == 0
    # said once
    dropped = [r.getMessage() for r in caplog.records
               if getattr(r, "event", None) == "check_dropped"]
    assert dropped == ["a check of web9 is dropped, nothing of it stored: web9 was added "
                       "again while it ran (`systems remove`, then `systems add`); what it "
                       "saw is the removed machine's"]
    # the host as added now is checked as usual
    assert after_new["last_check"] is not None and after_new["os"]
