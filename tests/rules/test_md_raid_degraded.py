"""md_raid_degraded: a Linux md array that lost a member, or that md did not start, read from
/proc/mdstat as the fixtures hold it."""

import json
from dataclasses import replace
from pathlib import Path

from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.parsers import parse_mdstat
from ai_sysadmin.monitor.rules import evaluate
from ai_sysadmin.monitor.rules.md_raid_degraded import MdRaidDegraded

from ._snapshots import context, only, snapshot

RULE = MdRaidDegraded()
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "parsers"


def mdstat(case: str, container: str = ""):
    raw = json.loads((FIXTURES / f"mdstat_{case}.json").read_text(encoding="utf-8"))["raw"]
    return snapshot(md_arrays=parse_mdstat(raw), container=container)


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


def test_only_the_degraded_one_of_two_raid10_arrays_is_found_its_rebuild_onto_a_spare_waiting():
    finding = only(RULE.evaluate(context(mdstat("raid10"))))
    assert finding.subject == "md3"
    assert finding.summary == (
        "md array md3 (raid10) is degraded: 3 of its 4 members work [_UUU]; its rebuild "
        "waits to start (resync=PENDING: md starts it at the array's first write, or once "
        "its sync is let run)")
    assert finding.evidence[1] == "members: sdh1, sdg1, sdf1, sde1 (spare)"


def test_a_rebuild_that_waits_for_another_array_says_so_not_that_it_rebuilds():
    # md says resync=DELAYED for a delayed rebuild too: md2's new member sdc2 waits for md1
    delayed, rebuilding = RULE.evaluate(context(mdstat("recovery_delayed")))
    assert (delayed.subject, delayed.severity) == ("md2", Severity.CRITICAL)
    assert delayed.summary == (
        "md array md2 (raid1) is degraded: 1 of its 2 members work [U_]; its rebuild waits "
        "to start (resync=DELAYED: md runs it once another array on the same disks has "
        "synced)")
    assert rebuilding.summary.endswith("; rebuilding, 17.3% (181248/1046528) finish=0.7min "
                                       "speed=20138K/sec")
    [array] = parse_mdstat(json.loads(
        (FIXTURES / "mdstat_degraded_raid1.json").read_text(encoding="utf-8"))["raw"])
    waits = replace(array, sync_action="recovery", sync_progress="DELAYED")
    assert only(RULE.evaluate(context(snapshot(md_arrays=[waits])))).summary.endswith(
        "; failed: sda1; its rebuild waits to start (recovery=DELAYED: md runs it once another "
        "array on the same disks has synced)")


def test_a_degraded_array_under_another_sync_says_what_runs_instead_of_a_rebuild():
    [array] = parse_mdstat(json.loads(
        (FIXTURES / "mdstat_degraded_raid1.json").read_text(encoding="utf-8"))["raw"])
    reshaping = replace(array, sync_action="reshape", sync_progress="3.1% (32768/1046528)")
    assert only(RULE.evaluate(context(snapshot(md_arrays=[reshaping])))).summary.endswith(
        "; failed: sda1; no rebuild runs, a reshape does: 3.1% (32768/1046528)")
    pending = replace(array, sync_action="resync", sync_progress="PENDING")
    assert only(RULE.evaluate(context(snapshot(md_arrays=[pending])))).summary.endswith(
        "; failed: sda1; no rebuild runs; a resync waits to start (resync=PENDING: md starts "
        "it at the array's first write, or once its sync is let run)")


def test_a_failed_spare_or_journal_device_of_a_whole_array_is_a_warning_naming_it():
    spare, journal = RULE.evaluate(context(mdstat("failed_spare")))
    assert [(f.subject, f.severity) for f in (spare, journal)] == [
        ("md0", Severity.WARNING), ("md1", Severity.WARNING)]
    assert spare.summary == (
        "md array md0 (raid1) has a failed device: md marked sdc1 faulty; all 2 of its "
        "members work [UU], so its redundancy holds, but the failed disk needs replacing")
    assert spare.evidence == ("/proc/mdstat: md0 : active raid1, [2/2] [UU]",
                              "members: sdb1, sda1, sdc1 (failed)")
    assert "md marked sdg1 faulty; all 3 of its members work [UUU]" in journal.summary


def test_an_intel_rst_container_is_no_array_but_a_degraded_array_in_one_is_critical():
    # md lists the IMSM container md127 inactive for as long as the arrays in it exist
    assert evaluate(context(mdstat("imsm_container")), rules=(RULE,)) == (
        [], {"md_raid_degraded"})
    finding = only(RULE.evaluate(context(mdstat("imsm_degraded"))))
    assert (finding.subject, finding.severity) == ("md126", Severity.CRITICAL)
    assert finding.summary == ("md array md126 (raid1) is degraded: 1 of its 2 members work "
                               "[U_]; no rebuild runs")
    assert finding.evidence[-1] == "in container md127 (super external:/md127/0)"


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


def test_a_container_sees_its_hosts_arrays_and_does_not_judge_them():
    # an LXC container's /proc/mdstat is its host's: the host, checked itself, reports it
    assert evaluate(context(mdstat("degraded_raid1", container="lxc")), rules=(RULE,)) == (
        [], set())
    # where it was not read whether this is a container, neither is judged
    assert evaluate(context(snapshot(md_arrays=[])), rules=(RULE,)) == ([], set())
