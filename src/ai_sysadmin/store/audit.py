"""The append-only audit table: one way to write it, inside the caller's transaction."""

from __future__ import annotations

import sqlite3
import time


def write_audit(conn: sqlite3.Connection, actor: str, action: str, subject: str = "",
                detail: str = "", at: float | None = None) -> None:
    """One audit record, in the same transaction as the change it records."""
    conn.execute("INSERT INTO audit(at, actor, action, subject, detail) VALUES (?,?,?,?,?)",
                 (time.time() if at is None else at, actor, action, subject, detail))
