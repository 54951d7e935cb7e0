"""The history a check and the notifications consult grows for a month (events, messages) and
for good (fixes): what they ask of it at each check and each dispatch is read by index, never
whole. Read whole, 200 resolutions over 30,000 events of history took 7.8 s (38 s over
200,000), in the check's write transaction, every other writer waiting on it. Each statement
a real store ran is asked for its plan: none scans those tables."""

from __future__ import annotations

import re
from pathlib import Path

from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.notify import Notifier
from ai_sysadmin.store import ActionStore, Database, IncidentStore
from tests.notify.conftest import failed, make_settings, unreachable
from tests.notify.servers import GotifyServer
from tests.notify.test_storm import _cut_off_while_verified, _restart

#: the tables that grow with time
GROWING = ("notify_events", "notify_messages", "actions")
_NOT_ALIASES = {"WHERE", "SET", "JOIN", "ON", "ORDER", "GROUP", "LIMIT", "LEFT", "AS",
                "VALUES", "WHEN", "AND", "INNER"}


def _scans(conn, statements: list[str]) -> set[tuple[str, str]]:
    """(plan line, statement) for each statement that reads a growing table whole."""
    found = set()
    for sql in statements:
        if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "WITH")):
            continue
        names = {t for t in GROWING if t in sql}
        for table in list(names):
            names |= {a for a in re.findall(rf"\b{table}\s+(?:AS\s+)?(\w+)", sql)
                      if a.upper() not in _NOT_ALIASES}
        if not names:
            continue
        for row in conn.execute("EXPLAIN QUERY PLAN " + sql):
            if (m := re.match(r"SCAN (\w+)", row[3])) and m.group(1) in names:
                found.add((row[3], sql[:300]))
    return found


def test_a_check_and_a_dispatch_read_the_growing_history_by_index(tmp_path: Path) -> None:
    with GotifyServer("tok") as gotify:
        settings = make_settings(tmp_path, gotify, token="tok")
        store = IncidentStore(Database(settings.db_path))
        notifier = Notifier(settings, store.db)
        ran: list[str] = []
        store.db.conn.set_trace_callback(ran.append)
        # incidents open, a fix of one waits, runs, a stop cuts its verification short; a
        # host stops answering; all of it dispatched; then all of it clears
        for k in range(3):
            store.record_check(f"web{k}", [failed(f"web{k}", "nginx.service",
                                                  Severity.WARNING)], {"failed_unit"})
        store.record_check("db1", [unreachable("db1")], {"host_unreachable"})
        notifier.dispatcher.dispatch()
        actions, action = _restart(store, store.incidents()[0], "pending")
        notifier.dispatcher.dispatch()
        actions.move(action, "approved", "alice", "yes")
        _cut_off_while_verified(actions, action)
        for k in range(3):
            store.record_check(f"web{k}", [], {"failed_unit"})
        store.record_check("db1", [], {"host_unreachable"})
        notifier.dispatcher.dispatch()
        store.db.conn.set_trace_callback(None)
        assert ActionStore(store.db).get(action).state == "succeeded"
        assert any("notify_events" in sql for sql in ran)
        assert _scans(store.db.conn, ran) == set()
