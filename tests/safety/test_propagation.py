"""A kill judged as a stop of every unit the process runs in, and a stop or restart judged
with every unit systemd propagates it to (pure parts, on ``systemctl show`` output as systemd
252 prints it; the same on real systemd: tests/safety/test_propagation_lab.py)."""

from __future__ import annotations

import dataclasses

import pytest

from ai_sysadmin.monitor.findings import process_subject
from ai_sysadmin.monitor.parsers import cgroup_unit
from ai_sysadmin.safety.catalog import FactsNeeded, PlanContext, facts_needed, plan_action
from ai_sysadmin.safety.process_facts import facts_for, judge_process, parse_ps
from ai_sysadmin.safety.unit_facts import UnitFacts, judge_unit, parse_show

SHOW = """\
ControlGroup=/system.slice/helper.service
Id=helper.service
RequiredBy=db.service
ConsistsOf=sshd.service
PropagatesStopTo=sshd.service
ExecStop={ path=/bin/echo ; argv[]=/bin/echo hi ; ignore_errors=no ; }

ControlGroup=
Id=rescue-ssh.service
RequiredBy=rescue.target
ConflictedBy=multi-user.target sshd.service
"""


def unit(name: str, **props: str) -> UnitFacts:
    return UnitFacts(name, (name,), {"LoadState": ("loaded",), **{
        k: tuple(v.split()) for k, v in props.items()}})


def units(*facts: UnitFacts) -> dict[str, UnitFacts]:
    return {f.id: f for f in facts}


def test_parse_show_reads_the_reverse_dependencies_and_stop_commands() -> None:
    from ai_sysadmin.safety.unit_facts import propagation_names

    helper, rescue = parse_show(SHOW)
    assert helper.get("ControlGroup") == "/system.slice/helper.service"
    assert helper.all("PropagatesStopTo") == ("sshd.service",)
    assert helper.stop_commands == (("/bin/echo", "hi"),)
    assert rescue.all("ConflictedBy") == ("multi-user.target", "sshd.service")
    assert set(propagation_names(helper)) == {"db.service", "sshd.service"}
    assert "multi-user.target" in propagation_names(rescue)


@pytest.mark.parametrize(("verb", "prop"), [
    ("restart", "ConflictedBy"), ("start", "ConflictedBy"), ("restart", "PropagatesStopTo"),
    ("stop", "PropagatesStopTo"), ("stop", "RequiredBy"), ("stop", "BoundBy"),
    ("stop", "ConsistsOf"), ("stop", "RequisiteOf"), ("mask", "RequiredBy"),
    ("kill", "BoundBy"),
])
def test_a_protected_unit_reached_through_a_dependency_is_never_stopped(verb, prop) -> None:
    app = unit("app.service", **{prop: "sshd.service"})
    sshd = unit("sshd.service")
    for related in (units(app, sshd), None):  # with its facts, and by its name alone
        verdict = judge_unit(verb, app, incident_unit="app.service", related=related)
        assert verdict.refused and "sshd.service" in verdict.refused, (related, verdict)


@pytest.mark.parametrize("prop", ["RequiredBy", "BoundBy", "ConsistsOf", "RequisiteOf"])
def test_a_restart_that_restarts_a_protected_unit_needs_a_person(prop) -> None:
    app, sshd = unit("app.service", **{prop: "sshd.service"}), unit("sshd.service")
    verdict = judge_unit("restart", app, incident_unit="app.service",
                         related=units(app, sshd))
    assert verdict.refused is None
    assert any("restarts sshd.service" in p and "protected" in p for p in verdict.person)


def test_what_is_reached_is_judged_on_its_own_facts_and_further() -> None:
    # app -> RequiredBy worker -> PropagatesStopTo job, whose end powers the host off
    app = unit("app.service", RequiredBy="worker.service")
    worker = unit("worker.service", PropagatesStopTo="job.service")
    job = unit("job.service", SuccessAction="poweroff")
    facts = units(app, worker, job)
    assert "poweroff" in (judge_unit("stop", app, related=facts).refused or "")
    assert "poweroff" in (judge_unit("restart", app, incident_unit=app.id,
                                     related=facts).refused or "")
    # a way-in unit restarted with it: its restart needs a person
    vpn = unit("vpn.service", Before="network.target")
    person = judge_unit("restart", unit("app.service", ConsistsOf="vpn.service"),
                        incident_unit="app.service", related=units(vpn)).person
    assert any("restarts vpn.service" in p and "way in" in p for p in person)
    # a plain unit reached is nothing to weigh; a cycle ends
    plain = unit("a.service", RequiredBy="b.service")
    back = unit("b.service", BoundBy="a.service")
    assert judge_unit("restart", plain, incident_unit="a.service",
                      related=units(plain, back)).person == ()


