"""On real systemd: a kill is judged as a stop of the units its process runs in, and a stop
or restart with every unit systemd propagates it to (ConflictedBy, RequiredBy, ConsistsOf,
PropagatesStopTo ...). Nothing here runs an action: each case is the policy's plan, from the
facts the executor reads in the fault lab over its transport."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.executor import Executor
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.safety.catalog import Plan
from ai_sysadmin.store import Database, IncidentStore

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("CI"),
                       reason="the fault lab needs root (namespaces, mounts, cgroups)"),
]
SLEEPER = "[Service]\nExecStart=/bin/sleep infinity\n"
ONESHOT = "[Service]\nType=oneshot\nExecStart=/bin/true\n"
#: a guest (a container or VM service) that names a cgroup of its own like a unit
GUEST = ("cg=/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup | tail -n1); "
         "mkdir -p $cg/payload/system.slice/nginx.service; "
         "( sh -c 'echo $$ > '$cg'/payload/system.slice/nginx.service/cgroup.procs; "
         "exec sleep infinity' & ) ; exec sleep infinity\n")
UNITS = {
    "job.service": f"[Unit]\nSuccessAction=poweroff\n{SLEEPER}",
    "burner.service": f"[Unit]\nFailureAction=reboot\n{SLEEPER}",
    "vpn.service": f"[Unit]\nBefore=network.target\n{SLEEPER}[Install]\n"
                   "WantedBy=network.target\n",
    "mariadb.service": f"{SLEEPER}[Install]\nAlias=mysql.service\n",
    "guest.service": "[Service]\nDelegate=yes\nExecStart=/bin/sh /usr/local/bin/guest.sh\n",
    "plain.service": SLEEPER,
    # the host's own nginx: the guest names a cgroup of its own so too
    "nginx.service": SLEEPER,
    # sshd is part of web, requires db, and never runs with rescue-ssh
    "sshd.service": "[Unit]\nConflicts=rescue-ssh.service\nPartOf=web.service\n"
                    f"Requires=db.service\nAfter=db.service\n{SLEEPER}",
    "rescue-ssh.service": SLEEPER,
    "web.service": SLEEPER,
    "db.service": SLEEPER,
    "helper.service": f"[Unit]\nPropagatesStopTo=sshd.service\n{SLEEPER}",
    # starting these starts an inactive unit they pull in, which stops sshd or the host
    "app.service": f"[Unit]\nWants=tidy.service\n{SLEEPER}",
    "tidy.service": f"[Unit]\nConflicts=sshd.service\n{ONESHOT}",
    "report.service": f"[Unit]\nRequires=finish.service\n{SLEEPER}",
    "finish.service": f"[Unit]\nSuccessAction=reboot\n{ONESHOT}",
    # pulls in a unit that runs already: its start does nothing more
    "client.service": f"[Unit]\nWants=db.service sshd.service\n{SLEEPER}",
    # their end starts systemd's own reboot or poweroff service, or only a notice
    "backup.service": f"[Unit]\nOnSuccess=systemd-reboot.service\n{ONESHOT}",
    "guarded.service": f"[Unit]\nOnFailure=systemd-poweroff.service\n{SLEEPER}",
    "noticed.service": f"[Unit]\nOnFailure=notice@%n.service\n{SLEEPER}",
    "notice@.service": ONESHOT,
    # systemd refuses a restart of it, as a stop: only a start brings it up
    "unstoppable.service": f"[Unit]\nRefuseManualStop=yes\n{SLEEPER}",
}
#: never started here: what they start would stop sshd, or the lab itself
NOT_STARTED = frozenset({"rescue-ssh.service", "app.service", "tidy.service",
                         "report.service", "finish.service", "backup.service",
                         "notice@.service", "unstoppable.service"})


@pytest.fixture(scope="module")
def lab() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        sb.write_file("/usr/local/bin/guest.sh", GUEST, 0o755)
        for name, text in UNITS.items():
            apply(sb, "install_unit", {"name": name, "text": text})
        sb.exec(["systemctl", "enable", "mariadb.service"], check=True)
        sb.exec(["systemctl", "daemon-reload"], check=True)
        sb.exec(["systemctl", "start", *(u for u in UNITS if u not in NOT_STARTED)],
                check=True)
        yield sb


@pytest.fixture
def executor(lab: Sandbox, tmp_path: Path) -> Executor:
    settings = Settings(ai_name="labtest", state_dir=tmp_path, autonomy_level="auto-full",
                        safety={"protected_units": ["mysql", "guest"]})
    return Executor(settings, IncidentStore(Database(settings.db_path)),
                    {"proplab": SandboxTransport(lab)})


def plan(executor: Executor, kind: str, about: str | None = None, rule: str = "failed_unit",
         **params: object) -> Plan:
    incident = None
    if about:
        finding = Finding("proplab", rule, about, Severity.CRITICAL, "failed")
        executor.store.record_check("proplab", [finding], {rule})
        incident = next(i.id for i in executor.store.incidents(None) if i.subject == about)
    return asyncio.run(executor.plan("proplab", kind, params, incident))


def main_pid(lab: Sandbox, unit: str) -> int:
    return int(lab.exec(["systemctl", "show", "-p", "MainPID", "--value", unit]).stdout)


def guest_pid(lab: Sandbox) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ps = lab.exec(["ps", "-e", "-o", "pid=,cgroup="]).stdout
        found = [line.split()[0] for line in ps.splitlines() if "guest.service/payload" in line]
        if found:
            return int(found[0])
        time.sleep(0.1)
    raise AssertionError("the guest's process did not appear")


@pytest.mark.parametrize(("unit", "why"), [
    ("job.service", "SuccessAction=poweroff"),
    ("burner.service", "FailureAction=reboot"),
    ("mariadb.service", "mysql.service (an alias of mariadb.service) is protected"),
    ("sshd.service", "sshd.service, which is protected"),
])
def test_a_kill_is_refused_where_a_stop_of_its_unit_would_be(executor, lab, unit, why) -> None:
    pid = main_pid(lab, unit)
    killed = plan(executor, "kill_process", unit, pid=pid)
    assert not killed.allowed and why in killed.reason, killed.reason
    by_command = plan(executor, "run_command", unit, argv=["kill", "-TERM", str(pid)])
    assert not by_command.allowed and why in by_command.reason, by_command.reason


def test_a_kill_in_a_protected_units_delegated_subtree_is_refused(executor, lab) -> None:
    killed = plan(executor, "kill_process", pid=guest_pid(lab))
    assert not killed.allowed and "guest.service, which is protected" in killed.reason


def test_a_kill_in_a_guests_subtree_is_not_the_host_services_incident(lab, tmp_path) -> None:
    """The guest's process in its own cgroup system.slice/nginx.service runs in guest.service
    for the host (as the runaway check names it): an incident about the host's nginx.service
    is not about it, so its kill is a person's decision, never run at auto-full."""
    settings = Settings(ai_name="labtest", state_dir=tmp_path, autonomy_level="auto-full")
    executor = Executor(settings, IncidentStore(Database(settings.db_path)),
                        {"proplab": SandboxTransport(lab)})
    pid = guest_pid(lab)
    killed = plan(executor, "kill_process", "nginx.service", "runaway_process", pid=pid)
    assert (killed.allowed, killed.risk, killed.subject) == (True, "high", "guest.service"), \
        killed.reason
    assert f"process {pid} (sleep in guest.service)" in killed.reason
    assert "the incident is about runaway_process of nginx.service, not guest.service" \
        in killed.reason
    incident = next(i.id for i in executor.store.incidents(None) if i.subject == "nginx.service")
    action = asyncio.run(executor.propose("proplab", "kill_process", {"pid": pid},
                                          incident_id=incident))
    assert action.state == "pending", action.reason
    assert lab.exec(["kill", "-0", str(pid)]).returncode == 0


