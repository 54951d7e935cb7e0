from ai_sysadmin.config import Thresholds
from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules.journal_error_burst import JournalErrorBurst

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
