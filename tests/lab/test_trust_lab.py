"""Units and processes judged by what the host says they are, on real systemd (issue 8, classes
1-7): reboot-like units, update units, aliases of protected units, the units that carry the way
in, the incident's own unit, the assistant's own units, login sessions.

Each case goes through the executor as the daemon uses it: the model's proposal, the facts read
in the lab over the transport, the policy's plan, the autonomy decision at ``auto-full`` (the
level that runs the most on its own)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.executor import Executor
from ai_sysadmin.executor.host_facts import own_identity
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import Action, Database, IncidentStore

pytestmark = pytest.mark.lab
HOST = "trustlab"
SLEEPER = "[Service]\nExecStart=/bin/sleep infinity\n"


@pytest.fixture(scope="module")
def lab() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        units = {
            # innocent names, dangerous properties
            "nightly-tidy.service": "[Unit]\nSuccessAction=reboot\n"
                                    "[Service]\nType=oneshot\nExecStart=/bin/true\n",
            "cleanup.service": "[Unit]\nRequires=poweroff.target\n"
                               "[Service]\nType=oneshot\nExecStart=/bin/true\n",
            "quiet.service": "[Service]\nType=oneshot\nExecStart=/bin/systemctl poweroff\n",
            "cleanup.timer": "[Timer]\nOnCalendar=yearly\nUnit=nightly-tidy.service\n",
            "watchdog-app.service": f"[Unit]\nFailureAction=reboot\n{SLEEPER}",
            "hostile.service": f"[Unit]\nConflicts=ssh.service\n{SLEEPER}",
            # updates under other names
            "nixos-upgrade.service": "[Service]\nType=oneshot\nExecStart=/bin/true\n",
            "offline-apply.service": "[Unit]\nBefore=system-update.target\n"
                                     "[Service]\nType=oneshot\nExecStart=/bin/true\n",
            # the way in
            "mynet.service": f"[Unit]\nBefore=network.target\nWants=network.target\n{SLEEPER}",
            "tailscaled.service": SLEEPER,
            # plain services
            "webapp.service": SLEEPER,
            "worker.service": SLEEPER,
            "keeper.service": f"{SLEEPER}[Install]\nAlias=front.service\n"
                              "WantedBy=multi-user.target\n",
            "labtest-ai.service": SLEEPER,
        }
        for name, text in units.items():
            apply(sb, "install_unit", {"name": name, "text": text})
        # an alias by symlink, as a package or a person makes one
        sb.exec(["ln", "-s", "/lib/systemd/system/systemd-journald.service",
                 "/etc/systemd/system/logkeeper.service"], check=True)
        sb.exec(["systemctl", "enable", "keeper.service"], check=True)
        sb.exec(["systemctl", "daemon-reload"], check=True)
        for name in ("webapp.service", "worker.service", "keeper.service",
                     "watchdog-app.service", "labtest-ai.service"):
            apply(sb, "start_unit", {"name": name})
        # a login session's scope, as logind names them
        # (a scope keeps its command in the foreground: a service starts it)
        sb.exec(["systemd-run", "--unit=login-maker", "systemd-run", "--scope",
                 "--unit=session-77", "--slice=user-1000", "/bin/sleep", "infinity"],
                check=True)
        yield sb


@pytest.fixture
def executor(lab: Sandbox, tmp_path: Path) -> Executor:
    settings = Settings(ai_name="labtest", state_dir=tmp_path, autonomy_level="auto-full",
                        safety={"protected_units": ["keeper.service"]})
    store = IncidentStore(Database(settings.db_path))
    return Executor(settings, store, {HOST: SandboxTransport(lab)})


def incident(executor: Executor, unit: str) -> int:
    finding = Finding(HOST, "failed_unit", unit, Severity.CRITICAL, f"{unit} failed")
    executor.store.record_check(HOST, [finding], {"failed_unit"})
    return next(i.id for i in executor.store.incidents(None) if i.subject == unit)


def propose(executor: Executor, kind: str, about: str | None = None, **params: object
            ) -> Action:
    incident_id = incident(executor, about) if about else None
    return asyncio.run(executor.propose(HOST, kind, params, incident_id=incident_id))


def pid1_is_systemd(lab: Sandbox) -> bool:
    return lab.exec(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"


# -- 1. units whose start is a reboot, power-off, sleep or rescue ------------------------------
@pytest.mark.parametrize(("unit", "why"), [
    ("systemd-reboot.service", "SuccessAction=reboot-force"),
    ("systemd-poweroff.service", "SuccessAction=poweroff-force"),
    ("systemd-suspend.service", "sleep.target"),
    ("nightly-tidy.service", "SuccessAction=reboot"),
    ("cleanup.service", "poweroff.target"),
    ("quiet.service", "systemctl poweroff"),
    ("cleanup.timer", "triggers nightly-tidy.service"),
    ("hostile.service", "stops ssh.service"),
])
def test_a_unit_whose_start_takes_the_host_down_is_refused(executor, lab, unit, why) -> None:
    for kind in ("start_unit", "restart_unit"):
        # even when the incident is about that very unit
        action = propose(executor, kind, unit, unit=unit)
        assert action.state == "refused", action
        assert why in action.reason and "refused at every level" in action.reason
    assert pid1_is_systemd(lab)


def test_a_unit_that_reboots_when_it_fails_needs_a_person(executor) -> None:
    action = propose(executor, "restart_unit", "watchdog-app.service",
                     unit="watchdog-app.service")
    assert (action.state, action.risk) == ("pending", "high")
    assert "FailureAction" in action.reason and "reboot" in action.reason


# -- 2. units that install updates ---------------------------------------------------------------
@pytest.mark.parametrize(("unit", "why"), [
    ("apt-daily-upgrade.service", "apt.systemd.daily"),
    ("nixos-upgrade.service", "installs updates"),
    ("offline-apply.service", "system-update.target"),
])
def test_a_unit_that_installs_updates_carries_update_packages_risk(executor, unit, why) -> None:
    action = propose(executor, "start_unit", unit, unit=unit)
    assert (action.state, action.risk) == ("pending", "high"), action
    assert why in action.reason and "update_packages" in action.reason


# -- 3. protected units under other names ------------------------------------------------------
@pytest.mark.parametrize(("alias", "canonical"), [
    ("dbus-org.freedesktop.login1.service", "systemd-logind.service"),
    ("logkeeper.service", "systemd-journald.service"),
    ("front.service", "keeper.service"),
])
def test_an_alias_is_judged_as_the_unit_it_names(executor, alias, canonical) -> None:
    restart = propose(executor, "restart_unit", alias, unit=alias)
    assert (restart.state, restart.risk, restart.subject) == ("pending", "high", canonical)
    assert "protected" in restart.reason
    # what runs is the canonical name that was judged
    assert restart.plan["commands"] == [["systemctl", "restart", "--", canonical]]
    for verb in ("stop", "disable", "mask"):
        stop = propose(executor, "run_command", argv=["systemctl", verb, alias])
        assert stop.state == "refused" and "never stopped" in stop.reason, stop


# -- 4. the units that carry the way in ----------------------------------------------------------
@pytest.mark.parametrize(("unit", "why"), [
    ("mynet.service", "brings the network up"),
    ("systemd-networkd.service", "cut the way in"),
    ("tailscaled.service", "remote access"),
])
def test_the_way_in_is_never_restarted_automatically(executor, unit, why) -> None:
    action = propose(executor, "restart_unit", unit, unit=unit)
    assert (action.state, action.risk) == ("pending", "high"), action
    assert why in action.reason


# -- 5. only the unit the incident is about -------------------------------------------------------
def test_an_automatic_restart_touches_only_the_incidents_unit(executor, lab) -> None:
    own = propose(executor, "restart_unit", "webapp.service", unit="webapp")
    assert (own.state, own.risk) == ("approved", "low"), own
    other = propose(executor, "restart_unit", "webapp.service", unit="worker.service")
    assert (other.state, other.risk) == ("pending", "high")
    assert "the incident is about webapp.service, not worker.service" in other.reason
    alone = propose(executor, "restart_unit", unit="webapp.service")
    assert alone.state == "pending" and "no incident names this unit" in alone.reason
    ran = asyncio.run(executor.run(own.id))
    assert ran.state in ("succeeded", "failed")  # it ran: the finding is not in the lab
    assert ran.started_at is not None


def test_facts_that_change_after_the_decision_stop_an_automatic_run(executor, lab) -> None:
    action = propose(executor, "restart_unit", "worker.service", unit="worker.service")
    assert action.state == "approved"
    # between the decision and the run, the unit becomes one that reboots the host
    lab.exec(["mkdir", "-p", "/etc/systemd/system/worker.service.d"], check=True)
    lab.write_file("/etc/systemd/system/worker.service.d/x.conf",
                   "[Unit]\nFailureAction=poweroff\n")
    lab.exec(["systemctl", "daemon-reload"], check=True)
    try:
        ran = asyncio.run(executor.run(action.id))
    finally:
        lab.exec(["rm", "-rf", "/etc/systemd/system/worker.service.d"], check=True)
        lab.exec(["systemctl", "daemon-reload"], check=True)
    assert ran.state == "pending" and ran.started_at is None
    moved = [e["detail"] for e in executor.store.audit_log(50)
             if e["subject"] == f"action:{action.id}" and e["action"] == "action.pending"]
    assert moved and "FailureAction" in moved[-1] and "needs a person" in moved[-1]


# -- 6. the assistant's own units and processes ---------------------------------------------------
def _host_pid_in(unit: str) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for cgroup in Path("/proc").glob("[0-9]*/cgroup"):
            try:
                if cgroup.read_text().rstrip().endswith(f"/{unit}"):
                    return int(cgroup.parent.name)
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no process in {unit}")


def test_the_assistants_own_unit_is_found_by_name_and_by_cgroup(executor, lab) -> None:
    by_name = propose(executor, "run_command", argv=["systemctl", "stop", "labtest-ai"])
    assert by_name.state == "refused" and "the assistant's own service" in by_name.reason
    main = int(lab.exec(["systemctl", "show", "-p", "MainPID", "--value",
                         "labtest-ai.service"]).stdout)
    killed = propose(executor, "kill_process", pid=main)
    assert killed.state == "refused" and "the assistant's own service" in killed.reason
    # a daemon running under any unit name finds that unit in its own cgroup
    from ai_sysadmin.executor import host_facts

    pid = _host_pid_in("worker.service")
    units = host_facts._own_cgroup_units(pid)
    assert units == ["worker.service"]
    assert "labtest-ai.service" in own_identity(executor.settings, None).units


# -- 7. processes of a login session --------------------------------------------------------------
def test_a_process_of_a_login_session_is_never_killed_automatically(executor, lab) -> None:
    pid = 0
    deadline = time.monotonic() + 10
    while not pid and time.monotonic() < deadline:
        out = lab.exec(["systemctl", "show", "-p", "ControlGroup", "--value",
                        "session-77.scope"]).stdout.strip()
        procs = lab.exec(["cat", f"/sys/fs/cgroup{out}/cgroup.procs"]).stdout.split() \
            if out else []
        pid = int(procs[0]) if procs else 0
    assert pid, "the session scope has a process"
    action = propose(executor, "kill_process", pid=pid)
    assert (action.state, action.risk) == ("pending", "high"), action
    assert "login session (session-77.scope)" in action.reason
    service = int(lab.exec(["systemctl", "show", "-p", "MainPID", "--value",
                            "webapp.service"]).stdout)
    # a service's process that the incident is about (it runs away)
    runaway = Finding(HOST, "runaway_process", "webapp.service", Severity.WARNING, "hog")
    executor.store.record_check(HOST, [runaway], {"runaway_process"})
    about = next(i.id for i in executor.store.incidents(None) if i.rule == "runaway_process")
    plain = asyncio.run(executor.propose(HOST, "kill_process", {"pid": service},
                                         incident_id=about))
    assert (plain.state, plain.risk) == ("approved", "medium"), plain
    assert "webapp.service" in plain.reason
    journald = int(lab.exec(["systemctl", "show", "-p", "MainPID", "--value",
                             "systemd-journald.service"]).stdout)
    assert propose(executor, "kill_process", pid=journald).state == "refused"
