"""zfs_pool_unhealthy: an imported ZFS pool that is not ONLINE, as OpenZFS says in
/proc/spl/kstat/zfs/POOL/state."""

from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import evaluate
from ai_sysadmin.monitor.rules.zfs_pool_unhealthy import ZfsPoolUnhealthy

from ._snapshots import context, snapshot

RULE = ZfsPoolUnhealthy()


def pools(container: str = "", **states: str):
    return snapshot(zfs_pools={name.replace("_", " "): state for name, state in states.items()},
                    container=container)


def test_every_pool_not_online_is_critical_and_says_what_its_state_means():
    findings = RULE.evaluate(context(pools(rpool="ONLINE", tank="DEGRADED", old_disks="UNAVAIL",
                                           scratch="SUSPENDED", mirror="FAULTED")))
    assert [(f.subject, f.severity) for f in findings] == [
        ("mirror", Severity.CRITICAL), ("old disks", Severity.CRITICAL),
        ("scratch", Severity.CRITICAL), ("tank", Severity.CRITICAL)]
    tank = findings[-1]
    assert tank.summary == ("ZFS pool tank is DEGRADED: it runs without part of its "
                            "redundancy: the next failed device may take its data")
    assert tank.evidence == ("/proc/spl/kstat/zfs/tank/state: DEGRADED",)
    assert "its data is unreachable" in findings[0].summary
    assert "ZFS suspended its I/O" in findings[2].summary


def test_a_state_this_rule_does_not_know_is_still_not_healthy():
    [finding] = RULE.evaluate(context(pools(tank="SPLIT")))
    assert finding.summary == "ZFS pool tank is SPLIT: ZFS does not call it healthy"


def test_online_pools_a_pool_being_imported_and_no_pools_are_judged_healthy():
    for states in ({"rpool": "ONLINE", "new": "TRANSITIONING"}, {}):
        assert evaluate(context(pools(**states)), rules=(RULE,)) == ([], {"zfs_pool_unhealthy"})


def test_a_host_without_zfs_or_whose_pools_could_not_be_read_is_not_judged():
    # None: no ZFS module, or a pool without a state file (OpenZFS before 0.8)
    assert evaluate(context(snapshot(zfs_pools=None, container="")), rules=(RULE,)) == (
        [], set())


def test_a_container_sees_its_hosts_pools_and_does_not_judge_them():
    # an LXC container's /proc/spl is its host's: the host, checked itself, reports it
    assert evaluate(context(pools(container="lxc", tank="DEGRADED")), rules=(RULE,)) == (
        [], set())
    assert evaluate(context(snapshot(zfs_pools={"tank": "ONLINE"})), rules=(RULE,)) == (
        [], set())
