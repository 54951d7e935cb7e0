from ai_sysadmin.config import Thresholds
from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import RuleContext
from ai_sysadmin.monitor.rules.journal_error_burst import JournalErrorBurst
from ai_sysadmin.monitor.snapshot import JournalGap

from ._snapshots import NOW, context, entry, healthy_snapshot, only, snapshot

RULE = JournalErrorBurst()


def errors(
    count: int,
    unit: str | None = "nginx.service",
    priority: int = 3,
    age: float = 10.0,
    identifier: str | None = None,
    start: int = 0,
):
    return [
        entry(f"upstream timed out #{i}", priority, unit=unit, identifier=identifier, age=age, n=i)
        for i in range(start, start + count)
    ]


def test_healthy_journal_gives_no_finding():
    assert RULE.evaluate(context(healthy_snapshot())) == []


def test_burst_from_one_unit_is_a_warning_quoting_the_last_three_messages():
    snap = snapshot(journal=errors(25))

    finding = only(RULE.evaluate(context(snap)))

    assert finding.rule == "journal_error_burst"
    assert finding.subject == "nginx.service"
    assert finding.severity is Severity.WARNING
    assert finding.summary == "25 journal errors from nginx.service in 300 s"
    assert finding.evidence == (
        "upstream timed out #22",
        "upstream timed out #23",
        "upstream timed out #24",
    )


def test_default_burst_is_twenty_errors():
    assert RULE.evaluate(context(snapshot(journal=errors(19)))) == []
    assert len(RULE.evaluate(context(snapshot(journal=errors(20))))) == 1


def test_a_burst_found_is_over_only_below_half_its_level():
    """A source that logs at about the level (19 and 21 errors in the window in turn) is one
    burst, not one that opens and resolves every few checks; under half the level, it is
    over. Another source's burst holds nothing."""
    found = {("journal_error_burst", "nginx.service"): Severity.WARNING}

    def sources(count: int, held: dict) -> list[str]:
        return [f.subject for f in RULE.evaluate(
            RuleContext(snapshot(journal=errors(count)), found_before=held))]

    assert sources(19, {}) == []
    assert sources(19, found) == ["nginx.service"]
    assert sources(10, found) == ["nginx.service"]
    assert sources(9, found) == []
    assert sources(19, {("journal_error_burst", "php-fpm.service"): Severity.WARNING}) == []


def test_warnings_do_not_count():
    snap = snapshot(journal=errors(19) + errors(30, priority=4, start=100))
    assert RULE.evaluate(context(snap)) == []


def test_critical_when_one_entry_is_crit_or_worse():
    snap = snapshot(journal=errors(19) + errors(1, priority=2, start=19))
    assert only(RULE.evaluate(context(snap))).severity is Severity.CRITICAL


def test_entries_older_than_the_window_do_not_count():
    snap = snapshot(journal=errors(15, age=301) + errors(15, age=299, start=15))
    assert RULE.evaluate(context(snap)) == []
    snap = snapshot(journal=errors(5, age=301) + errors(20, age=300, start=5))
    assert only(RULE.evaluate(context(snap))).summary.startswith("20 journal errors")


def test_errors_are_grouped_per_source():
    journal = errors(12, unit="a.service") + errors(12, unit="b.service", start=12)
    assert RULE.evaluate(context(snapshot(journal=journal))) == []

    journal = errors(20, unit="b.service") + errors(21, unit="a.service", start=20)
    findings = RULE.evaluate(context(snapshot(journal=journal)))
    assert [(f.subject, f.summary) for f in findings] == [
        ("a.service", "21 journal errors from a.service in 300 s"),
        ("b.service", "20 journal errors from b.service in 300 s"),
    ]


def test_source_without_unit_is_the_program_then_unknown():
    journal = errors(20, unit=None, identifier="kernel") + errors(20, unit=None, start=20)
    subjects = [f.subject for f in RULE.evaluate(context(snapshot(journal=journal)))]
    assert subjects == ["kernel", "unknown"]


def test_window_kept_by_the_daemon_is_used_instead_of_this_pass():
    snap = snapshot(journal=errors(3))
    window = errors(22, unit="postgresql.service")

    finding = only(RULE.evaluate(context(snap, journal_window=window)))

    assert finding.subject == "postgresql.service"