@pytest.mark.parametrize("verb", ["restart", "try-restart"])
def test_a_restart_of_a_unit_that_refuses_a_manual_stop_is_refused(executor, lab,
                                                                    verb) -> None:
    """systemd refuses a restart job of a RefuseManualStop=yes unit, running or not: planned,
    it would fail at every try (and count toward flapping); its start is the fix."""
    lab.exec(["systemctl", "stop", "unstoppable.service"])  # stopped by dependency only
    done = lab.exec(["systemctl", verb, "unstoppable.service"])
    assert done.returncode != 0 and "refuse" in done.stderr, done
    if verb == "restart":
        restart = plan(executor, "restart_unit", "unstoppable.service", unit="unstoppable.service")
        assert not restart.allowed, restart.reason
        assert "RefuseManualStop=yes" in restart.reason and "a start" in restart.reason
    command = plan(executor, "run_command", "unstoppable.service",
                   argv=["systemctl", verb, "unstoppable.service"])
    assert not command.allowed and "RefuseManualStop=yes" in command.reason, command.reason
    start = plan(executor, "start_unit", "unstoppable.service", unit="unstoppable.service")
    assert (start.allowed, start.risk) == (True, "low"), start.reason
    assert lab.exec(["systemctl", "start", "unstoppable.service"]).returncode == 0


