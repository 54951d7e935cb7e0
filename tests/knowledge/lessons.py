"""Incidents and actions as the store hands them to learning, for the knowledge tests."""

from __future__ import annotations

import time
from typing import Any

from ai_sysadmin.store import Incident
from ai_sysadmin.store.actions import Action


def incident(incident_id: int, subject: str, rule: str = "runaway_process",
             summary: str = "a process uses 100% CPU") -> Incident:
    now = time.time()
    return Incident(id=incident_id, fingerprint=f"fp{incident_id}", host="web1", rule=rule,
                    subject=subject, severity="warning", summary=summary, evidence=[],
                    state="open", opened_at=now, updated_at=now, last_seen=now,
                    resolved_at=None, occurrences=1, diagnosis=None)


def action(action_id: int, incident_id: int, kind: str, params: dict[str, Any],
           subject: str, state: str = "succeeded") -> Action:
    now = time.time()
    return Action(id=action_id, incident_id=incident_id, proposal_id=None, host="web1",
                  kind=kind, params=params, subject=subject, risk="medium", plan={},
                  outcome="", reason="", state=state, created_at=now, expires_at=None,
                  decided_by="operator", decided_at=now, decision_reason=None,
                  started_at=now, finished_at=now + action_id, ran_at=now + action_id,
                  # it ran: a failed fix none of whose commands ran teaches nothing
                  result={"commands": [{"argv": [kind], "returncode": 0, "stdout": "",
                                        "stderr": ""}]})
