"""Errors a user's own service logs (systemd --user) are that service's, inside the user's
manager: never a burst of the host's user@UID.service, which automation could restart and so
end the user's whole session."""

from __future__ import annotations

import asyncio
import time

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.findings import automation_may_touch
from ai_sysadmin.monitor.rules import RuleContext, evaluate
from ai_sysadmin.safety.units import unit_problem

pytestmark = pytest.mark.lab


def test_a_user_units_errors_are_its_own_not_the_users_manager(
    sandbox: Sandbox, lab_settings: Settings
) -> None:
    sandbox.exec(["systemctl", "start", "user@0.service"], check=True)
    errors = lab_settings.thresholds.journal_error_burst + 5
    # it stays alive until its lines are read: journald learns an entry's unit from the
    # writer's cgroup, and a writer gone before a busy journald got to its stream has none
    sandbox.exec(["env", "XDG_RUNTIME_DIR=/run/user/0", "systemd-run", "--user",
                  "--unit=myapp", "sh", "-c",
                  f'for i in $(seq {errors}); do echo "<3>myapp: cannot reach db $i"; done; '
                  "exec sleep 120"], check=True)
    collector = Collector(SandboxTransport(sandbox), lab_settings)
    deadline = time.monotonic() + 30
    while True:
        snapshot = asyncio.run(collector.collect())
        mine = [e for e in snapshot.journal or [] if "cannot reach db" in e.message]
        if len(mine) >= errors:
            break
        assert time.monotonic() < deadline, f"{len(mine)} of the errors reached the journal"
    assert {e.source for e in mine} == {"myapp.service of user@0.service"}
    findings, _ = evaluate(RuleContext(snapshot, lab_settings.thresholds))
    [burst] = [f for f in findings if f.rule == "journal_error_burst"
               and "cannot reach db" in " ".join(f.evidence)]
    assert burst.subject == "myapp.service of user@0.service"
    assert unit_problem(burst.subject) is not None  # no unit automation could act on
    sandbox.exec(["env", "XDG_RUNTIME_DIR=/run/user/0", "systemctl", "--user", "stop",
                  "myapp.service"], check=True)


@pytest.mark.parametrize(("unit", "may"), [
    ("nginx.service", True), ("data.mount", True), ("user@1000.service", False),
    ("session-4.scope", False), ("app-firefox-1234.scope", False)])
def test_automation_never_takes_a_scope_or_a_users_manager_for_the_incidents_unit(
    unit: str, may: bool
) -> None:
    assert automation_may_touch(unit) is may