def test_a_kill_in_a_way_in_unit_needs_a_person(executor, lab) -> None:
    # each the process its incident is about (a runaway one)
    killed = plan(executor, "kill_process", "vpn.service", "runaway_process",
                  pid=main_pid(lab, "vpn.service"))
    assert (killed.allowed, killed.risk) == (True, "high") and "way in" in killed.reason
    plain = plan(executor, "kill_process", "plain.service", "runaway_process",
                 pid=main_pid(lab, "plain.service"))
    assert (plain.allowed, plain.risk) == (True, "medium"), plain.reason


@pytest.mark.parametrize(("unit", "why"), [
    ("rescue-ssh.service", "stops sshd.service (ConflictedBy=sshd.service)"),
    ("helper.service", "stops sshd.service (PropagatesStopTo=sshd.service)"),
])
def test_a_restart_that_stops_a_protected_unit_is_refused(executor, unit, why) -> None:
    restart = plan(executor, "restart_unit", unit, unit=unit)
    assert not restart.allowed and why in restart.reason, restart.reason


@pytest.mark.parametrize(("unit", "why"), [
    ("web.service", "restarts sshd.service (ConsistsOf=sshd.service)"),
    ("db.service", "restarts sshd.service (RequiredBy=sshd.service)"),
])
def test_a_restart_that_restarts_a_protected_unit_needs_a_person(executor, unit, why) -> None:
    restart = plan(executor, "restart_unit", unit, unit=unit)
    assert (restart.allowed, restart.risk) == (True, "high") and why in restart.reason
    assert "protected" in restart.reason
    plain = plan(executor, "restart_unit", "plain.service", unit="plain.service")
    assert (plain.allowed, plain.risk) == (True, "low"), plain.reason


@pytest.mark.parametrize(("unit", "why"), [
    ("app.service", "starts tidy.service (Wants=tidy.service): starting tidy.service stops "
                    "sshd.service"),
    ("report.service", "starts finish.service (Requires=finish.service): starting "
                       "finish.service ends in reboot"),
])
@pytest.mark.parametrize("kind", ["restart_unit", "start_unit"])
def test_a_start_that_starts_a_unit_which_stops_a_protected_one_or_the_host_is_refused(
        executor, unit, why, kind) -> None:
    """systemd starts what a unit Wants= or Requires= with it: an inactive unit pulled in is
    judged as if it were started itself."""
    started = plan(executor, kind, unit, unit=unit)
    assert not started.allowed and why in started.reason, started.reason


def test_a_start_that_pulls_in_units_already_running_is_the_incidents_alone(executor) -> None:
    restart = plan(executor, "restart_unit", "client.service", unit="client.service")
    assert (restart.allowed, restart.risk) == (True, "low"), restart.reason


@pytest.mark.parametrize("unit", ["helper.service", "web.service", "db.service"])
@pytest.mark.parametrize("verb", ["stop", "mask"])
def test_a_command_that_stops_a_protected_unit_through_another_is_refused(executor, unit,
                                                                          verb) -> None:
    stop = plan(executor, "run_command", argv=["systemctl", verb, unit])
    assert not stop.allowed and "sshd.service" in stop.reason and "protected" in stop.reason


@pytest.mark.parametrize("kind", ["restart_unit", "start_unit"])
def test_a_start_whose_success_starts_systemds_reboot_service_is_refused(executor, kind
                                                                         ) -> None:
    """systemd-reboot.service reboots by its SuccessAction=reboot-force, as the host's systemd
    reports it: the executor reads the unit OnSuccess= names and the start is refused."""
    started = plan(executor, kind, "backup.service", unit="backup.service")
    assert not started.allowed, started.reason
    assert "(OnSuccess=systemd-reboot.service)" in started.reason
    assert "SuccessAction=reboot-force" in started.reason


def test_a_kill_whose_unit_powers_off_on_failure_is_refused(executor, lab) -> None:
    killed = plan(executor, "kill_process", "guarded.service", "runaway_process",
                  pid=main_pid(lab, "guarded.service"), signal="KILL")
    assert not killed.allowed, killed.reason
    assert "(OnFailure=systemd-poweroff.service)" in killed.reason
    assert "SuccessAction=poweroff-force" in killed.reason


def test_a_unit_whose_failure_only_sends_a_notice_is_fixed_as_any_other(executor, lab) -> None:
    killed = plan(executor, "kill_process", "noticed.service", "runaway_process",
                  pid=main_pid(lab, "noticed.service"), signal="TERM")
    assert (killed.allowed, killed.risk) == (True, "medium"), killed.reason
    restart = plan(executor, "restart_unit", "noticed.service", unit="noticed.service")
    assert (restart.allowed, restart.risk) == (True, "low"), restart.reason
