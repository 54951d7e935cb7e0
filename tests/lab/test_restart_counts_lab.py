"""A crash loop is judged from restart counts: while `systemctl show` fails, its incident stays
open (and the rules that do not need the counts still judge)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.orchestrator.checker import HostChecker
from ai_sysadmin.store import Database, IncidentStore
from tests.lab.daemon_runner import QUIET_HOST_WIDE

pytestmark = pytest.mark.lab

CRASHY = """\
[Unit]
Description=Worker that needs /etc/crashy.conf
StartLimitIntervalSec=0

[Service]
ExecStart=/bin/sh -c 'test -r /etc/crashy.conf || exit 1; exec sleep infinity'
Restart=always
RestartSec=200ms
"""
#: systemctl, but `show` fails as it does when the manager refuses a property query
NO_SHOW = """\
#!/bin/sh
if [ "$1" = show ]; then echo "Failed to get properties: Access denied" >&2; exit 1; fi
exec systemctl "$@"
"""
NO_SHOW_PATH = "/usr/local/bin/systemctl-no-show"


class OneScript(SandboxTransport):
    """The lab, collected as an SSH host is: every command in one script."""

    one_round_trip = True


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:g} s")
        time.sleep(0.05)


def restarts(sb: Sandbox, unit: str) -> int:
    out = sb.exec(["systemctl", "show", "--property=NRestarts", "--value", unit]).stdout
    return int(out.strip() or 0)


@pytest.mark.parametrize("one_round_trip", [False, True], ids=["per-command", "one-script"])
def test_a_crash_loop_incident_stays_open_while_restart_counts_cannot_be_read(
    tmp_path: Path, one_round_trip: bool
) -> None:
    # the host-wide rules read the whole machine's /proc: a busy test machine stays quiet
    settings = Settings(ai_name="labtest", state_dir=tmp_path, thresholds=QUIET_HOST_WIDE)
    no_show = Settings(ai_name="labtest", state_dir=tmp_path, thresholds=QUIET_HOST_WIDE,
                       programs={"systemctl": NO_SHOW_PATH})
    store = IncidentStore(Database(settings.db_path))
    with Sandbox() as sb:
        sb.write_file(NO_SHOW_PATH, NO_SHOW, 0o755)
        apply(sb, "install_unit", {"name": "crashy.service", "text": CRASHY})
        apply(sb, "start_unit", {"name": "crashy.service"})
        wait_until(lambda: restarts(sb, "crashy.service") >= 3, "crashy.service restarted 3 times")
        transport = OneScript(sb) if one_round_trip else SandboxTransport(sb)

        first = asyncio.run(HostChecker(transport, settings, store).check("interval"))
        [incident] = [i for i in store.incidents() if i.rule == "crash_loop"]
        assert incident.subject == "crashy.service" and first.outcome
        assert first.outcome.opened == [incident.id]

        # the same host, its restart counts unreadable: no evidence either way
        blind = asyncio.run(HostChecker(transport, no_show, store).check("interval"))

    assert "Access denied" in blind.errors["restarts"]
    assert set(blind.errors) == {"restarts"}
    assert "crash_loop" not in blind.judged_rules
    assert {"failed_unit", "unit_load_error"} <= blind.judged_rules  # list-units still answered
    assert any(u.name == "crashy.service" for u in blind.snapshot.units or [])
    assert blind.outcome and blind.outcome.resolved == []
    assert store.get(incident.id).state == "open"


#: runs two seconds, fails, and is started again: between crashes it looks healthy
SLOW_LOOP = """\
[Unit]
StartLimitIntervalSec=0

[Service]
ExecStart=/bin/sh -c 'sleep 2; exit 1'
Restart=on-failure
RestartSec=100ms
"""


def running_after(sb: Sandbox, unit: str, count: int) -> bool:
    shown = sb.exec(["systemctl", "show", "--property=NRestarts,SubState", unit]).stdout
    props = dict(line.split("=", 1) for line in shown.split())
    return int(props.get("NRestarts") or 0) > count and props.get("SubState") == "running"


def test_a_first_look_between_two_crashes_leaves_the_crash_loop_open(tmp_path: Path) -> None:
    """`check` from the command line (as a restarted daemon) has no earlier look: a unit that
    is between two crashes is no evidence that its loop ended, and its incident stays open."""
    settings = Settings(ai_name="labtest", state_dir=tmp_path,
                        thresholds={**QUIET_HOST_WIDE, "crash_loop_restarts": 1})
    store = IncidentStore(Database(settings.db_path))
    with Sandbox() as sb:
        apply(sb, "install_unit", {"name": "loop.service", "text": SLOW_LOOP})
        apply(sb, "start_unit", {"name": "loop.service"})
        transport = SandboxTransport(sb)
        daemon = HostChecker(transport, settings, store)
        wait_until(lambda: running_after(sb, "loop.service", 0), "a first restart")
        asyncio.run(daemon.check("interval"))
        seen = restarts(sb, "loop.service")
        wait_until(lambda: running_after(sb, "loop.service", seen), "another restart")
        opened = asyncio.run(daemon.check("interval"))
        [incident] = [i for i in store.incidents() if i.rule == "crash_loop"]
        assert opened.outcome and opened.outcome.opened == [incident.id]

        # a person's `check` while the unit runs again, seconds before its next crash
        seen = restarts(sb, "loop.service")
        wait_until(lambda: running_after(sb, "loop.service", seen), "the next restart")
        first_look = asyncio.run(HostChecker(transport, settings, store, consumer="check")
                                 .check("cli"))

    assert "crash_loop" not in first_look.judged_rules
    assert first_look.outcome and first_look.outcome.resolved == []
    assert store.get(incident.id).state == "open"