@pytest.mark.parametrize(("props", "why"), [
    ({"SuccessAction": "poweroff"}, "SuccessAction=poweroff"),
    ({"FailureAction": "reboot"}, "FailureAction=reboot"),
    ({"OnFailure": "emergency.target"}, "emergency.target"),
    ({"RefuseManualStop": "yes"}, "RefuseManualStop"),
])
def test_a_stop_or_kill_that_ends_the_host_is_refused(props, why) -> None:
    for verb in ("stop", "kill"):
        verdict = judge_unit(verb, unit("job.service", **props))
        assert verdict.refused and why in verdict.refused


# -- kill_process and run_command kill -------------------------------------------------------------
PS = """\
    1     0 systemd          0::/init.scope
   70     1 sleep            0::/system.slice/job.service
   71     1 sleep            0::/system.slice/mariadb.service
   72     1 sleep            0::/system.slice/vpn.service
   73     1 sleep            0::/system.slice/guest.service/payload/system.slice/nginx.service
   74     1 sleep            0::/system.slice/plain.service
   75     1 sleep            0::/system.slice/sshd.service
"""
HOST = units(
    unit("job.service", SuccessAction="poweroff", ControlGroup="/system.slice/job.service"),
    UnitFacts("mariadb.service", ("mariadb.service", "mysql.service"), {
        "LoadState": ("loaded",), "ControlGroup": ("/system.slice/mariadb.service",)}),
    unit("vpn.service", WantedBy="network.target", ControlGroup="/system.slice/vpn.service"),
    unit("guest.service", ControlGroup="/system.slice/guest.service"),
    # the host's own nginx.service is another unit than the guest's
    unit("nginx.service", LoadState="not-found"),
    unit("plain.service", ControlGroup="/system.slice/plain.service"),
    unit("sshd.service", ControlGroup="/system.slice/sshd.service"),
)


def _kill(pid: int, protected: tuple[str, ...] = ("mysql", "guest"), kind: str = "kill_process"):
    facts = facts_for(pid, parse_ps(PS))
    # the incident is about this very process, as its runaway finding names it (the rule's
    # cgroup_unit): only what the process is decides here
    ctx = PlanContext(facts_read=True, process=facts, units=HOST, protected=protected,
                      incident_rule="runaway_process",
                      incident_subject=process_subject(
                          cgroup_unit(facts.process.cgroup) if facts else None, pid))
    params = {"pid": pid} if kind == "kill_process" else {"argv": ["kill", "-TERM", str(pid)]}
    return plan_action(kind, params, ctx)


@pytest.mark.parametrize(("pid", "why"), [
    (70, "SuccessAction=poweroff"),
    (71, "mysql.service (an alias of mariadb.service) is protected"),
    (73, "guest.service, which is protected"),
    (75, "sshd.service, which is protected"),
])
@pytest.mark.parametrize("kind", ["kill_process", "run_command"])
def test_a_kill_is_refused_where_a_stop_of_its_unit_would_be(pid, why, kind) -> None:
    plan = _kill(pid, kind=kind)
    assert not plan.allowed and why in plan.reason, plan.reason


def test_a_kill_is_a_persons_decision_where_a_stop_of_its_unit_would_be() -> None:
    plan = _kill(72)
    assert (plan.allowed, plan.risk) == (True, "high") and "way in" in plan.reason
    assert (_kill(74).allowed, _kill(74).risk) == (True, "medium")
    assert "way in" in _kill(72, kind="run_command").reason
    # a name deeper in a delegated subtree is not judged on the host's unit of that name
    table = parse_ps(PS)
    guest = facts_for(73, table)
    assert guest is not None
    assert judge_process(guest, units=HOST) == judge_process(guest, units={
        **HOST, "nginx.service": unit("nginx.service", SuccessAction="reboot")})


