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


def test_a_flood_of_long_lines_is_kept_at_a_bounded_size(store: IncidentStore) -> None:
    """journald keeps messages of up to 8 KiB whole on the host; the store keeps each one's
    first 2 KiB (evidence quotes 300 characters): at the cap a flood of such lines was
    800 MB a host."""
    long = "x" * 8000
    store.record_check("web1", [], set(), journal=[JournalEntry("c1", time.time(), 3, long)],
                       journal_cursor="c1")
    (kept,) = [e["message"] for e in store.journal_entries("web1")]
    assert kept == long[:2048]


def test_the_burst_window_keeps_the_start_of_each_long_line(tmp_path) -> None:
    """The checker's journal window (300 s of entries, for the burst rule) keeps what the
    rules read of a message, its first KiB: a flood of 50 lines of 8 KiB a second held
    120 MB a host."""
    from ai_sysadmin.config import Settings
    from ai_sysadmin.hosts.transport import LocalTransport
    from ai_sysadmin.monitor.snapshot import Snapshot
    from ai_sysadmin.orchestrator.checker import HostChecker

    checker = HostChecker(LocalTransport("web1"), Settings(ai_name="t", state_dir=tmp_path),
                          None)
    now = time.time()
    flood = [JournalEntry(f"c{n}", now - n / 50, 3, f"{n} " + "x" * 8000, "app.service")
             for n in range(500)]
    window = checker._slide_window(Snapshot("web1", now, journal=flood))
    assert len(window) == 500
    assert max(len(e.message) for e in window) == 1024
    assert window[7].message.startswith("7 xxx")


def test_an_http_500_remembered_for_an_incident_is_let_go_after_a_day(tmp_path) -> None:
    """When each incident's request first met an HTTP 500 is kept until an answer to it
    comes; an incident resolved before that kept its entry for the daemon's life."""
    from ai_sysadmin.config import Settings
    from ai_sysadmin.llm.types import LLMServerError
    from ai_sysadmin.orchestrator.investigator import DAY_SECONDS, Investigator
    from ai_sysadmin.store import Database

    settings = Settings(ai_name="t", state_dir=tmp_path)
    investigator = Investigator(settings, IncidentStore(Database(settings.db_path)), {},
                                llm_for=lambda incident_id: None)  # type: ignore[arg-type,return-value]
    error = LLMServerError("the LLM at http://127.0.0.1:1 answered HTTP 500 (boom)")
    for incident_id in range(200):
        investigator._served_others(incident_id, error)
    investigator._first_500 = {i: at - DAY_SECONDS for i, at in investigator._first_500.items()}
    investigator._served_others(500, error)
    assert list(investigator._first_500) == [500]
