"""How far a fix's parameters may go without a person (pure policy; the same on real systemd,
journald and df in tests/lab/test_fix_scope_lab.py)."""

from __future__ import annotations

import pytest

from ai_sysadmin.safety.catalog import FactsNeeded, PlanContext, facts_needed, plan_action
from ai_sysadmin.safety.process_facts import facts_for, parse_ps
from ai_sysadmin.safety.unit_facts import UnitFacts

MIB = 1024 * 1024


@pytest.mark.parametrize(("size", "journal", "risk"), [
    ("1K", 4096 * MIB, "high"),
    ("99M", 4096 * MIB, "high"),
    ("1K", None, "high"),  # how big the journal is could not be read
    ("100M", 4096 * MIB, "low"),
    ("500M", None, "low"),
    # a journal read as that small may be one a reader outside its groups under-counts
    ("50M", 30 * MIB, "high"),
])
def test_a_vacuum_below_the_floor_is_a_persons(size: str, journal: int | None,
                                                risk: str) -> None:
    plan = plan_action("vacuum_journal", {"max_size": size}, PlanContext(journal_bytes=journal))
    assert (plan.allowed, plan.risk) == (True, risk), plan.reason
    if risk == "high":
        assert f"it keeps {size} of the journal" in plan.reason
        assert ({4096 * MIB: "4.0G", 30 * MIB: "30.0M", None: "could not be read"}[journal]
                in plan.reason)


def test_only_a_vacuum_below_the_floor_reads_the_journals_size() -> None:
    assert facts_needed("vacuum_journal", {"max_size": "1K"}) == FactsNeeded(journal=True)
    assert facts_needed("vacuum_journal", {"max_size": "500M"}) == FactsNeeded()
    assert facts_needed("vacuum_journal", {"max_size": "x"}) == FactsNeeded()
    assert facts_needed("clean_directory", {"path": "/var/cache/x/"}) == FactsNeeded(
        mount_of="/var/cache/x")


_CLEAN = PlanContext(clean_paths=("/var/cache",), path_mount="/var")


@pytest.mark.parametrize(("ctx", "risk", "why"), [
    (PlanContext(**{**_CLEAN.__dict__, "incident_rule": "disk_space",
                    "incident_subject": "/var"}), "medium", ""),
    (PlanContext(**{**_CLEAN.__dict__, "incident_rule": "inode_exhaustion",
                    "incident_subject": "/var"}), "medium", ""),
    (PlanContext(**{**_CLEAN.__dict__, "incident_rule": "disk_space",
                    "incident_subject": "/"}), "high",
     "the incident is about disk_space of /, not the space on /var (/var/cache/apt is there)"),
    # /var a subvolume (or a pool's dataset) of the file system the incident is about,
    # whichever of its mount points that names (a pool's subject moves as quotas fill)
    (PlanContext(**{**_CLEAN.__dict__, "path_mount": "/", "path_also": ("/home", "/var"),
                    "incident_rule": "disk_space", "incident_subject": "/"}), "medium", ""),
    (PlanContext(**{**_CLEAN.__dict__, "path_mount": "/", "path_also": ("/home", "/var"),
                    "incident_rule": "disk_space", "incident_subject": "/home"}), "medium", ""),
    (PlanContext(**{**_CLEAN.__dict__, "path_mount": "/", "path_also": ("/home", "/var"),
                    "incident_rule": "disk_space", "incident_subject": "/boot"}), "high",
     "the incident is about disk_space of /boot, not the space on / (/var/cache/apt is there)"),
    (PlanContext(**{**_CLEAN.__dict__, "incident_rule": "failed_unit",
                    "incident_subject": "/var"}), "high", "failed_unit of /var"),
    (_CLEAN, "high", "no incident is about it"),
    (PlanContext(clean_paths=("/var/cache",), incident_rule="disk_space",
                 incident_subject="/var", mount_problem="df failed (1): no such file"), "high",
     "the file system /var/cache/apt is on could not be read (df failed (1): no such file)"),
])
def test_a_clean_is_for_the_file_system_the_incident_is_about(ctx: PlanContext, risk: str,
                                                              why: str) -> None:
    plan = plan_action("clean_directory", {"path": "/var/cache/apt"}, ctx)
    assert (plan.allowed, plan.risk) == (True, risk), plan.reason
    assert why in plan.reason


PS = """\
  PID  PPID COMMAND         CGROUP
    1     0 systemd         0::/init.scope
  200     1 hog             0::/system.slice/hog.service
  300     1 db              0::/system.slice/db.service
"""
UNITS = {u: UnitFacts(u, (u,), {"LoadState": ("loaded",)}) for u in ("hog.service",
                                                                        "db.service")}


@pytest.mark.parametrize(("pid", "rule", "subject", "risk", "why"), [
    (200, "runaway_process", "hog.service", "medium", ""),
    (200, "zombie_processes", "hog.service", "medium", ""),
    (300, "runaway_process", "hog.service", "high",
     "the incident is about runaway_process of hog.service, not db.service"),
    (200, "memory_pressure", "memory", "high", "memory_pressure of memory"),
    (200, None, None, "high", "no incident is about it, not hog.service"),
])
def test_a_kill_is_for_the_process_the_incident_is_about(pid: int, rule: str | None,
                                                         subject: str | None, risk: str,
                                                         why: str) -> None:
    ctx = PlanContext(facts_read=True, process=facts_for(pid, parse_ps(PS)), units=UNITS,
                      incident_rule=rule, incident_subject=subject)
    plan = plan_action("kill_process", {"pid": pid}, ctx)
    assert (plan.allowed, plan.risk) == (True, risk), plan.reason
    assert why in plan.reason