@pytest.mark.parametrize("kind", ["kill_process", "run_command"])
def test_a_kill_in_a_guests_nginx_cgroup_is_not_the_host_nginx_incident(kind) -> None:
    """The guest's cgroup system.slice/nginx.service is no unit of the host's: its process
    runs in guest.service, as the checks name it, so an incident about the host's
    nginx.service does not make its kill the incident's, and a person decides."""
    facts = facts_for(73, parse_ps(PS))
    ctx = PlanContext(facts_read=True, process=facts, units=HOST,
                      incident_rule="runaway_process", incident_subject="nginx.service")
    params = {"pid": 73} if kind == "kill_process" else {"argv": ["kill", "-TERM", "73"]}
    plan = plan_action(kind, params, ctx)
    assert (plan.allowed, plan.risk) == (True, "high"), plan.reason
    assert "sleep in guest.service" in plan.reason
    if kind == "kill_process":
        assert plan.subject == "guest.service"
        assert "not guest.service" in plan.reason
    assert facts is not None and facts.unit == "guest.service"


def test_a_process_is_named_by_the_unit_of_the_hosts_manager() -> None:
    """As the checks name it (cgroup_unit): below the manager's root, where a container
    without a cgroup namespace of its own keeps its units, and by the outermost unit."""
    contained = parse_ps("    1     0 systemd          0::/lxc/c1/init.scope\n"
                         "   90     1 nginx            0::/lxc/c1/system.slice/nginx.service\n")
    assert (found := facts_for(90, contained)) is not None and found.unit == "nginx.service"
    nspawn = parse_ps(
        "    1     0 systemd          0::/init.scope\n"
        "   91     1 nginx            0::/machine.slice/systemd-nspawn@web.service/payload/"
        "system.slice/nginx.service\n")
    assert (found := facts_for(91, nspawn)) is not None
    assert found.unit == "systemd-nspawn@web.service"


def test_a_kill_through_run_command_reads_the_process() -> None:
    assert facts_needed("run_command", {"argv": ["kill", "-KILL", "75"]}) == FactsNeeded(pid=75)
    assert facts_needed("run_command", {"argv": ["kill", "75"]}) == FactsNeeded(pid=75)
    assert facts_needed("run_command", {"argv": ["kill", "-1"]}) == FactsNeeded()
    gone = plan_action("run_command", {"argv": ["kill", "-TERM", "4242"]},
                       PlanContext(facts_read=True))
    assert not gone.allowed and "no process 4242" in gone.reason


# -- OnSuccess= and OnFailure=: the units a unit's end starts ------------------------------------
#: as systemd ships them: what they do is in their facts, not in their names
REBOOTS = unit("systemd-reboot.service", SuccessAction="reboot-force", DefaultDependencies="no",
               ActiveState="inactive")
POWERS_OFF = unit("systemd-poweroff.service", SuccessAction="poweroff-force",
                  DefaultDependencies="no", ActiveState="inactive")
NOTIFY = unit("notify@app.service.service", ActiveState="inactive", Type="oneshot")
APP_CGROUP = "/system.slice/app.service"


def _backup(**props: str) -> UnitFacts:
    return unit("backup.service", ActiveState="failed", Type="oneshot", **props)


@pytest.mark.parametrize("kind", ["restart_unit", "start_unit"])
def test_a_start_whose_success_starts_a_unit_that_reboots_is_refused(kind) -> None:
    """A failed oneshot whose success starts systemd-reboot.service: its start, once it
    succeeds, reboots the host; refused at every level, as OnSuccess=reboot.target is."""
    backup = _backup(OnSuccess="systemd-reboot.service")
    ctx = PlanContext(facts_read=True, incident_unit="backup.service",
                      units=units(backup, REBOOTS))
    plan = plan_action(kind, {"unit": "backup.service"}, ctx)
    assert not plan.allowed, plan
    assert "systemd-reboot.service (OnSuccess=systemd-reboot.service)" in plan.reason
    assert "SuccessAction=reboot-force" in plan.reason
    # what it starts could not be read: a person decides, nothing runs unattended
    unread = plan_action(kind, {"unit": "backup.service"}, dataclasses.replace(
        ctx, units=units(backup)))
    assert (unread.allowed, unread.risk) == (True, "high"), unread
    assert "what systemd-reboot.service is could not be read" in unread.reason


def test_a_start_whose_failure_powers_off_needs_a_person() -> None:
    """As FailureAction=poweroff: a start is meant to succeed, what its failure would do is a
    person's to weigh; never run unattended."""
    backup = _backup(OnFailure="systemd-poweroff.service")
    ctx = PlanContext(facts_read=True, incident_unit="backup.service",
                      units=units(backup, POWERS_OFF))
    plan = plan_action("restart_unit", {"unit": "backup.service"}, ctx)
    assert (plan.allowed, plan.risk) == (True, "high"), plan
    assert "when backup.service fails after a restart, systemd starts " \
           "systemd-poweroff.service" in plan.reason and "poweroff-force" in plan.reason


