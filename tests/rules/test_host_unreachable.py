from __future__ import annotations

from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import RuleContext, evaluate
from ai_sysadmin.monitor.rules.host_unreachable import HostUnreachable
from ai_sysadmin.monitor.snapshot import Snapshot

from ._snapshots import healthy_snapshot

RULE = HostUnreachable()


def test_nothing_collected_is_an_unreachable_host() -> None:
    snap = Snapshot(host="web1", taken_at=1000.0, errors={
        s: "web1: cannot connect to 10.0.0.9:22: timed out"
        for s in ("cpu", "memory", "load", "mounts", "units", "processes", "os")})
    findings, judged = evaluate(RuleContext(snap))
    (finding,) = findings
    assert (finding.rule, finding.subject, finding.severity) == (
        "host_unreachable", "web1", Severity.CRITICAL)
    assert "timed out" in finding.evidence[0]
    # every other rule is left alone: their incidents neither open nor resolve. With no
    # certificate configured there is none to read: the expiry rule has judged all of none
    assert judged == {"host_unreachable", "certificate_expiry"}
    snap.certificates = None
    snap.errors["certificates"] = "web1: cannot connect to 10.0.0.9:22: timed out"
    assert evaluate(RuleContext(snap))[1] == {"host_unreachable"}


def test_a_partial_collection_is_not_unreachable() -> None:
    snap = healthy_snapshot()
    snap.journal = None
    snap.errors["journal"] = "journalctl failed"
    assert RULE.evaluate(RuleContext(snap)) == []


def test_a_healthy_host_is_not_unreachable() -> None:
    assert RULE.evaluate(RuleContext(healthy_snapshot())) == []


def test_a_host_that_answered_but_ran_nothing_is_not_unreachable() -> None:
    why = "sudo on web1 needs a password: `sudo -n` failed: a password is required"
    snap = Snapshot(host="web1", taken_at=1000.0, refused=why, errors={
        s: why for s in ("cpu", "memory", "load", "mounts", "units", "processes", "os")})
    findings, judged = evaluate(RuleContext(snap))
    # it judged (an earlier unreachable incident resolves: the host answers); nothing else did
    assert findings == [] and "host_unreachable" in judged
