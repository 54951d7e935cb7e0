"""``{name}-systems`` without any remote host reachable: the inventory's bookkeeping."""

from __future__ import annotations

import json

from ai_sysadmin.config import short_hostname
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.snapshot import JournalEntry, Snapshot
from ai_sysadmin.orchestrator.checker import HostChecker
from ai_sysadmin.store import HostStore


def names(cli, *extra: str) -> dict[str, str]:
    code, out, _ = cli("systems", "list", "--json", *extra)
    assert code == 0
    return {r["name"]: r["status"] for r in json.loads(out)}


def test_add_remove_and_the_local_host(cli) -> None:
    assert names(cli) == {short_hostname(): "managed"}
    code, out, _ = cli("systems", "add", "ops@web1:2222")
    assert code == 0 and "web1 (ops@web1:2222) is managed now" in out
    assert names(cli)["web1"] == "managed"
    code, _, _ = cli("systems", "remove", "web1")
    assert code == 0 and "web1" not in names(cli)
    assert names(cli, "--all")["web1"] == "removed"
    code, _, err = cli("systems", "add", "web1;reboot")
    assert code == 2 and "is not 'host'" in err


def test_config_hosts_can_only_be_removed_in_the_config(cli, config_file) -> None:
    path = config_file('remote_systems = ["db1", {host = "10.9.0.2", name = "db2"}]\n')
    assert {"db1", "db2"} <= set(names(cli))
    code, _, err = cli("systems", "remove", "db2")
    assert code == 2 and str(path) in err


def test_hosts_seen_in_the_journal_wait_to_be_accepted(cli, settings, store) -> None:
    checker = HostChecker(LocalTransport("logserver"), settings, store)
    entries = [JournalEntry(f"c{i}", 1.0, 4, "hi", hostname=h)
               for i, h in enumerate(["logserver", "web7.lab", "web8", "web7"])]
    checker.discover_hosts(Snapshot("logserver", 1.0, journal=entries))
    hosts = HostStore(store.db)
    assert {h["name"]: h["status"] for h in hosts.all()} == {"web7": "discovered",
                                                             "web8": "discovered"}
    assert names(cli, "--all")["web7"] == "discovered" and "web7" not in names(cli)
    code, out, _ = cli("systems", "accept", "web7")
    assert code == 0 and names(cli)["web7"] == "managed"
    assert any(e["action"] == "host.discovered" for e in store.audit_log())


def test_refresh_checks_the_local_host(cli) -> None:
    code, out, _ = cli("systems", "refresh", "--json")
    (row,) = json.loads(out)
    assert code == 0 and row["name"] == short_hostname() and row["reachable"] is True
