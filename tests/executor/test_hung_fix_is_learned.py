"""A fix whose command the host took and which hung past ``safety.command_timeout`` ran (a
unit whose stop hangs): it failed, and is learned as a fix that did NOT work. It was kept
with no command on record, and so taught nothing, the log saying "none of its commands
ran", as a fix that never reached its host does. That one still teaches nothing: a program
the host does not have started nothing. The real executor, on this machine's transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.errors import NotStarted
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.knowledge.learning import lesson, nothing_ran
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import ActionStore, IncidentStore
from tests.conftest import BIN, run_program

#: systemctl on the test's host: app.service failed; a restart of it leaves its mark (it
#: ran), then hangs as a unit whose stop never ends
SYSTEMCTL = """#!/bin/sh
case "$1" in
show) printf 'Id=app.service\\nNames=app.service\\nLoadState=loaded\\nActiveState=failed\\n\
Type=simple\\n';;
list-units) echo '[{"unit":"app.service","load":"loaded","active":"failed","sub":"failed"}]';;
restart) echo "$*" >> "$0.ran"; exec sleep 60;;
esac
"""


def _restart(settings: Settings, store: IncidentStore, systemctl: Path) -> tuple[int, int]:
    """The incident of app.service's failure, and a restart of it proposed for a person."""
    settings = settings.model_copy(update={"programs": settings.programs.model_copy(
        update={"systemctl": str(systemctl)})})
    host = short_hostname()
    failed = Finding(host, "failed_unit", "app.service", Severity.CRITICAL, "failed")
    incident_id = store.record_check(host, [failed], {"failed_unit"}).opened[0]
    action = asyncio.run(Executor(settings, store, {host: LocalTransport(host)}).propose(
        host, "restart_unit", {"unit": "app.service"}, incident_id=incident_id))
    assert action.state == "pending", action.reason
    return incident_id, action.id


def test_a_fix_that_hung_past_its_time_ran_and_is_learned_as_failed(
        tmp_path: Path, config_file: Callable[[str], Path], settings: Settings,
        store: IncidentStore) -> None:
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(SYSTEMCTL)
    systemctl.chmod(0o755)
    config_file(f'[programs]\nsystemctl = "{systemctl}"\n'
                "[safety]\nverify_settle_seconds = 0\nverify_timeout = 1\n"
                "command_timeout = 1\n")
    incident_id, action_id = _restart(settings, store, systemctl)

    done = run_program(str(BIN), "approve", "approve", str(action_id))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "timed out after 1 s" in done.stdout + done.stderr
    # it reached the host
    assert (tmp_path / "systemctl.ran").read_text() == "restart -- app.service\n"

    failed = ActionStore(store.db).get(action_id)
    assert failed.state == "failed"
    assert failed.result is not None
    (restart,) = failed.result["commands"]
    # what it did is not known: no exit status, and why
    assert restart["argv"] == ["systemctl", "restart", "--", "app.service"]
    assert restart["returncode"] is None
    assert "timed out after 1 s" in restart["error"]
    assert not nothing_ran(failed)
    learned = lesson(store.get(incident_id), failed)
    assert learned is not None and learned.record.outcome == "failed"
    assert "restart_unit{unit=app.service} did NOT fix it" in learned.entry.text

    # as `approve show` says it: no exit status, what it ended with
    shown = run_program(str(BIN), "approve", "show", str(action_id), "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["result"] == failed.result
    shown = run_program(str(BIN), "approve", "show", str(action_id))
    assert shown.returncode == 0, shown.stderr
    assert '"returncode": null' in shown.stdout and "timed out after 1 s" in shown.stdout


class Lacking(LocalTransport):
    """This machine, where the program a restart names is not there when it runs: the
    system says so (ENOENT), and no process started."""

    def __init__(self, host: str, missing: Path) -> None:
        super().__init__(host)
        self.missing = missing

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        if argv[1:2] == ("restart",):
            return (str(self.missing), *argv[1:])
        return argv


def test_a_fix_whose_program_the_host_lacks_ran_nothing_and_teaches_nothing(
        tmp_path: Path, settings: Settings, store: IncidentStore) -> None:
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(SYSTEMCTL)
    systemctl.chmod(0o755)
    settings = settings.model_copy(update={
        "programs": settings.programs.model_copy(update={"systemctl": str(systemctl)}),
        "safety": settings.safety.model_copy(update={
            "verify_settle_seconds": 0, "verify_timeout": 1, "command_timeout": 1})})
    incident_id, action_id = _restart(settings, store, systemctl)
    host = short_hostname()
    lacking = Lacking(host, tmp_path / "no" / "systemctl")
    # the transport says that it never started, as it says of a host it never reached
    with pytest.raises(NotStarted):
        asyncio.run(lacking.run([str(systemctl), "restart", "--", "app.service"]))
    executor = Executor(settings, store, {host: lacking})
    failed = asyncio.run(executor.approve(action_id, "alice"))
    assert failed.state == "failed", failed.reason
    assert "cannot start" in failed.reason
    assert not (tmp_path / "systemctl.ran").exists()
    # nothing of it on record as having run, and no lesson: whether it works is not known
    assert "commands" not in (failed.result or {})
    assert nothing_ran(failed)
    assert lesson(store.get(incident_id), failed) is None
