from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import failed_unit
from ai_sysadmin.monitor.rules.failed_unit import FailedUnit

from ._snapshots import HOST, context, entry, healthy_snapshot, healthy_units, only, snapshot, unit

RULE = FailedUnit()


def test_healthy_units_give_no_finding():
    assert RULE.evaluate(context(healthy_snapshot())) == []


def test_no_systemd_means_no_units_and_no_finding():
    assert RULE.evaluate(context(snapshot(units=[], systemd_running=False))) == []


def test_a_failed_unit_is_one_critical_finding_with_its_state():
    snap = snapshot(units=[*healthy_units(), unit("webapp.service", "failed", "failed")])

    finding = only(RULE.evaluate(context(snap)))

    assert finding.host == HOST
    assert finding.rule == "failed_unit"
    assert finding.subject == "webapp.service"
    assert finding.severity is Severity.CRITICAL
    assert finding.summary == "webapp.service has failed"
    assert finding.evidence == ("webapp.service: load=loaded active=failed sub=failed",)
    assert finding.fingerprint == "web1|failed_unit|webapp.service"


def test_evidence_quotes_the_last_three_warnings_of_that_unit_only():
    journal = [
        entry("old error 1", 3, unit="webapp.service", n=1),
        entry("cannot read /etc/webapp.conf", 3, unit="webapp.service", n=2),
        entry("informational chatter", 6, unit="webapp.service", n=3),
        entry("nginx: upstream timed out", 3, unit="nginx.service", n=4),
        entry("webapp.service: Main process exited", 5, unit="webapp.service", n=5),
        entry("webapp.service: Failed with result 'exit-code'.", 4, unit="webapp.service", n=6),
        entry("fatal:\n  stack trace line", 2, unit="webapp.service", n=7),
    ]
    snap = snapshot(units=[unit("webapp.service", "failed", "failed")], journal=journal)

    evidence = only(RULE.evaluate(context(snap))).evidence

    assert evidence == (
        "webapp.service: load=loaded active=failed sub=failed",
        "cannot read /etc/webapp.conf",
        "webapp.service: Failed with result 'exit-code'.",
        "fatal: stack trace line",  # host text is flattened to one line
    )


def test_a_crash_loops_repeated_lines_are_quoted_once_each_leaving_room_for_the_cause():
    # restarted five times, then the start limit: systemd's own three lines at the end were
    # the last three, and the unit's line that says why was never quoted
    journal, n = [], 0

    def log(message: str, priority: int, pid: int) -> None:
        nonlocal n
        n += 1
        journal.append(entry(message, priority, unit="webapp.service", n=n, pid=pid))

    for _ in range(5):
        log("cannot read /etc/webapp.conf: Permission denied", 3, 4000 + n)
        log("webapp.service: Main process exited, code=exited, status=1/FAILURE", 5, 1)
        log("webapp.service: Failed with result 'exit-code'.", 4, 1)
    log("webapp.service: Start request repeated too quickly.", 4, 1)
    log("webapp.service: Failed with result 'exit-code'.", 4, 1)
    log("Failed to start webapp.service - Web App.", 3, 1)
    snap = snapshot(units=[unit("webapp.service", "failed", "failed")], journal=journal)

    evidence = only(RULE.evaluate(context(snap))).evidence

    assert evidence[1:] == (
        "cannot read /etc/webapp.conf: Permission denied (logged 5 times)",
        "webapp.service: Failed with result 'exit-code'. (logged 6 times)",
        "Failed to start webapp.service - Web App.",
    )


def test_systemds_lines_fill_what_the_units_own_leave_and_the_reverse():
    own = [entry(f"own {k}", 3, unit="a.service", n=k) for k in range(4)]
    systemd = [entry(f"pid1 {k}", 4, unit="a.service", n=10 + k, pid=1) for k in range(4)]
    failed = [unit("a.service", "failed", "failed")]

    def said(journal: list) -> tuple:
        return only(RULE.evaluate(context(snapshot(units=failed, journal=journal)))).evidence[1:]

    assert said(own) == ("own 1", "own 2", "own 3")
    assert said(systemd) == ("pid1 1", "pid1 2", "pid1 3")
    assert said(own + systemd) == ("own 2", "own 3", "pid1 3")
    assert said(own[:1] + systemd) == ("own 0", "pid1 2", "pid1 3")


def test_journal_window_kept_by_the_daemon_is_preferred_over_the_snapshot_journal():
    snap = snapshot(
        units=[unit("webapp.service", "failed", "failed")],
        journal=[entry("only in this pass", 3, unit="webapp.service")],
    )
    window = [entry("seen two passes ago", 3, unit="webapp.service")]

    evidence = only(RULE.evaluate(context(snap, journal_window=window))).evidence

    assert evidence[1:] == ("seen two passes ago",)


def test_each_failed_unit_is_its_own_finding():
    snap = snapshot(
        units=[
            unit("a.service", "failed", "failed"),
            unit("sshd.service"),
            unit("b.mount", "failed", "failed"),
        ]
    )

    findings = RULE.evaluate(context(snap))

    assert [f.subject for f in findings] == ["a.service", "b.mount"]
    assert len({f.fingerprint for f in findings}) == 2


def test_many_failed_units_each_quote_their_own_last_three_of_a_full_window(monkeypatch):
    # a bad deploy: 400 failed instances, a window of 4000 entries of 50 units; each finding
    # quotes its own last three, and only those are quoted (masked), once each
    failed = [unit(f"w@{n}.service", "failed", "failed") for n in range(400)]
    journal = [entry(f"w@{n % 50}: error {n}", 3 if n % 7 else 6, unit=f"w@{n % 50}.service",
                     n=n) for n in range(4000)]
    quoted = []
    monkeypatch.setattr(failed_unit, "quote", lambda text: quoted.append(text) or text)

    findings = RULE.evaluate(context(snapshot(units=failed, journal=journal)))

    assert len(findings) == 400
    by_unit = {f.subject: f.evidence[1:] for f in findings}
    for n in (0, 7, 49):
        said = [e.message for e in journal if e.unit == f"w@{n}.service" and e.priority <= 4]
        assert by_unit[f"w@{n}.service"] == tuple(said[-3:])
    assert by_unit["w@50.service"] == () and by_unit["w@399.service"] == ()
    assert len(quoted) == 50 * 3
