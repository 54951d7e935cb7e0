"""A use that hovers at its critical level (disk, inodes, a service's tasks, the host's
limits) is one critical incident, not one that turns warning and critical again, telling a
person it got worse, check after check: once critical, it is a warning again only
``clear_margin_percent`` (2) below the level; one that warned turns critical at the level,
as a fresh one does. (The disk's own test: other rules', other subjects' findings.)"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.rules import Rule, RuleContext
from ai_sysadmin.monitor.rules.disk_space import DiskSpace
from ai_sysadmin.monitor.rules.host_limits_exhausted import HostLimitsExhausted
from ai_sysadmin.monitor.rules.inode_exhaustion import InodeExhaustion
from ai_sysadmin.monitor.rules.tasks_exhausted import TasksExhausted
from ai_sysadmin.monitor.snapshot import Snapshot, TaskCount

from ._snapshots import mount, snapshot
from .test_host_limits_exhausted import host
from .test_tasks_exhausted import tasks

#: rule, subject, the host at a use of PCT percent (limits of 1000: a tenth of a percent a
#: task or file handle)
CASES: list[tuple[Rule, str, Callable[[float], Snapshot]]] = [
    (DiskSpace(), "/srv", lambda pct: snapshot(mounts=[mount("/srv", used_percent=pct)])),
    (InodeExhaustion(), "/var/mail",
     lambda pct: snapshot(mounts=[mount("/var/mail", inodes_percent=pct)])),
    (TasksExhausted(), "java-app.service",
     lambda pct: tasks(**{"java-app.service": TaskCount(round(pct * 10), 1000)})),
    (HostLimitsExhausted(), "file-handles",
     lambda pct: host(files=round(pct * 10), files_max=1000)),
]


@pytest.mark.parametrize(("rule", "subject", "at"), CASES, ids=[rule.name for rule, _, _ in CASES])
def test_once_critical_a_use_is_a_warning_again_only_a_margin_below_the_level(
        rule: Rule, subject: str, at: Callable[[float], Snapshot]) -> None:
    def severity(pct: float, before: Severity | None = None) -> list[Severity]:
        found = {} if before is None else {(rule.name, subject): before}
        return [f.severity for f in rule.evaluate(RuleContext(at(pct), found_before=found))
                if f.subject == subject]

    assert severity(95.0) == [Severity.CRITICAL]
    assert severity(94.9) == [Severity.WARNING]
    assert severity(94.9, Severity.WARNING) == [Severity.WARNING]
    assert severity(95.0, Severity.WARNING) == [Severity.CRITICAL]
    assert severity(94.9, Severity.CRITICAL) == [Severity.CRITICAL]
    assert severity(93.0, Severity.CRITICAL) == [Severity.CRITICAL]
    assert severity(92.9, Severity.CRITICAL) == [Severity.WARNING]
