"""The registry: every detection rule, in one place. Adding a rule is one file + one line here."""

from __future__ import annotations

from ..findings import Finding
from .base import Rule, RuleContext
from .crash_loop import CrashLoop
from .disk_space import DiskSpace
from .failed_unit import FailedUnit
from .host_unreachable import HostUnreachable
from .inode_exhaustion import InodeExhaustion
from .journal_error_burst import JournalErrorBurst
from .load_per_core import LoadPerCore
from .memory_pressure import MemoryPressure
from .runaway_process import RunawayProcess
from .swap_thrash import SwapThrash
from .unit_load_error import UnitLoadError

RULES: tuple[Rule, ...] = (
    FailedUnit(),
    CrashLoop(),
    UnitLoadError(),
    DiskSpace(),
    InodeExhaustion(),
    MemoryPressure(),
    SwapThrash(),
    LoadPerCore(),
    RunawayProcess(),
    JournalErrorBurst(),
    HostUnreachable(),
)


def _check_unique(rules: tuple[Rule, ...]) -> dict[str, Rule]:
    by_name: dict[str, Rule] = {}
    for rule in rules:
        if rule.name in by_name:
            raise ValueError(f"two detection rules are named {rule.name!r}")
        by_name[rule.name] = rule
    return by_name


RULES_BY_NAME = _check_unique(RULES)


def evaluate(ctx: RuleContext, rules: tuple[Rule, ...] = RULES) -> tuple[list[Finding], set[str]]:
    """All findings, plus the names of the rules that could judge this snapshot.

    A rule whose required sections failed to collect is skipped: its incidents must neither
    open nor resolve on missing data. A rule that raises is reported, never fatal.
    """
    findings: list[Finding] = []
    judged: set[str] = set()
    for rule in rules:
        if any(not ctx.snapshot.collected(s) for s in rule.requires):
            continue
        try:
            findings.extend(rule.evaluate(ctx))
        except Exception as exc:
            ctx.snapshot.errors[f"rule:{rule.name}"] = f"{type(exc).__name__}: {exc}"
            continue
        judged.add(rule.name)
    return findings, judged


__all__ = ["RULES", "RULES_BY_NAME", "Rule", "RuleContext", "evaluate"]
