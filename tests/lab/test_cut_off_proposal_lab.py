"""A daemon killed while an investigation waits for the model's last answer, its proposal
already recorded: after the restart the next investigation proposes afresh, and the cut-off
run's proposal is abandoned. Both were decided, and one failure was fixed twice (a unit that
was up by then restarted again)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.store import ActionStore, Database, IncidentStore
from tests.support.polling import poll_until
from tests.support.scripted_model import ScriptedModel, call, delay, say

pytestmark = [pytest.mark.lab, pytest.mark.slow]
HARNESS = Path(__file__).with_name("daemon_with_model.py")
#: fails at its first start; every start after it (a fix) comes up for good
UNIT = """
[Unit]
StartLimitIntervalSec=0
[Service]
ExecStart=/bin/sh -c 'echo start >> /var/lib/starts; if [ -e /var/tmp/ok ]; then exec sleep infinity; fi; touch /var/tmp/ok; exit 1'
"""  # noqa: E501


def test_a_proposal_of_a_cut_off_investigation_is_not_decided_beside_the_next(
        tmp_path: Path) -> None:
    held = threading.Event()

    def model(request: dict[str, Any]) -> Any:
        last = request["messages"][-1]
        if last["role"] == "tool" and "nothing was executed" in str(last.get("content")):
            if not held.is_set():  # the first run's last answer never comes: the kill
                held.set()
                return delay(120, say("DIAGNOSIS: it failed once. PROPOSALS: restart_unit"))
            return say("DIAGNOSIS: it failed once. PROPOSALS: restart_unit")
        text = " ".join(str(m.get("content", "")) for m in request["messages"])
        if "app.service" not in text:
            return say("DIAGNOSIS: nothing of mine to fix here.")
        return call("propose_action", kind="restart_unit", parameters={"unit": "app.service"},
                    rationale="a restart brings it back")

    def daemon(url: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, str(HARNESS), str(sb.pid1), str(tmp_path), url],
                                cwd=Path(__file__).parents[2], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    def starts() -> int:
        return len(sb.exec(["cat", "/var/lib/starts"]).stdout.splitlines())

    with Sandbox() as sb, ScriptedModel(then=model) as scripted:
        apply(sb, "install_unit", {"name": "app.service", "text": UNIT})
        apply(sb, "start_unit", {"name": "app.service"})
        store = IncidentStore(Database(tmp_path / "state.db"))
        first = daemon(scripted.url)
        try:
            poll_until(lambda: held.is_set() or first.poll() is not None, 90,
                       "the first investigation to propose its fix")
            poll_until(lambda: first.poll() is not None or bool(store.db.conn.execute(
                "SELECT 1 FROM proposals WHERE state='proposed'").fetchone()), 30,
                "the proposal to be recorded")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert starts() == 1  # the break; nothing fixed yet
        second = daemon(scripted.url)
        try:
            poll_until(lambda: any(i.state == "resolved" for i in store.incidents(None))
                       and not any(a.state in ("approved", "executing", "verifying")
                                   for a in ActionStore(store.db).find()), 90,
                       "the incident fixed and its fixes settled")
            poll_until(lambda: sb.exec(["systemctl", "is-active", "app.service"]).stdout.strip()
                       == "active", 30, "the unit up")
        finally:
            second.terminate()
            second.wait(30)
        started = starts()
    ran = [a for a in ActionStore(store.db).find() if a.started_at is not None]
    states = dict(store.db.conn.execute("SELECT id, state FROM proposals").fetchall())
    assert started == 2, f"the unit started {started} times: once broken, once fixed"
    assert len(ran) == 1, [(a.id, a.state, a.reason) for a in ran]
    assert "abandoned" in states.values(), states
