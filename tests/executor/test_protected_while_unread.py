"""A stop of a protected unit proposed while the host cannot describe its units (its bus does
not answer) is refused, at every level, as it is where the host answers: sshd is protected by
its name, which no answer of the host changes. It was recorded pending and a person was
asked to approve "systemctl stop sshd". The real executor and CLI on this machine, whose
systemctl does not reach a bus."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.store import IncidentStore
from ai_sysadmin.store.outbox import EVENT_STATES, Outbox
from tests.conftest import BIN, run_program
from tests.executor.test_policy_check_cli import no_bus

PROTECTED_STOPS: list[tuple[str, dict[str, Any]]] = [
    ("run_command", {"argv": ["systemctl", "stop", "sshd"]}),
    ("run_command", {"argv": ["systemctl", "mask", "ssh.service"]}),
    ("run_command", {"argv": ["systemctl", "disable", "sshd.service"]}),
    ("stop_unit", {"unit": "sshd.service"}),
]


@pytest.mark.parametrize("level", ["auto-full", "suggest"])
def test_a_stop_of_a_protected_unit_is_refused_while_the_host_cannot_describe_it(
        tmp_path: Path, config_file: Callable[[str], Path], settings: Settings,
        store: IncidentStore, level: str) -> None:
    settings = no_bus(tmp_path, config_file, settings).model_copy(
        update={"autonomy_level": level})
    host = short_hostname()
    executor = Executor(settings, store, {host: LocalTransport(host)})
    for kind, params in PROTECTED_STOPS:
        action = asyncio.run(executor.propose(host, kind, params))
        assert action.state == "refused", (kind, params, action.reason)
        assert "waits for a person" not in action.reason
        if kind == "run_command":
            assert "is protected" in action.reason, action.reason
    # nobody is asked to approve what is refused
    kinds = [e.kind for e in Outbox.events(store.db.conn, EVENT_STATES)]
    assert "approval" not in kinds, kinds

    # the same stop of a unit no name protects still waits for the host's facts
    other = asyncio.run(executor.propose(
        host, "run_command", {"argv": ["systemctl", "stop", "foo.service"]}))
    assert other.state == "pending" and "until the host answers" in other.reason
    # a yes while the host still cannot say runs nothing and leaves it for another yes
    again = asyncio.run(executor.approve(other.id, "alice"))
    assert again.state == "pending" and "it can be approved again" in again.reason
    assert again.started_at is None


def test_policy_check_says_refused_for_a_protected_unit_the_host_cannot_describe(
        tmp_path: Path, config_file: Callable[[str], Path], settings: Settings) -> None:
    no_bus(tmp_path, config_file, settings)
    done = run_program(str(BIN), "policy", "check", "--json", "--command", "--",
                       "systemctl", "stop", "sshd")
    assert done.returncode == 1, done.stdout + done.stderr
    shown = json.loads(done.stdout)["remediate"]
    assert (shown["allowed"], shown["state"], shown["autonomy"]) == (False, "refused",
                                                                      "refuse")
    assert shown["unread"] is None and "is protected" in shown["reason"]
