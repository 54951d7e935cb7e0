"""kill -9 between approval and execution, 20 times: never run twice, never lose an approval."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from ai_sysadmin.executor import Executor
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.store import Database, IncidentStore
from tests.lab.approve_in_lab import lab_settings
from tests.lab.daemon_in_lab import IntoLab
from tests.lab.forkserver import ForkServer

pytestmark = [pytest.mark.lab, pytest.mark.slow]
COUNTED = """
[Unit]
# 20 restarts in a few seconds: systemd's start rate limit would refuse them
StartLimitIntervalSec=0

[Service]
ExecStartPre=/bin/sh -c 'echo start >> /var/lib/starts'
ExecStart=/bin/sleep infinity
"""
TRIALS = 20


def starts(sb: Sandbox) -> int:
    return len(sb.exec(["cat", "/var/lib/starts"]).stdout.splitlines())


def recover_then_approve(executor: Executor, action_id: int, after_crash: str) -> None:
    """What the restarted daemon (its start's recovery), then an operator, does."""
    if after_crash != "pending":
        for action in executor.recover():
            asyncio.run(executor.run(action.id))
    if executor.actions.get(action_id).state == "pending":
        # the approval died before anything ran: it waits for a person again
        assert after_crash in ("pending", "approved"), after_crash
        asyncio.run(executor.approve(action_id, "tester", "crash trial"))


def test_kill_9_between_approval_and_execution(tmp_path: Path) -> None:
    rng = random.Random(20)
    settings = lab_settings(tmp_path)
    store = IncidentStore(Database(settings.db_path))
    outcomes: list[tuple[str, int]] = []
    with Sandbox() as sb:
        apply(sb, "install_unit", {"name": "counted.service", "text": COUNTED})
        apply(sb, "start_unit", {"name": "counted.service"})
        executor = Executor(settings, store, {"sdtest": IntoLab(sb.pid1)})
        # how long one uncrashed approval takes, so that the crashes spread over all of it
        calibration = asyncio.run(executor.propose("sdtest", "restart_unit",
                                                  {"unit": "counted.service"}))
        with ForkServer("tests.lab.approve_in_lab:approve", stderr=None) as approvals:
            started = time.monotonic()
            approvals.start(sb.pid1, tmp_path, calibration.id)
            assert approvals.reap(60) == 0
            span = time.monotonic() - started
            for _ in range(TRIALS):
                action = asyncio.run(executor.propose("sdtest", "restart_unit",
                                                      {"unit": "counted.service"}))
                assert action.state == "pending"
                before = starts(sb)
                pid = approvals.start(sb.pid1, tmp_path, action.id)
                # a crash at a random moment: before, while or (past its span) after it ran
                time.sleep(rng.uniform(0.0, 1.2 * span))
                os.kill(pid, signal.SIGKILL)
                approvals.reap(10)
                after_crash = executor.actions.get(action.id).state
                recover_then_approve(executor, action.id, after_crash)
                final = executor.actions.get(action.id)
                ran = starts(sb) - before
                outcomes.append((after_crash, ran))
                # never twice; never lost: every approval ends in a final state
                assert ran <= 1, (after_crash, final.state, ran)
                assert final.state in ("succeeded", "failed"), (after_crash, final.state)
                if final.state == "succeeded":
                    assert ran == 1
                if final.state == "failed":
                    # only an execution cut off by the crash may end failed, and it is not
                    # retried
                    assert after_crash == "executing", final.result
                    result = final.result or {}
                    if final.ran_at is None:  # nobody knows whether its command ran
                        assert "interrupted" in result.get("error", ""), result
                    else:  # it ran, on record: its verification was cut off
                        assert ran == 1, result
                        assert str(result.get("verification")).startswith("cut off"), result
    crashed_states = {state for state, _ in outcomes}
    print("states after the crash:", sorted(Counter(s for s, _ in outcomes).items()))
    assert len(outcomes) == TRIALS
    # the crashes hit before, during and after the execution, not only one phase
    assert len(crashed_states) >= 2, outcomes
