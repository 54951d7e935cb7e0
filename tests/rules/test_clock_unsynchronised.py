"""clock_unsynchronised: the host's time service has not synchronised its clock for too long."""

from dataclasses import replace

from ai_sysadmin.config import Thresholds
from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import evaluate
from ai_sysadmin.monitor.rules.clock_unsynchronised import (
    UNSYNC_AFTER_SECONDS,
    ClockUnsynchronised,
)
from ai_sysadmin.monitor.snapshot import ClockSync

from ._snapshots import NOW, context, healthy_snapshot, only

RULE = ClockUnsynchronised()
GRACE = Thresholds().clock_sync_grace_seconds


def host(sync: ClockSync | None, uptime: float = 86_400.0, clock_ahead: float = 0.0):
    """A healthy host up ``uptime`` s whose clock reads ``clock_ahead`` s past this machine's."""
    snap = healthy_snapshot()
    snap.uptime_seconds = uptime
    snap.cpu = replace(snap.cpu, boot_time=int(NOW + clock_ahead - uptime))
    snap.clock_sync = [] if sync is None else [sync]
    return snap


def timesyncd(started: float | None = None, synced: float | None = None) -> ClockSync:
    return ClockSync("systemd-timesyncd", started, synced)


def test_a_service_that_never_synchronised_the_clock_since_boot_is_a_warning_after_the_grace():
    booted = NOW - 86_400
    finding = only(RULE.evaluate(context(host(timesyncd(started=booted + 3)))))
    assert (finding.rule, finding.subject, finding.severity) == (
        "clock_unsynchronised", "clock", Severity.WARNING)
    assert finding.summary == ("the clock is not synchronised: systemd-timesyncd has not "
                               "synchronised it since it started, 24 h ago")
    assert finding.evidence == ("systemd-timesyncd runs, and has not synchronised the clock "
                                "since it started at 2025-06-14 15:06:43 UTC on "
                                "the host's clock",)


def test_a_clock_just_booted_or_a_service_just_started_is_given_the_grace():
    assert RULE.evaluate(context(host(timesyncd(started=NOW - 60), uptime=60))) == []
    assert RULE.evaluate(context(host(timesyncd(started=NOW - GRACE + 5)))) == []
    # booted 20 min ago: past the default grace of 15 min
    late = only(RULE.evaluate(context(host(timesyncd(started=NOW - 1190), uptime=1200))))
    assert "since it started, 20 min ago" in late.summary
    # a service started on a clock it set forward since (restored from its saved time): the
    # boot is when it began to wait
    stepped = only(RULE.evaluate(context(host(timesyncd(started=0.0), uptime=1200))))
    assert "since the host booted, 20 min ago" in stepped.summary
    longer = Thresholds(clock_sync_grace_seconds=3600)
    assert RULE.evaluate(context(host(timesyncd(started=NOW - 1200), uptime=1200),
                                 thresholds=longer)) == []


def test_a_synchronisation_older_than_the_kernel_keeps_the_clock_synchronised_is_a_warning():
    assert RULE.evaluate(context(host(timesyncd(synced=NOW - 2048)))) == []
    assert RULE.evaluate(context(host(timesyncd(synced=NOW - UNSYNC_AFTER_SECONDS + 60)))) == []
    finding = only(RULE.evaluate(context(host(timesyncd(synced=NOW - 12 * 3600)))))
    assert finding.summary == ("the clock is not synchronised: systemd-timesyncd last "
                               "synchronised it 12 h ago")
    assert finding.evidence == ("last synchronisation at 2025-06-15 03:06:40 UTC on the host's "
                                "clock, 43200 s before this check",)


def test_ages_are_measured_on_the_host_s_own_clock():
    # a host whose clock runs an hour ahead stamped its last synchronisation on that clock
    ahead = host(timesyncd(synced=NOW + 3600 - 600), clock_ahead=3600)
    assert RULE.evaluate(context(ahead)) == []


def test_a_host_where_no_time_service_tells_is_judged_with_no_finding():
    findings, judged = evaluate(context(host(None), previous=healthy_snapshot(NOW - 300)))
    assert findings == [] and "clock_unsynchronised" in judged


def test_without_the_host_s_boot_time_or_its_time_service_nothing_is_judged():
    no_boot = host(timesyncd(started=NOW - 86_000))
    no_boot.cpu = replace(no_boot.cpu, boot_time=None)
    assert RULE.evaluate(context(no_boot)) == []
    assert "clock_unsynchronised" not in evaluate(context(no_boot))[1]
    unread = host(timesyncd(started=NOW - 86_000))
    unread.clock_sync = None
    unread.errors["clock_sync"] = "stat exited 127: not found"
    assert "clock_unsynchronised" not in evaluate(context(unread))[1]


def test_healthy_snapshot_gives_no_finding():
    assert RULE.evaluate(context(healthy_snapshot())) == []
