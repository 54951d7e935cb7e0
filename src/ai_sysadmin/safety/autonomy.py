"""The autonomy table: what happens to an action of a given risk at a given level (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["execute", "approval", "record", "refuse"]

#: DESIGN.md's table: level -> risk -> outcome
TABLE: dict[str, dict[str, Outcome]] = {
    "observe": {"low": "record", "medium": "record", "high": "record"},
    "suggest": {"low": "approval", "medium": "approval", "high": "approval"},
    "auto-safe": {"low": "execute", "medium": "approval", "high": "approval"},
    "auto-full": {"low": "execute", "medium": "execute", "high": "approval"},
}


@dataclass(frozen=True)
class AutonomyDecision:
    outcome: Outcome
    reason: str


def decide(level: str, risk: str, refused_reason: str | None = None) -> AutonomyDecision:
    """``refused_reason`` comes from the policy (protected unit, destructive, not allowed)."""
    if refused_reason is not None:
        return AutonomyDecision("refuse", f"refused at every level: {refused_reason}")
    if level not in TABLE:
        return AutonomyDecision("refuse", f"unknown autonomy level {level!r}")
    outcome = TABLE[level].get(risk)
    if outcome is None:
        return AutonomyDecision("refuse", f"unknown risk {risk!r}")
    why = {
        "execute": f"{risk}-risk actions run on their own at {level}",
        "approval": f"{risk}-risk actions wait for a person at {level}",
        "record": f"at {level} actions are only recorded, never run",
    }[outcome]
    return AutonomyDecision(outcome, why)
