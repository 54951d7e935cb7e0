"""A host removed (`systems remove`) and added again under its name is another machine, maybe:
its journal is read as a new host's, from its newest entries, never from where the removed
machine's was read up to, and nothing kept of the removed machine's journal stays as its
own. Real systemd and journald in two labs, the real checker and store, the CLI in-process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.orchestrator.checker import CheckReport, HostChecker
from ai_sysadmin.store import Database, IncidentStore
from tests.support.polling import poll_until

pytestmark = pytest.mark.lab

OLD, NEW = "old machine: cannot reach the database", "new machine: disk controller reset"


def log(sandbox: Sandbox, message: str) -> None:
    sandbox.exec(["logger", "-t", "reborn", "-p", "user.err", message], check=True)


def read(report: CheckReport) -> list[str]:
    return [e.message for e in report.snapshot.journal or [] if e.identifier == "reborn"]


def kept(store: IncidentStore) -> list[str]:
    return [e["message"] for e in store.journal_entries("web9") if e["source"] == "reborn"]


def test_a_host_added_again_reads_its_journal_afresh_and_keeps_none_of_the_removed_ones(
        cli: Callable[..., tuple[int, str, str]], settings: Settings) -> None:
    assert cli("systems", "add", "--no-probe", "web9")[0] == 0
    store = IncidentStore(Database(settings.db_path))
    with Sandbox(hostname="web9") as new:
        # the machine that will be web9 logs an error before the old web9's last check
        log(new, NEW)
        with Sandbox(hostname="web9") as old:
            log(old, OLD)
            daemon = HostChecker(SandboxTransport(old), settings, store, consumer="daemon")
            poll_until(lambda: OLD in read(asyncio.run(daemon.check("interval"))), 60,
                       "the old machine's error to be read")
        assert kept(store) == [OLD]
        assert store.journal_cursor("web9", "daemon") is not None
        assert cli("systems", "remove", "web9")[0] == 0
        assert cli("systems", "add", "--no-probe", "web9")[0] == 0
        # the daemon started again, its first check of web9
        first = asyncio.run(HostChecker(SandboxTransport(new), settings,
                                        IncidentStore(Database(settings.db_path)),
                                        consumer="daemon").check("interval"))
    assert "journal" not in first.errors, first.errors
    assert read(first) == [NEW]
    assert kept(store) == [NEW]