def test_custom_burst_and_window():
    thresholds = Thresholds(journal_error_burst=3, journal_burst_window_seconds=60)
    snap = snapshot(journal=errors(2, age=30) + errors(5, age=90, start=2))
    assert RULE.evaluate(context(snap, thresholds=thresholds)) == []

    snap = snapshot(journal=errors(3, age=30) + errors(5, age=90, start=3))
    finding = only(RULE.evaluate(context(snap, thresholds=thresholds)))
    assert finding.summary == "3 journal errors from nginx.service in 60 s"


def test_the_window_is_measured_on_the_hosts_own_clock():
    # the host's clock is 400 s behind ours: its entries of the last seconds carry times
    # 400 s ago by our clock; its boot time plus its uptime says what time it is there
    from ai_sysadmin.monitor.snapshot import CpuTimes

    behind = 400.0
    snap = snapshot(journal=errors(25, age=10 + behind), uptime_seconds=1000.0,
                    cpu=CpuTimes(busy=1, total=2, cores=1, boot_time=int(NOW - behind - 1000)))
    assert snap.host_time() == NOW - behind
    assert only(RULE.evaluate(context(snap))).summary.startswith("25 journal errors")
    # and without the host's time, ours is all there is
    assert RULE.evaluate(context(snapshot(journal=errors(25, age=10 + behind)))) == []


def test_a_burst_a_fix_ran_after_is_over_while_its_source_logs_no_error():
    # the restart 5 s ago ended what nginx logged 10 s ago: those errors stay in the window
    # for almost five minutes, and they were what the fix was for
    burst = errors(25, age=10)
    fixed = {("journal_error_burst", "nginx.service"): NOW - 5}
    snap = snapshot(journal=burst)
    assert RULE.evaluate(RuleContext(snap, fixed=fixed)) == []
    # another source's fix ends nothing of nginx's
    other = {("journal_error_burst", "db.service"): NOW - 5}
    assert only(RULE.evaluate(RuleContext(snap, fixed=other))).subject == "nginx.service"
    # one error since the fix: it did not end the burst, which counts all it logged
    again = snapshot(journal=[*burst, *errors(1, age=2, start=25)])
    finding = only(RULE.evaluate(RuleContext(again, fixed=fixed)))
    assert finding.summary == "26 journal errors from nginx.service in 300 s"


def test_a_fix_is_over_when_its_source_logged_no_error_since_it_ran():
    burst = errors(25, age=10)
    snap = snapshot(journal=[*burst, *errors(3, unit="db.service", age=2, start=25),
                             *errors(3, priority=4, age=2, start=28)])
    # nginx's errors before the fix, db's and nginx's warnings after it: over
    assert RULE.over_since(context(snap), "nginx.service", NOW - 6, NOW - 5) is True
    # one error of its own after it is not
    again = snapshot(journal=[*burst, *errors(1, age=2, start=25)])
    assert RULE.over_since(context(again), "nginx.service", NOW - 6, NOW - 5) is False
    assert RULE.over_since(context(again), "nginx.service", NOW - 2, NOW - 1) is True


def test_a_fix_is_not_over_when_the_journal_since_it_was_not_all_read():
    snap = snapshot(journal=errors(25, age=10))
    # the checker's window began after the fix (it was just made): what came between is unseen
    seen_since = RuleContext(snap, window_covered=3.0)
    assert RULE.over_since(seen_since, "nginx.service", NOW - 6, NOW - 5) is False
    assert RULE.over_since(RuleContext(snap, window_covered=6.0), "nginx.service",
                           NOW - 6, NOW - 5) is True
    # the journal was not read this time
    unread = snapshot(journal=errors(25, age=10), errors={"journal": "journalctl: timed out"})
    assert RULE.over_since(context(unread), "nginx.service", NOW - 6, NOW - 5) is False
    # a flood made the check skip entries logged after the fix
    skipped = snapshot(journal=errors(25, age=10),
                       journal_gap=JournalGap(after=NOW - 8, before=NOW - 3, entries=5000))
    assert RULE.over_since(context(skipped), "nginx.service", NOW - 6, NOW - 5) is False
