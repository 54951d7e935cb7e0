"""An action whose time for an answer passed while nobody looked (no daemon ran to expire
it): every ``approve`` command shows it expired, as the daemon would have left it, and an
answer to it is final (exit 1), never the 2 that says it waits for approval again. The real
CLI, in child processes."""

from __future__ import annotations

import asyncio
import json
import time

from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import ActionStore, IncidentStore
from tests.conftest import BIN, run_program


def test_an_action_whose_time_passed_is_shown_expired_and_answers_to_it_are_final(
        settings: Settings, store: IncidentStore) -> None:
    host = short_hostname()
    finding = Finding(host, "disk_usage", "/var/log", Severity.WARNING, "89% full")
    incident_id = store.record_check(host, [finding], {"disk_usage"}).opened[0]
    action = asyncio.run(Executor(settings, store, {host: LocalTransport(host)}).propose(
        host, "vacuum_journal", {"max_size": "500M"}, incident_id=incident_id))
    assert action.state == "pending"
    assert store.get(incident_id).state == "awaiting_approval"
    with store.db.transaction() as conn:
        conn.execute("UPDATE actions SET expires_at=? WHERE id=?", (time.time() - 60, action.id))

    def approve(*args: str) -> tuple[int, str, str]:
        done = run_program(str(BIN), "approve", *args)
        return done.returncode, done.stdout, done.stderr

    # show settles what list settles: it said "pending" where list said nothing waited
    code, out, err = approve("show", str(action.id))
    assert code == 0, err
    assert f"state expired · risk low · incident {incident_id}" in out, out
    assert ActionStore(store.db).get(action.id).state == "expired"
    assert store.get(incident_id).state == "open"  # it waits for no approval now
    code, out, _ = approve("show", str(action.id), "--json")
    assert code == 0 and json.loads(out)["state"] == "expired"

    code, out, err = approve("approve", str(action.id))
    assert (code, out) == (1, ""), err
    assert err == f"error: action {action.id} is expired, not pending: approval TTL passed\n"
    code, out, _ = approve("approve", str(action.id), "--dry-run")
    assert code == 1 and "would not run" in out and "it is still expired" in out
    code, out, err = approve("reject", str(action.id))
    assert (code, out) == (1, ""), err
    assert err == f"error: action {action.id} is expired, too late to reject: approval TTL " \
        "passed\n"
