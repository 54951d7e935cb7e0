"""End to end on real systemd: a unit fails, the daemon investigates (scripted model proposing a
restart at autonomy `suggest`), a message asks for approval with the exact command; approving
it runs the fix, verifies it, and the "fixed" message follows."""

from __future__ import annotations

import asyncio
import re

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab import SandboxTransport
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.orchestrator.daemon import build_daemon
from ai_sysadmin.orchestrator.runtime import Runtime
from ai_sysadmin.store import Database, IncidentStore
from tests.lab.daemon_runner import QUIET_HOST_WIDE
from tests.lab.test_remediation_lab import TRANSIENT, propose_restart
from tests.notify.conftest import TOKEN, secret_file
from tests.support.polling import until
from tests.support.scripted_model import ScriptedModel

pytestmark = pytest.mark.lab


def test_a_failed_unit_asks_for_approval_and_the_fix_is_reported(tmp_path, gotify) -> None:
    with Sandbox() as sb, ScriptedModel([propose_restart("flaky.service")] * 20) as model:
        apply(sb, "install_unit", {"name": "flaky.service", "text": TRANSIENT})
        apply(sb, "start_unit", {"name": "flaky.service"})
        settings = Settings(
            ai_name="hal", state_dir=tmp_path / "state", check_interval=3600,
            autonomy_level="suggest", thresholds=QUIET_HOST_WIDE,
            llm={"backend": "openai", "url": model.url, "model": "scripted", "timeout": 10},
            agent={"retry_backoff_seconds": 0.5},
            safety={"verify_settle_seconds": 1, "verify_timeout": 15},
            gotify_url=gotify.url, gotify_token_file=secret_file(tmp_path / "token", TOKEN))
        store = IncidentStore(Database(settings.db_path))
        transport = SandboxTransport(sb)

        async def go() -> str:
            daemon = build_daemon(Runtime(settings, store, [transport]))
            running = asyncio.create_task(daemon.run())
            try:
                asked = await until(lambda: [m for m in gotify.accepted
                                             if "hal-approve approve" in m["message"]], 90)
                number = re.search(r"Next: hal-approve approve (\d+)$", asked[0]["message"])
                assert number, asked[0]["message"]
                # a person runs the command the message names
                done = await daemon.executor.approve(int(number.group(1)), "alice")
                assert done.state == "succeeded"
                await until(lambda: len(gotify.accepted) >= 3, 30)
            finally:
                daemon.stop_event.set()
                await asyncio.wait_for(running, 30)
            return sb.exec(["systemctl", "is-active", "flaky.service"]).stdout.strip()

        assert asyncio.run(go()) == "active"
    host = transport.host
    opened, asked, fixed = gotify.accepted[:3]
    assert (opened["title"], opened["priority"]) == (
        f"[hal] {host}: flaky.service has failed", 8)
    assert "> flaky.service: load=loaded active=failed sub=failed" in opened["message"]
    assert opened["message"].endswith("Next: hal-issues show 1")
    assert (asked["title"], asked["priority"]) == (
        f"[hal] {host}: approval needed: restart_unit flaky.service", 8)
    assert "Proposed: restart_unit flaky.service (risk low)" in asked["message"]
    assert (fixed["title"], fixed["priority"]) == (
        f"[hal] {host}: fixed: flaky.service has failed", 2)
    assert "Ran restart_unit flaky.service; verified: finding gone and flaky.service active" \
        in fixed["message"]
    assert fixed["message"].endswith("Next: hal-issues show 1")
    assert all(r.headers["x-gotify-key"] == TOKEN and r.path == "/message"
               for r in gotify.requests)
