"""A daemon stopped (an upgrade, a routine restart) while a fix it ran is being verified: the
fix's commands ran, and only whether it held is not known. Nobody is paged "fix failed" for
that: the incident's next checks tell, through the real notifier (outbox, a Gotify stand-in on
127.0.0.1), that it cleared, or, its finding still there, that the fix did not hold, once."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.store import ActionStore, IncidentStore
from tests.lab.daemon_runner import QUIET_HOST_WIDE, run_daemon
from tests.lab.test_remediation_lab import TRANSIENT, propose_restart
from tests.notify.conftest import TOKEN, secret_file
from tests.notify.servers import GotifyServer
from tests.support.scripted_model import ScriptedModel

pytestmark = [pytest.mark.lab, pytest.mark.slow]

# a restart never brings it back
BROKEN = """
[Service]
ExecStart=/bin/sh -c 'echo "<3>always fails" >&2; exit 1'
"""


def settings_for(tmp_path: Path, url: str, gotify: GotifyServer, **over) -> Settings:
    return Settings(**{
        "ai_name": "hal", "state_dir": tmp_path / "state", "check_interval": 3600,
        "autonomy_level": "auto-safe", "thresholds": QUIET_HOST_WIDE,
        "llm": {"backend": "openai", "url": url, "model": "scripted", "timeout": 10},
        "agent": {"retry_backoff_seconds": 0.5},
        "safety": {"verify_settle_seconds": 1, "verify_timeout": 15},
        "gotify_url": gotify.url,
        "gotify_token_file": secret_file(tmp_path / "token", TOKEN), **over})


def stopped_while_verifying(tmp_path: Path, sb: Sandbox, model: ScriptedModel,
                            gotify: GotifyServer) -> None:
    """The daemon restarts the unit and is stopped while it waits to see it stay up (its
    verification settles for 30 s), the incident's opening paged already."""
    slow = settings_for(tmp_path, model.url, gotify,
                        safety={"verify_settle_seconds": 30, "verify_timeout": 60})
    store, _ = run_daemon(slow, sb, lambda s: bool(gotify.accepted) and any(
        a.ran_at for a in ActionStore(s.db).find()), timeout=120)
    (action,) = ActionStore(store.db).find()
    assert (action.kind, action.state) == ("restart_unit", "failed"), action.reason
    assert action.result["verification"] == "cut off (cancelled)"
    # nothing is said of the fix at the stop: it may well have held
    assert [k for (k,) in store.db.conn.execute("SELECT kind FROM notify_events")] == ["opened"]


@contextlib.contextmanager
def stopped_during_the_fix_of(tmp_path: Path, unit: str
                              ) -> Iterator[tuple[Sandbox, ScriptedModel, GotifyServer]]:
    """A lab whose app.service (``unit``) failed, the daemon that fixed it stopped while it
    verified the fix, and the model and Gotify it spoke to, still there."""
    with Sandbox() as sb, ScriptedModel([propose_restart("app.service")] * 20) as model, \
            GotifyServer(TOKEN) as gotify:
        apply(sb, "install_unit", {"name": "app.service", "text": unit})
        apply(sb, "start_unit", {"name": "app.service"})
        stopped_while_verifying(tmp_path, sb, model, gotify)
        yield sb, model, gotify


def all_sent(store: IncidentStore) -> bool:
    return not store.db.conn.execute(
        "SELECT 1 FROM notify_events WHERE state='new'").fetchone()


def test_a_fix_that_held_is_not_paged_as_failed_after_a_stop_during_its_verification(
        tmp_path) -> None:
    with stopped_during_the_fix_of(tmp_path, TRANSIENT) as (sb, model, gotify):
        # started again: its first check finds the unit up
        store, _ = run_daemon(
            settings_for(tmp_path, model.url, gotify), sb,
            lambda s: s.incidents(None)[0].state == "resolved" and all_sent(s)
            and len(gotify.accepted) == 2, timeout=60)
        titles = [m["title"] for m in gotify.accepted]
        bodies = [m["message"] for m in gotify.accepted]
    host = store.hosts()[0]["name"]
    # told as its verification would have: fixed, the all-clear in one message
    assert titles == [f"[hal] {host}: app.service has failed",
                      f"[hal] {host}: fixed: app.service has failed"]
    assert "it held" in bodies[1]
    assert [k for (k,) in store.db.conn.execute("SELECT kind FROM notify_events")] == [
        "opened", "fixed"]


def test_a_fix_that_did_not_hold_is_told_once_by_the_checks_after_a_stop_during_its_verification(
        tmp_path) -> None:
    with stopped_during_the_fix_of(tmp_path, BROKEN) as (sb, model, gotify):
        told_at: list[float] = []

        def told_and_checked_again(s: IncidentStore) -> bool:
            # the fix's failure is said; then three more checks find the unit still failed
            if not told_at and any("fix failed" in m["title"] for m in gotify.accepted):
                told_at.append(time.time())
            return bool(told_at) and all_sent(s) and \
                s.hosts()[0]["last_check"] > told_at[0] + 3
        store, _ = run_daemon(settings_for(tmp_path, model.url, gotify, check_interval=1), sb,
                              told_and_checked_again, timeout=60)
        titles = [m["title"] for m in gotify.accepted]
        bodies = [m["message"] for m in gotify.accepted]
    host = store.hosts()[0]["name"]
    assert titles == [f"[hal] {host}: app.service has failed",
                      f"[hal] {host}: fix failed: app.service has failed"]
    assert "a stop cut its verification short" in bodies[1] and "did not hold" in bodies[1]
    assert [k for (k,) in store.db.conn.execute("SELECT kind FROM notify_events")] == [
        "opened", "failed"]
    (incident,) = store.incidents(None)
    assert incident.state == "open"
    # it waits for a person now, and its history says why, once
    assert store.needing_person([incident.id]) == {incident.id}
    escalated = [e.detail for e in store.get(incident.id, history=None).events
                 if e.kind == "escalated"]
    assert len(escalated) == 1 and "did not hold" in escalated[0]
