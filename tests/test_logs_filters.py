"""`logs --host` and `logs --since`: one host's records, or the last hour's, out of a fleet's.

A daemon watching hundreds of hosts writes mostly other hosts' lines: without a filter, one
host's story meant `-n 1000000` (40 s, 415 MB) and grep.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time

import pytest

from ai_sysadmin import logs
from ai_sysadmin.config import Settings
from ai_sysadmin.executor import Executor
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import IncidentStore

#: small enough that 200 records fill the current file and several rotated ones
LIMIT = 3000


def _fleet_log(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the daemon's orchestrator channel holds after checks of h1..h4, in that order
    again and again, rotated several times."""
    monkeypatch.setattr(logs, "LOG_MAX_BYTES", LIMIT)
    logs.configure(settings.log_dir, "hal")
    orchestrator = logs.channel_logger("orchestrator")
    for n in range(200):
        host = f"h{n % 4 + 1}"
        orchestrator.info("checked %s (interval): check %d", host, n,
                          extra={"host": host, "event": "checked"})
    for handler in list(orchestrator.handlers):  # the daemon stopped
        orchestrator.removeHandler(handler)
        handler.close()


def test_logs_host_shows_only_that_hosts_newest_records_across_rotated_files(
        cli, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    _fleet_log(settings, monkeypatch)
    assert (settings.log_dir / "orchestrator.jsonl.2").exists()  # rotated more than once
    code, out, err = cli("logs", "orchestrator", "--host", "h2", "-n", "10", "--json")
    assert code == 0, err
    records = json.loads(out)
    # h2's checks are 1, 5, 9, ...: the newest 10, from three files, in order
    assert [r["host"] for r in records] == ["h2"] * 10
    numbers = [int(r["msg"].rsplit(" ", 1)[1]) for r in records]
    assert numbers == list(range(197 - 4 * 9, 198, 4))
    assert "check 161" not in (settings.log_dir / "orchestrator.jsonl").read_text()

    code, out, _ = cli("logs", "orchestrator", "--host", "h2", "-n", "2")
    assert code == 0
    assert out.splitlines()[-1].endswith("checked h2 (interval): check 197 host=h2 event=checked")
    assert len(out.splitlines()) == 2
    code, out, _ = cli("logs", "orchestrator", "--host", "h9")
    assert (code, out.strip()) == (0, "no orchestrator records of h9")


def test_logs_since_an_age_or_a_time(cli, settings: Settings) -> None:
    # the records of a daemon that ran a day ago and of one that runs now, in one file
    now = time.time()
    settings.log_dir.mkdir(parents=True)
    lines = [{"ts": now - 86400 + n, "level": "info", "name": "hal",
              "channel": "orchestrator", "msg": f"old {n}", "host": "h1"} for n in range(3)]
    lines += [{"ts": now - 60 + n, "level": "info", "name": "hal", "channel": "orchestrator",
               "msg": f"new {n}", "host": f"h{n + 1}"} for n in range(3)]
    (settings.log_dir / "orchestrator.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in lines) + "a line cut short {\"ts\n")

    def messages(*args: str) -> list[str]:
        code, out, err = cli("logs", "orchestrator", *args, "--json")
        assert code == 0, err
        return [r["msg"] for r in json.loads(out)]

    assert messages("--since", "1h") == ["new 0", "new 1", "new 2"]
    assert messages("--since", "2d") == ["old 0", "old 1", "old 2", "new 0", "new 1", "new 2"]
    assert messages("--since", "1h", "--host", "h2") == ["new 1"]
    assert messages("--since", "1h", "-n", "1") == ["new 2"]
    an_hour_ago = datetime.datetime.fromtimestamp(now - 3600).strftime("%Y-%m-%d %H:%M")
    assert messages("--since", an_hour_ago) == ["new 0", "new 1", "new 2"]
    assert messages("--since", "0s") == []
    code, out, _ = cli("logs", "orchestrator", "--since", "10s")
    assert code == 0 and out.startswith("no orchestrator records since 20"), out
    assert messages("--since", "1e308w") == messages("--since", "2d")  # since ever
    for wrong in ("yesterday", "10x", "-5m", "nanh", "10M"):
        code, out, err = cli("logs", "orchestrator", "--since", wrong)
        assert code == 2, (wrong, out)
        assert f"--since {wrong!r} is neither an age (30s, 10m, 2h, 3d, 1w) nor a local " \
               "date and time" in err, err


def test_logs_audit_host_shows_the_hosts_incidents_and_actions(
        cli, settings: Settings, store: IncidentStore) -> None:
    for host in ("web1", "db1"):
        finding = Finding(host, "disk_space", "/var", Severity.CRITICAL, "/var is 97% full")
        number = store.record_check(host, [finding], {"disk_space"}).opened[0]
        asyncio.run(Executor(settings, store, {}).propose(
            host, "vacuum_journal", {"max_size": "500M"}, incident_id=number))
        store.audit("operator", "host.added", f"host:{host}", "by hand")
        store.transition(number, "resolved", "operator", f"{host} cleaned up")
    code, out, err = cli("logs", "audit", "--host", "db1", "--json")
    assert code == 0, err
    said = [r["msg"] for r in json.loads(out)]
    assert said and all("web1" not in m for m in said), said
    assert any(m.startswith("operator host.added host:db1") for m in said), said
    assert any("incident:" in m and "db1 cleaned up" in m for m in said), said
    assert any(m.split()[2].startswith("action:") for m in said), said
    code, out, _ = cli("logs", "audit", "--host", "db1", "--since", "1h", "-n", "1")
    assert code == 0 and len(out.splitlines()) == 1
    assert cli("logs", "audit", "--host", "nowhere")[1].strip() == "no audit records of nowhere"


def test_logs_host_finds_a_hosts_fixes_by_their_action_and_incident(
        cli, settings: Settings, store: IncidentStore) -> None:
    """The executor's records name the action and the incident, not the host: `logs actions
    --host db1` found none of db1's fixes."""
    logs.configure(settings.log_dir, "hal")
    ids = {}
    for host in ("web1", "db1"):
        finding = Finding(host, "disk_space", "/var", Severity.CRITICAL, "/var is 97% full")
        number = store.record_check(host, [finding], {"disk_space"}).opened[0]
        ids[host] = asyncio.run(Executor(settings, store, {}).propose(
            host, "vacuum_journal", {"max_size": "500M"}, incident_id=number)).id
    code, out, err = cli("logs", "actions", "--host", "db1", "--json")
    assert code == 0, err
    records = json.loads(out)
    assert records and {r["action"] for r in records} == {ids["db1"]}, records
