"""md_raid_degraded: a Linux md array that lost a member, or that md did not start, read from
/proc/mdstat as the fixtures hold it."""

import json
from pathlib import Path

from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.parsers import parse_mdstat
from ai_sysadmin.monitor.rules import evaluate
from ai_sysadmin.monitor.rules.md_raid_degraded import MdRaidDegraded

from ._snapshots import context, only, snapshot

RULE = MdRaidDegraded()
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "parsers"


def mdstat(case: str):
    raw = json.loads((FIXTURES / f"mdstat_{case}.json").read_text(encoding="utf-8"))["raw"]
    return snapshot(md_arrays=parse_mdstat(raw))


def test_a_raid1_with_a_failed_member_is_critical_and_names_it():
    finding = only(RULE.evaluate(context(mdstat("degraded_raid1"))))
    assert (finding.rule, finding.subject, finding.severity) == (
        "md_raid_degraded", "md0", Severity.CRITICAL)
    assert finding.summary == ("md array md0 (raid1) is degraded: 1 of its 2 members work "
                               "[_U]; failed: sda1; no rebuild runs")
    assert finding.evidence == ("/proc/mdstat: md0 : active raid1, [2/1] [_U]",
                                "members: sdb1, sda1 (failed)")


def test_a_rebuild_in_progress_is_still_degraded_and_says_how_far_it_got():
    finding = only(RULE.evaluate(context(mdstat("raid5_recovering"))))
    assert finding.severity is Severity.CRITICAL
    assert finding.summary == (
        "md array md1 (raid5) is degraded: 3 of its 4 members work [UUU_]; rebuilding, "
        "12.6% (132480/1047552) finish=0.6min speed=22080K/sec")


def test_only_the_degraded_one_of_two_raid10_arrays_is_found():
    finding = only(RULE.evaluate(context(mdstat("raid10"))))
    assert finding.subject == "md3"
    assert "3 of its 4 members work [_UUU]" in finding.summary
    assert finding.evidence[1] == "members: sdh1, sdg1, sdf1, sde1 (spare)"


def test_an_inactive_array_is_a_warning_naming_what_md_holds():
    finding = only(RULE.evaluate(context(mdstat("inactive"))))
    assert (finding.subject, finding.severity) == ("md127", Severity.WARNING)
    assert finding.summary.startswith("md array md127 is inactive")
    assert finding.evidence == ("members: sdb1 (spare)",)


def test_healthy_arrays_a_check_running_on_one_and_no_arrays_at_all_are_judged_healthy():
    for case in ("healthy_raid1", "empty"):
        findings, judged = evaluate(context(mdstat(case)), rules=(RULE,))
        assert (findings, judged) == ([], {"md_raid_degraded"}), case


def test_a_host_without_md_or_whose_mdstat_was_not_read_is_not_judged():
    # no /proc/mdstat: no md driver; nothing there resolves an incident of an array
    assert evaluate(context(snapshot(md_arrays=None)), rules=(RULE,)) == ([], set())
    unread = mdstat("degraded_raid1")
    unread.errors["md_arrays"] = "timed out"
    assert evaluate(context(unread), rules=(RULE,)) == ([], set())
