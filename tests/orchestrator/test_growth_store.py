"""The state database of a daemon that runs for months stays bounded under a noisy journal."""

from __future__ import annotations

import time

from ai_sysadmin.monitor.snapshot import JournalEntry
from ai_sysadmin.store import IncidentStore

#: the documented cap (store.incidents.JOURNAL_MAX_ENTRIES)
JOURNAL_MAX_ENTRIES = 100_000


def test_a_flooding_journal_keeps_at_most_the_cap_of_entries_per_host(
        store: IncidentStore) -> None:
    # a unit warning faster than a check reads: a full chunk of 2,000 at every check
    chunk, checks = 2000, JOURNAL_MAX_ENTRIES // 2000 + 10
    start = time.time() - checks
    for check in range(checks):
        entries = [JournalEntry(f"c{check}-{i}", start + check + i / chunk, 4,
                                f"flood {check}-{i}", "app.service") for i in range(chunk)]
        store.record_check("web1", [], set(), journal=entries, journal_cursor=f"c{check}")
    store.record_check("web2", [], set(), journal=[JournalEntry("q", time.time(), 3, "quiet")])
    count = store.db.conn.execute(
        "SELECT COUNT(*) FROM journal_entries WHERE host='web1'").fetchone()[0]
    assert count == JOURNAL_MAX_ENTRIES
    newest = store.db.conn.execute(
        "SELECT message FROM journal_entries WHERE host='web1' ORDER BY at DESC LIMIT 1"
    ).fetchone()[0]
    assert newest == f"flood {checks - 1}-{chunk - 1}"
    # another host's entries are not pushed out by the noisy one
    assert [e["message"] for e in store.journal_entries("web2")] == ["quiet"]
