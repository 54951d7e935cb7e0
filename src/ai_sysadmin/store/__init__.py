"""Durable state: SQLite (WAL) with numbered migrations."""

from .db import Database
from .incidents import STATES, CheckOutcome, Incident, IncidentEvent, IncidentStore

__all__ = ["STATES", "CheckOutcome", "Database", "Incident", "IncidentEvent", "IncidentStore"]
