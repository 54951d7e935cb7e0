"""A fix that does not hold: a restarted service that dies again a moment after its restart.
The checks that run while the fix is being verified neither resolve its incident (the failure
went for a moment) nor reopen it (it came back): the verification says how it ends. The person
hears of it through the real notifier (outbox, a Gotify stand-in on 127.0.0.1): once that it
failed, once that the fix failed, and nothing is held to be said again."""

from __future__ import annotations

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.store import ActionStore
from tests.lab.daemon_runner import QUIET_HOST_WIDE, run_daemon
from tests.lab.test_remediation_lab import propose_restart
from tests.notify.conftest import TOKEN, secret_file
from tests.notify.servers import GotifyServer
from tests.support.scripted_model import ScriptedModel

pytestmark = [pytest.mark.lab, pytest.mark.slow]

# runs 1.5 s after each start, then loses its database and dies: a restart never holds
DIES_AGAIN = """
[Service]
ExecStart=/bin/sh -c 'sleep 1.5; echo "<3>lost the connection to its database" >&2; exit 1'

[Install]
WantedBy=multi-user.target
"""


def test_a_restart_that_dies_again_is_told_once_as_failed_and_once_as_fix_failed(
        tmp_path) -> None:
    with Sandbox() as sb, ScriptedModel([propose_restart("app.service")] * 20) as model, \
            GotifyServer(TOKEN) as gotify:
        apply(sb, "install_unit", {"name": "app.service", "text": DIES_AGAIN,
                                   "wanted_by": "multi-user.target"})
        apply(sb, "start_unit", {"name": "app.service"})
        apply(sb, "wait_unit", {"name": "app.service", "value": "failed"})
        settings = Settings(
            ai_name="hal", state_dir=tmp_path / "state", check_interval=3600,
            autonomy_level="auto-safe", thresholds=QUIET_HOST_WIDE,
            llm={"backend": "openai", "url": model.url, "model": "scripted", "timeout": 10},
            agent={"retry_backoff_seconds": 0.5},
            # settled only once it ran past the moment it dies
            safety={"verify_settle_seconds": 4, "verify_timeout": 10},
            gotify_url=gotify.url, gotify_token_file=secret_file(tmp_path / "token", TOKEN))

        def told(store) -> bool:
            # the fix's end is said, and nothing waits in the outbox to be dispatched
            return any("fix failed" in m["title"] for m in gotify.accepted) and not \
                store.db.conn.execute("SELECT 1 FROM notify_events WHERE state='new'"
                                      ).fetchone()

        store, _ = run_daemon(settings, sb, told, timeout=120)
        titles = [m["title"] for m in gotify.accepted]
        events = store.db.conn.execute(
            "SELECT kind, state FROM notify_events ORDER BY id").fetchall()
    host = store.hosts()[0]["name"]
    assert titles == [f"[hal] {host}: app.service has failed",
                      f"[hal] {host}: fix failed: app.service has failed"]
    # nothing held to be repeated when its window ends
    assert [tuple(e) for e in events] == [("opened", "sent"), ("failed", "sent")]
    (action,) = ActionStore(store.db).find()
    assert (action.kind, action.state) == ("restart_unit", "failed"), action.result
    (incident,) = store.incidents(None)
    moves = [(e.from_state, e.to_state) for e in store.get(incident.id, history=None).events
             if e.kind == "state"]
    assert ("remediating", "resolved") not in moves and ("resolved", "reopened") not in moves
    assert incident.state == "open"  # escalated to a person