def _kill_app(*related: UnitFacts, kind: str = "kill_process", signal: str = "TERM",
              **props: str):
    app = unit("app.service", ActiveState="active", ControlGroup=APP_CGROUP, **props)
    facts = facts_for(4242, parse_ps(f"    1     0 systemd          0::/init.scope\n"
                                     f" 4242     1 app              0::{APP_CGROUP}\n"))
    ctx = PlanContext(facts_read=True, process=facts, units=units(app, *related),
                      incident_rule="runaway_process", incident_subject="app.service")
    params = {"pid": 4242, "signal": signal} if kind == "kill_process" else {
        "argv": ["kill", f"-{signal}", "4242"]}
    return plan_action(kind, params, ctx)


@pytest.mark.parametrize(("prop", "ends"), [("OnFailure", "poweroff-force"),
                                            ("OnSuccess", "poweroff-force")])
@pytest.mark.parametrize("kind", ["kill_process", "run_command"])
def test_a_kill_whose_unit_then_starts_a_unit_that_powers_off_is_refused(prop, ends, kind
                                                                        ) -> None:
    """A killed process fails its unit (OnFailure=), a stopped one ends it (OnSuccess=): the
    unit either starts is judged as started, as OnFailure=poweroff.target is."""
    plan = _kill_app(POWERS_OFF, kind=kind, **{prop: "systemd-poweroff.service"})
    assert not plan.allowed, plan
    assert f"({prop}=systemd-poweroff.service)" in plan.reason and ends in plan.reason
    # unread: what it starts is unknown, so a person decides
    unread = _kill_app(kind=kind, **{prop: "systemd-poweroff.service"})
    assert (unread.allowed, unread.risk) == (True, "high"), unread
    for verb in ("stop", "kill"):
        stopped = judge_unit(verb, unit("app.service", **{prop: "systemd-poweroff.service"}),
                             related=units(POWERS_OFF))
        assert stopped.refused and "poweroff-force" in stopped.refused, (verb, stopped)


def test_a_sigkill_of_the_incidents_own_process_is_a_persons_decision() -> None:
    """TERM lets the process end cleanly and runs unasked at auto-full; KILL gives it no
    chance (no handler, nothing flushed), and the docs' table said TERM alone."""
    term = _kill_app(NOTIFY, OnFailure="notify@app.service.service")
    killed = _kill_app(NOTIFY, OnFailure="notify@app.service.service", signal="KILL")
    assert (term.risk, killed.risk, killed.allowed) == ("medium", "high", True), killed
    assert "SIGKILL gives the process no chance to end cleanly (TERM does)" in killed.reason
    assert killed.commands == (("kill", "-KILL", "4242"),)


def test_a_unit_whose_end_only_sends_a_notice_is_fixed_as_any_other() -> None:
    """OnFailure=notify@%n.service, the everyday use: a unit that does nothing harmful when
    started takes nothing from the fix."""
    kill = _kill_app(NOTIFY, OnFailure="notify@app.service.service")
    assert (kill.allowed, kill.risk) == (True, "medium"), kill
    app = unit("app.service", ActiveState="failed", OnFailure="notify@app.service.service",
               OnSuccess="notify@app.service.service")
    ctx = PlanContext(facts_read=True, incident_unit="app.service", units=units(app, NOTIFY))
    for kind in ("restart_unit", "start_unit"):
        plan = plan_action(kind, {"unit": "app.service"}, ctx)
        assert (plan.allowed, plan.risk) == (True, "low"), plan


def test_a_timer_is_judged_with_what_the_end_of_the_unit_it_starts_starts() -> None:
    timer = unit("backup.timer", Triggers="backup.service", ActiveState="failed")
    for then, related, refused in (
            ("systemd-reboot.service", REBOOTS, "SuccessAction=reboot-force"),
            ("notify@app.service.service", NOTIFY, None)):
        backup = _backup(OnSuccess=then)
        ctx = PlanContext(facts_read=True, incident_unit="backup.timer",
                          units=units(timer, backup, related))
        plan = plan_action("restart_unit", {"unit": "backup.timer"}, ctx)
        if refused:
            assert not plan.allowed and refused in plan.reason, plan
        else:
            assert (plan.allowed, plan.risk) == (True, "low"), plan
