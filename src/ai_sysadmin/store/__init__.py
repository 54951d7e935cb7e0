"""Durable state: SQLite (WAL) with numbered migrations."""

from .actions import ACTION_STATES, Action, ActionStore
from .db import Database
from .hosts import HostStore
from .incidents import (
    STATES,
    CheckOutcome,
    Incident,
    IncidentEvent,
    IncidentStore,
    LiveFinding,
    Rises,
)

__all__ = [
    "ACTION_STATES", "STATES", "Action", "ActionStore", "CheckOutcome", "Database", "HostStore",
    "Incident", "IncidentEvent", "IncidentStore", "LiveFinding", "Rises",
]
