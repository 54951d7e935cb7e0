"""The registry: every detection rule, in one place. Adding a rule is one file + one line here."""

from __future__ import annotations

import dataclasses
import functools

from ..findings import Finding
from ..sections import SECTIONS_BY_NAME
from ..snapshot import Snapshot
from .base import Rule, RuleContext
from .certificate_expiry import CertificateExpiry
from .clock_unsynchronised import ClockUnsynchronised
from .core_dump import CoreDumped
from .crash_loop import CrashLoop
from .disk_space import DiskSpace
from .failed_unit import FailedUnit
from .filesystem_errors import FilesystemErrors
from .host_limits_exhausted import HostLimitsExhausted
from .host_unreachable import HostUnreachable
from .inode_exhaustion import InodeExhaustion
from .journal_error_burst import JournalErrorBurst
from .kernel_tainted import KernelTainted
from .load_per_core import LoadPerCore
from .md_raid_degraded import MdRaidDegraded
from .memory_pressure import MemoryPressure
from .oom_kill import OomKill
from .read_only_filesystem import ReadOnlyFilesystem
from .reboot_required import RebootRequired
from .runaway_process import RunawayProcess
from .swap_thrash import SwapThrash
from .tasks_exhausted import TasksExhausted
from .unit_load_error import UnitLoadError
from .unit_needs_reload import UnitNeedsReload
from .zfs_pool_unhealthy import ZfsPoolUnhealthy
from .zombie_processes import ZombieProcesses

RULES: tuple[Rule, ...] = (
    FailedUnit(),
    CrashLoop(),
    CoreDumped(),
    OomKill(),
    TasksExhausted(),
    UnitLoadError(),
    UnitNeedsReload(),
    DiskSpace(),
    InodeExhaustion(),
    ReadOnlyFilesystem(),
    MdRaidDegraded(),
    ZfsPoolUnhealthy(),
    FilesystemErrors(),
    HostLimitsExhausted(),
    MemoryPressure(),
    SwapThrash(),
    LoadPerCore(),
    RunawayProcess(),
    ZombieProcesses(),
    JournalErrorBurst(),
    CertificateExpiry(),
    RebootRequired(),
    ClockUnsynchronised(),
    KernelTainted(),
    HostUnreachable(),
)


_FIELDS = frozenset(f.name for f in dataclasses.fields(Snapshot))


def check_registry(rules: tuple[Rule, ...]) -> dict[str, Rule]:
    """Refuse two rules with one name, and a rule needing a section nothing collects (it would
    never judge, silently)."""
    by_name: dict[str, Rule] = {}
    for rule in rules:
        if rule.name in by_name:
            raise ValueError(f"two detection rules are named {rule.name!r}")
        if rule.of_the_host and "container" not in rule.requires:
            raise ValueError(f"rule {rule.name!r} is of the host, not of a container: it "
                             "requires the container section")
        unknown = [s for s in rule.requires if s not in SECTIONS_BY_NAME or s not in _FIELDS]
        if unknown:
            raise ValueError(f"rule {rule.name!r} requires {unknown}: no collection section "
                             f"fills a Snapshot field of that name (see monitor/sections.py)")
        by_name[rule.name] = rule
    return by_name


RULES_BY_NAME = check_registry(RULES)
#: the rules whose verdicts read the fixes that ran (:attr:`Rule.reads_fixes`)
READING_FIXES = frozenset(rule.name for rule in RULES if rule.reads_fixes)
#: the rules whose live incident says its host cannot be reached (:attr:`Rule.host_down`)
HOST_DOWN = frozenset(rule.name for rule in RULES if rule.host_down)


def required_by(section: str, rules: tuple[Rule, ...] = RULES) -> tuple[str, ...]:
    """The rules that judge nothing when ``section`` could not be collected."""
    return tuple(rule.name for rule in rules if section in rule.requires)


@functools.lru_cache(maxsize=8)
def _required(rules: tuple[Rule, ...]) -> frozenset[str]:
    """Every section some of ``rules`` require."""
    return frozenset(section for rule in rules for section in rule.requires)


#: what a rule that raised is said as among the snapshot's section errors: ``rule:NAME``
RULE_ERROR = "rule:"


def evaluate(ctx: RuleContext, rules: tuple[Rule, ...] = RULES) -> tuple[list[Finding], set[str]]:
    """All findings, plus the names of the rules that could judge this snapshot.

    A rule has judged only when every section it requires was collected; otherwise it is
    skipped, so that its incidents neither open nor resolve on missing data. One that needs
    earlier looks it lacks (:meth:`Rule.judges`) reports what it finds, but has not judged. A
    rule that raises is reported, never fatal.
    """
    findings: list[Finding] = []
    judged: set[str] = set()
    snapshot = ctx.snapshot
    # each section asked once, not once a rule that requires it: a fleet's sweep asks often
    collected = frozenset(section for section in _required(rules)
                          if snapshot.collected(section))
    for rule in rules:
        if not collected.issuperset(rule.requires) or (
                rule.of_the_host and snapshot.container):
            continue
        try:
            findings.extend(rule.evaluate(ctx))
            if not rule.judges(ctx):
                continue
        except Exception as exc:
            # a bug of ours: the host is not called healthy, and the checker logs its
            # traceback as the failure begins (not at every check while it lasts)
            ctx.snapshot.errors[f"{RULE_ERROR}{rule.name}"] = f"{type(exc).__name__}: {exc}"
            ctx.raised[rule.name] = exc
            continue
        judged.add(rule.name)
    return findings, judged


def unjudged(ctx: RuleContext, judged: set[str],
             rules: tuple[Rule, ...] = RULES) -> frozenset[tuple[str, str]]:
    """(rule, subject) of what the ``judged`` rules could not judge in this snapshot
    (:meth:`Rule.unjudged`): their incidents stay as they are, as a rule's that did not
    judge at all do."""
    return frozenset((rule.name, subject) for rule in rules if rule.name in judged
                     for subject in rule.unjudged(ctx))


__all__ = ["READING_FIXES", "RULES", "RULES_BY_NAME", "Rule", "RuleContext", "evaluate",
           "required_by", "unjudged"]
