"""A fix that never reached its host teaches nothing: on real systemd, through the real executor
and a real embedded ChromaDB. A restart verified once is learned; the next time the same unit
fails, the host goes away (powered off) as the same restart is sent, and its first command never
runs there. The fix failed, but with nothing having run, nothing is known of whether it works:
learned as "did NOT fix it", it demoted the verified lesson, on every host of the fleet."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.executor import Executor
from ai_sysadmin.executor.executor import Progress
from ai_sysadmin.knowledge.context import KnowledgeRecall
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import Action, Database, IncidentStore
from tests.support.polling import poll_until

pytestmark = [pytest.mark.lab, pytest.mark.slow]
HOST = "gonelab"
# fails on each start after /var/tmp/ran-once is removed, and runs on at the start after
ONCE = """
[Unit]
StartLimitIntervalSec=0

[Service]
ExecStart=/bin/sh -c 'if [ -e /var/tmp/ran-once ]; then exec sleep infinity; fi; touch /var/tmp/ran-once; exit 1'
"""  # noqa: E501


def _failed(sb: Sandbox) -> bool:
    return sb.exec(["systemctl", "is-failed", "flaky.service"]).stdout.strip() == "failed"


def test_a_fix_whose_host_went_away_before_its_first_command_teaches_nothing(
        tmp_path: Path) -> None:
    settings = Settings(ai_name="labtest", state_dir=tmp_path / "state",
                        autonomy_level="suggest", knowledge={"seed": False},
                        safety={"verify_settle_seconds": 0, "verify_timeout": 20})
    store = IncidentStore(Database(settings.db_path))
    recall = KnowledgeRecall(settings)
    finding = Finding(HOST, "failed_unit", "flaky.service", Severity.CRITICAL,
                      "flaky.service failed")

    async def learn(action: Action) -> None:  # as the daemon's runtime does, at each end
        assert action.incident_id is not None
        await asyncio.to_thread(recall.learn, store.get(action.incident_id), action)

    with Sandbox(hostname=HOST) as sb:
        apply(sb, "install_unit", {"name": "flaky.service", "text": ONCE})
        apply(sb, "start_unit", {"name": "flaky.service"})
        poll_until(lambda: _failed(sb), what="flaky.service failed")
        executor = Executor(settings, store, {HOST: SandboxTransport(sb)})
        executor.outcome_listeners.append(learn)

        async def restart(incident_id: int) -> Action:
            action = await executor.propose(HOST, "restart_unit", {"unit": "flaky.service"},
                                            incident_id=incident_id)
            assert action.state == "pending", action.reason
            return await executor.approve(action.id, "tester", "restart it")

        (incident_id,) = store.record_check(HOST, [finding], {"failed_unit"}).opened
        worked = asyncio.run(restart(incident_id))
        assert worked.state == "succeeded", worked.result

        # it fails again; the host powers off as the same restart's first command is sent
        sb.exec(["rm", "-f", "/var/tmp/ran-once"], check=True)
        sb.exec(["systemctl", "restart", "flaky.service"])
        poll_until(lambda: _failed(sb), what="flaky.service failed again")
        store.record_check(HOST, [finding], {"failed_unit"})

        def gone(step: Progress) -> None:
            if step.step == "running":
                sb.stop()

        executor.progress_listeners.append(gone)
        unreached = asyncio.run(restart(incident_id))

    # failed, with none of its commands on record as having run
    assert unreached.state == "failed", unreached.state
    assert unreached.ran_at is None and "commands" not in (unreached.result or {}), \
        unreached.result
    assert "lab is down" in unreached.result["error"] or "not started" in \
        unreached.result["error"], unreached.result
    # nothing of it was learned: the verified restart still guides, and nothing says it
    # failed
    assert not [e for e in recall.kb.list() if e.id.endswith("-failed")]
    text = asyncio.run(recall.recall(store.get(incident_id)))
    items = text.splitlines()[1:]
    assert items and items[0].startswith("1. [past incident, fix verified · may guide a fix]"), \
        text
    assert "restart_unit{unit=flaky.service} fixed it" in items[0]
    assert "did NOT" not in text, text
