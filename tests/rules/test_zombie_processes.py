import pytest

from ai_sysadmin.config import Thresholds
from ai_sysadmin.monitor.findings import Severity, program
from ai_sysadmin.monitor.rules.zombie_processes import ZombieProcesses
from ai_sysadmin.monitor.snapshot import ZombieParent

from ._snapshots import Checks, context, healthy_snapshot, only, snapshot

RULE = ZombieProcesses()


def parents(*found: ZombieParent):
    return snapshot(zombies=list(found))


def test_no_zombies_no_finding():
    assert RULE.evaluate(context(healthy_snapshot())) == []


def test_a_few_zombies_are_ordinary():
    # a parent that waits a moment later still has some: under the threshold, nothing
    assert RULE.evaluate(context(parents(ZombieParent(72, 19, "lazy parent", "x.service")))) == []


def test_zombies_of_a_service_make_a_warning_about_that_service():
    snap = parents(ZombieParent(72, 25, "/usr/bin/python3 /srv/reaper.py --jobs 30",
                                "reaper.service"))

    finding = only(RULE.evaluate(context(snap)))

    assert (finding.rule, finding.subject, finding.severity) == (
        "zombie_processes", "reaper.service", Severity.WARNING)
    # the parent is named by its program; its unit, not its pid, is the subject
    assert finding.summary == ("python3 (pid 72) in reaper.service has 25 zombie children "
                               "it does not reap")
    assert finding.evidence == (
        "pid 72 in reaper.service (python3): 25 zombie children (state Z)",)


def test_a_parent_that_left_the_listing_is_named_by_its_pid():
    # it exited between its zombies' lines and its own: no command, no unit
    finding = only(RULE.evaluate(context(parents(ZombieParent(777, 25)))))
    assert finding.subject == "pid:777"
    assert finding.summary.startswith("? (pid 777) has 25 zombie children")


@pytest.mark.parametrize("unit", [None, "session-3.scope", "user@1000.service"])
def test_a_parent_in_no_service_of_the_host_is_named_by_its_pid(unit):
    snap = parents(ZombieParent(4242, 30, "bash", unit))
    assert only(RULE.evaluate(context(snap))).subject == "pid:4242"


def test_two_parents_in_one_service_are_one_finding_about_the_worst_with_its_own_count():
    """A service's workers: the one with the most zombies is named, with its own count, and
    the service's total beside it, whichever order ps listed them in."""
    fewer = ZombieParent(101, 25, "/usr/bin/python3 /srv/app/worker.py", "app.service")
    more = ZombieParent(102, 30, "/usr/bin/python3 /srv/app/worker.py", "app.service")
    for listed in ((fewer, more), (more, fewer)):
        finding = only(RULE.evaluate(context(parents(*listed))))
        assert finding.summary == (
            "python3 (pid 102) in app.service has 30 zombie children it does not reap "
            "(55 in all, of 2 processes in app.service)")
        assert finding.evidence == (
            "pid 102 in app.service (python3): 30 zombie children (state Z)",
            "pid 101 in app.service (python3): 25 zombie children (state Z)")


def test_the_threshold_is_configurable():
    snap = parents(ZombieParent(72, 5, "worker", "reaper.service"))
    assert RULE.evaluate(context(snap, thresholds=Thresholds(zombie_processes=5))) != []
    assert RULE.evaluate(context(snap, thresholds=Thresholds(zombie_processes=6))) == []


@pytest.mark.parametrize(("command", "name"), [
    ("/usr/bin/python3 -c import os", "python3"),
    ("nginx: master process /usr/sbin/nginx", "nginx:"),
    ("[kworker/0:1-events]", "kworker/0:1-events"),  # no command line: ps's bracketed name
    ("", ""),
])
def test_a_process_is_called_by_its_program(command: str, name: str) -> None:
    assert program(command) == name


def test_a_parent_that_reaps_in_batches_at_the_level_is_one_incident(tmp_path):
    """A worker pool that reaps its children in batches, 25, 19, 21 zombies in turn (the
    level is 20): one incident, not one that resolves and reopens (a new investigation, a
    new notification) at every other check; once found, half as many (10) keep it, as a
    journal error burst is kept."""
    checks = Checks(tmp_path)
    seen = []
    for n, zombies in enumerate([25, 19, 21, 12, 10, 9]):
        pool = ZombieParent(900, zombies, "/usr/bin/worker-pool", "pool.service")
        checks.check(checks.look(n, zombies=[pool]))
        seen.append(checks.states("zombie_processes")["pool.service"])
    assert seen == ["open"] * 5 + ["resolved"]
    assert checks.history("zombie_processes", "pool.service") == ["open", "resolved"]
