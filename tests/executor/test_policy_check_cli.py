"""``policy check`` prints the decision the daemon would record (``Executor.propose``), and
refuses a question it cannot answer rather than judging another one: the real CLI, in a child
process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.store import IncidentStore
from tests.conftest import BIN, run_program

#: systemctl on a host whose bus does not answer: nothing the policy needs can be read
NO_BUS = "#!/bin/sh\necho 'Failed to connect to bus: Host is down' >&2\nexit 1\n"

STOP = json.dumps({"kind": "run_command",
                   "parameters": {"argv": ["systemctl", "stop", "foo.service"]}})


def no_bus(tmp_path: Path, config_file: Callable[[str], Path], settings: Settings
           ) -> Settings:
    """This machine's systemctl is :data:`NO_BUS`, for the CLI and for ``settings``."""
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(NO_BUS)
    systemctl.chmod(0o755)
    config_file(f'[programs]\nsystemctl = "{systemctl}"\n')
    return settings.model_copy(update={"programs": settings.programs.model_copy(
        update={"systemctl": str(systemctl)})})


def test_policy_check_of_a_unit_the_host_cannot_describe_says_what_the_daemon_records(
        tmp_path: Path, config_file: Callable[[str], Path], settings: Settings,
        store: IncidentStore) -> None:
    """The daemon asks a person, who may approve once the host answers; policy check said
    "refused" (exit 1)."""
    settings = no_bus(tmp_path, config_file, settings)
    host = short_hostname()
    recorded = asyncio.run(Executor(settings, store, {host: LocalTransport(host)}).propose(
        host, "run_command", {"argv": ["systemctl", "stop", "foo.service"]}))
    assert recorded.state == "pending"
    # asked to approve, the person reads that it waits for the host, not a refusal alone
    assert recorded.reason.startswith("it waits for a person until the host answers: what "
                                      "the policy needs could not be read on the host")
    assert "Host is down" in recorded.reason and "judges it again" in recorded.reason

    done = run_program(str(BIN), "policy", "check", "--json", STOP)
    assert done.returncode == 0, done.stdout + done.stderr
    shown = json.loads(done.stdout)
    assert (shown["state"], shown["autonomy"]) == ("pending", "approval")
    assert shown["reason"] == recorded.reason and "Host is down" in shown["unread"]

    done = run_program(str(BIN), "policy", "check", STOP)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "run_command systemctl stop foo.service: not judged: the host did " \
        "not say what the policy needs", done.stdout
    assert "refused" not in lines[0] and lines[1] == "  at autonomy suggest: approval " \
        "(the action would be pending)"
    assert lines[2].startswith("  why: it waits for a person until the host answers")


def test_policy_check_refuses_parameters_that_are_no_object_and_an_unknown_host() -> None:
    """Each was judged as another question: the action's defaults, a host nobody manages
    (both "allowed", exit 0)."""
    done = run_program(str(BIN), "policy", "check",
                       '{"kind": "vacuum_journal", "parameters": "x"}')
    assert (done.returncode, done.stdout) == (2, ""), done.stdout
    assert done.stderr == 'error: "parameters" must be a JSON object, not "x"; for ' \
        'example {"unit": "nginx.service"}\n'
    done = run_program(str(BIN), "policy", "check",
                       '{"kind": "vacuum_journal", "parameters": ["500M"]}')
    assert done.returncode == 2 and "must be a JSON object" in done.stderr

    done = run_program(str(BIN), "policy", "check", "--json",
                       '{"kind": "vacuum_journal", "host": "nowhere"}')
    assert (done.returncode, done.stdout) == (2, ""), done.stdout
    assert done.stderr == f"error: nowhere is not a managed host; managed: " \
        f"{short_hostname()} (add one with `systems add`)\n"
    # this machine, by its name, is judged
    done = run_program(str(BIN), "policy", "check", "--json", json.dumps(
        {"kind": "vacuum_journal", "host": short_hostname()}))
    assert done.returncode == 0 and json.loads(done.stdout)["allowed"] is True
