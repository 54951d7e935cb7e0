"""``approve approve N --dry-run`` says what the real approve would do, also when that is
nothing: the rehearsal applies the same checks."""

from __future__ import annotations

import asyncio

from ai_sysadmin.config import short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.store import ActionStore


def test_a_dry_run_approve_says_it_would_run_nothing_where_approve_runs_nothing(
        cli, config_file, settings, store) -> None:
    host = short_hostname()
    executor = Executor(settings, store, {host: LocalTransport(host)})
    waiting = asyncio.run(executor.propose(host, "vacuum_journal", {"max_size": "500M"}))
    rejected = asyncio.run(executor.propose(host, "vacuum_journal", {"max_size": "600M"}))
    executor.reject(rejected.id, "bob", "no")

    code, out, _ = cli("approve", "approve", str(rejected.id), "--dry-run")
    assert code == 1 and "would run:" not in out and "journalctl" not in out
    assert f"would not run: approve would run nothing: action {rejected.id} is rejected" in out

    config_file('autonomy_level = "observe"\n')
    code, out, _ = cli("approve", "approve", str(waiting.id), "--dry-run")
    assert code == 1 and "would run:" not in out
    assert "approve would refuse it: the autonomy level is observe" in out
    assert "nothing ran; it is still pending" in out
    assert ActionStore(store.db).get(waiting.id).state == "pending"

    config_file("")  # at suggest the same action would run: the rehearsal says exactly what
    code, out, _ = cli("approve", "approve", str(waiting.id), "--dry-run")
    assert code == 0 and "would run:" in out and "--vacuum-size=500M" in out
