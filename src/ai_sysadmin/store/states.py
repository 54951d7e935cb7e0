"""An incident's states: in one place for the stores of incidents and of actions, which
import each other's rules (a fix waits for a person only while its incident is live)."""

from __future__ import annotations

STATES = (
    "open",
    "investigating",
    "awaiting_approval",
    "remediating",
    "resolved",
    "closed",
    "reopened",
)
LIVE_STATES = ("open", "investigating", "awaiting_approval", "remediating", "reopened")
