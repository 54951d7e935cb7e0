"""Units judged by their properties and processes by their cgroup and ancestry (pure parts; the
same judgements on real systemd are in tests/lab/test_trust_lab.py)."""

from __future__ import annotations

import pytest

from ai_sysadmin.safety.catalog import FactsNeeded, PlanContext, facts_needed, plan_action
from ai_sysadmin.safety.process_facts import facts_for, judge_process, parse_ps
from ai_sysadmin.safety.unit_facts import (
    ShowOutputError,
    UnitFacts,
    UnitFileError,
    Verdict,
    install_also,
    judge_unit,
    parse_commands,
    parse_show,
)

# as systemd 252 prints it (trimmed)
SHOW = """\
Id=systemd-logind.service
Names=systemd-logind.service dbus-org.freedesktop.login1.service
LoadState=loaded
SuccessAction=none
Requires=sysinit.target -.mount
Wants=user.slice dbus.socket
Conflicts=shutdown.target
Before=shutdown.target multi-user.target
After=nss-user-lookup.target dbus.socket
ExecStart={ path=/lib/systemd/systemd-logind ; argv[]=/lib/systemd/systemd-logind ; \
ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }

Id=tidy.service
Names=tidy.service
LoadState=loaded
SuccessAction=none
ExecStartPre={ path=/bin/echo ; argv[]=/bin/echo about to ; ignore_errors=no ; }
ExecStart={ path=/usr/bin/systemctl ; argv[]=/usr/bin/systemctl --force reboot ; \
ignore_errors=no ; start_time=[n/a] }
"""


def unit(name: str = "app.service", *, names: tuple[str, ...] = (),
         commands: tuple[tuple[str, ...], ...] = (), **props: str) -> UnitFacts:
    return UnitFacts(name, (name, *names), {"LoadState": ("loaded",), **{
        k: tuple(v.split()) for k, v in props.items()}}, commands)


def test_parse_show_reads_names_lists_and_commands() -> None:
    logind, tidy = parse_show(SHOW)
    assert logind.id == "systemd-logind.service"
    assert "dbus-org.freedesktop.login1.service" in logind.every_name
    assert logind.all("Wants") == ("user.slice", "dbus.socket")
    assert logind.commands == (("/lib/systemd/systemd-logind",),)
    assert tidy.commands == (("/bin/echo", "about", "to"),
                             ("/usr/bin/systemctl", "--force", "reboot"))
    assert parse_show("") == []



_WHOLE = " ; ignore_errors=no ; pid=0 ; code=(null) ; status=0/0 }"


@pytest.mark.parametrize(("text", "expected", "why"), [
    # a command's line break opens a block that says the unit is harmless
    (f"ExecStart={{ path=/bin/echo ; argv[]=/bin/echo x\n\nId=a.service\nSuccessAction=none\n"
     f"ExecStartPre={{ path=/bin/true ; argv[]=/bin/true{_WHOLE}\nId=a.service\n"
     "SuccessAction=reboot\n", 1, "2 blocks of properties for 1 unit"),
    # the same without a blank line: the forged property is there twice
    (f"ExecStart={{ path=/bin/echo ; argv[]=/bin/echo x{_WHOLE}\nSuccessAction=none\n"
     f"ExecStartPre={{ path=/bin/true ; argv[]=/bin/true{_WHOLE}\nId=a.service\n"
     "SuccessAction=reboot\n", 1, "SuccessAction twice"),
    # a fragment of a command line
    ("ExecStart={ path=/bin/echo ; argv[]=/bin/echo x\nId=a.service\n", 1,
     "not one whole command"),
    (f"ExecStart={{ path=/bin/x ; argv[]=/bin/x{_WHOLE}\n ; poweroff\nId=a.service\n", 1,
     "no property"),
    ("Id=a.service\nnot a property\n", 1, "no property"),
    ("SuccessAction=none\n", None, "without an Id"),
])
def test_parse_show_refuses_output_a_command_line_could_have_forged(
        text: str, expected: int | None, why: str) -> None:
    with pytest.raises(ShowOutputError, match=why):
        parse_show(text, expected)


@pytest.mark.parametrize(("facts", "why"), [
    (unit(SuccessAction="reboot-force"), "SuccessAction=reboot-force"),
    (unit(SuccessAction="exit"), "SuccessAction=exit"),
    (unit(SuccessAction="soft-reboot"), "soft-reboot"),
    (unit(SuccessAction="kexec"), "kexec"),
    (unit(Requires="final.target"), "final.target"),
    (unit(Wants="sleep.target"), "sleep.target"),
    (unit(BindsTo="emergency.target"), "emergency.target"),
    (unit(OnSuccess="reboot.target"), "reboot.target"),
    (unit(Upholds="rescue.target"), "rescue.target"),
    (unit(Requisite="hibernate.target"), "hibernate.target"),
    (unit(RefuseManualStart="yes"), "RefuseManualStart"),
    (unit(LoadState="masked"), "LoadState=masked"),
    (unit(LoadState="not-found"), "not loaded"),
    (unit(Conflicts="multi-user.target"), "stops multi-user.target"),
    (unit(Conflicts="sshd.service"), "stops sshd.service"),
    (unit(commands=(("/sbin/reboot",),)), "/sbin/reboot"),
    (unit(commands=(("-/usr/bin/systemctl", "poweroff", "-i"),)), "poweroff"),
    (unit(commands=(("/usr/bin/loginctl", "suspend"),)), "suspend"),
    (unit(commands=(("/bin/systemctl", "isolate", "rescue.target"),)), "isolate"),
    (unit(commands=(("/sbin/shutdown", "-h", "now"),)), "shutdown"),
    (unit(commands=(("/sbin/init", "0"),)), "init 0"),
])
def test_a_start_that_leaves_the_normal_system_state_is_refused(facts, why) -> None:
    verdict = judge_unit("start", facts, incident_unit=facts.id)
    assert verdict.refused and why in verdict.refused


@pytest.mark.parametrize("verb", ["restart", "try-restart", "reload-or-restart",
                                  "try-reload-or-restart"])
def test_a_restart_of_a_unit_that_refuses_a_manual_stop_is_refused(verb) -> None:
    """systemd refuses a restart job of a RefuseManualStop=yes unit as it refuses its stop;
    its start and reload it takes."""
    facts = unit(RefuseManualStop="yes", ActiveState="failed")
    verdict = judge_unit(verb, facts, incident_unit=facts.id)
    assert verdict.refused and "RefuseManualStop=yes" in verdict.refused
    for allowed in ("start", "reload"):
        assert not judge_unit(allowed, facts, incident_unit=facts.id).refused
    # a restart that reaches it through PartOf= is systemd's own job, not refused
    web = unit("web.service", ConsistsOf=facts.id)
    assert not judge_unit("restart", web, incident_unit="web.service",
                          related={facts.id: facts}).refused


@pytest.mark.parametrize(("facts", "why"), [
    (unit(FailureAction="reboot"), "FailureAction"),
    (unit(StartLimitAction="reboot-force"), "StartLimitAction"),
    (unit(JobTimeoutAction="poweroff"), "JobTimeoutAction"),
    (unit(OnFailure="emergency.target"), "OnFailure"),
    (unit(DefaultDependencies="no"), "early boot"),
    (unit(After="shutdown.target"), "early boot or at shutdown"),
    (unit(Conflicts="apache2.service"), "stops apache2.service"),
    (unit("apt-daily-upgrade.service"), "installs updates"),
    (unit("dnf-automatic-install.service"), "installs updates"),
    (unit("packagekit-offline-update.service"), "installs updates"),
    (unit("systemd-sysupdate-reboot.service"), "installs updates"),
    (unit("upd.service", commands=(("/usr/bin/unattended-upgrade",),)), "unattended-upgrade"),
    (unit("upd.service", commands=(("/nix/store/abc-unit-script/bin/nixos-upgrade-start",),)),
     "installs software"),
    (unit("upd.service", WantedBy="system-update.target"), "offline update"),
    (unit("dhcpcd.service"), "way in"),
    (unit("network-addresses-eth0.service", BindsTo="sys-subsystem-net-devices-eth0.device"),
     "network interface"),
    (unit("wg-quick@wg0.service"), "way in"),
    (unit("dropbear.service"), "way in"),
    (unit("NetworkManager.service"), "way in"),
    (unit("wpa_supplicant.service"), "way in"),
    (unit("vpn.service", Before="network-online.target"), "brings the network up"),
    (unit("lan.service", WantedBy="network.target"), "brings the network up"),
    (unit("systemd-networkd.service", names=("dbus-org.freedesktop.network1.service",)),
     "protected"),
    (unit("app.service", names=("sshd.service",)), "an alias of app.service"),
])
def test_a_start_with_consequences_needs_a_person(facts, why) -> None:
    verdict = judge_unit("restart", facts, incident_unit=facts.id)
    assert verdict.refused is None
    assert any(why in p for p in verdict.person), verdict.person


def test_the_incidents_own_plain_unit_is_judged_harmless() -> None:
    facts = unit(Conflicts="shutdown.target", Before="shutdown.target multi-user.target",
                 After="network-online.target", Wants="network-online.target",
                 WantedBy="multi-user.target")
    # what it pulls in runs already: starting it starts nothing more
    online = {"network-online.target": unit("network-online.target", ActiveState="active")}
    assert judge_unit("restart", facts, incident_unit="app.service",
                      related=online).person == ()
    # what it pulls in that the host did not describe is a person's to weigh
    assert "network-online.target is could not be read" in " ".join(
        judge_unit("restart", facts, incident_unit="app.service").person)
    assert judge_unit("restart", facts, incident_unit=None).person
    assert "not app.service" in judge_unit("restart", facts, incident_unit="db.service"
                                           ).person[0]
    # an alias the incident used is the same unit
    aliased = unit(names=("web.service",))
    assert judge_unit("start", aliased, incident_unit="web.service").person == ()


def test_what_a_start_pulls_in_is_judged_as_started_by_systemd() -> None:
    """A dependency's RefuseManualStart= refuses a person's start, not systemd's, and a Wants=
    of a unit that does not exist starts nothing; a SuccessAction= does its work either way."""
    facts = unit(Wants="pre.target gone.service finish.service", Requires="db.service")
    related = {"pre.target": unit("pre.target", ActiveState="inactive",
                                  RefuseManualStart="yes"),
               "gone.service": unit("gone.service", LoadState="not-found"),
               "finish.service": unit("finish.service", ActiveState="inactive"),
               "db.service": unit("db.service", ActiveState="active")}
    verdict = judge_unit("start", facts, incident_unit="app.service", related=related)
    assert verdict.refused is None, verdict.refused
    assert not any("gone.service" in p or "db.service" in p for p in verdict.person)
    related["finish.service"] = unit("finish.service", ActiveState="inactive",
                                     SuccessAction="poweroff")
    refused = judge_unit("start", facts, incident_unit="app.service", related=related).refused
    assert refused == ("start of app.service starts finish.service (Wants=finish.service): "
                       "starting finish.service ends in poweroff (SuccessAction=poweroff)")


def test_stopping_a_protected_unit_under_any_name_is_refused() -> None:
    logind, _ = parse_show(SHOW)
    for verb in ("stop", "disable", "mask", "kill"):
        assert "never stopped" in (judge_unit(verb, logind).refused or "")
    own = unit("hal-ai.service")
    assert "own service" in (judge_unit("stop", own, own=("hal-ai.service",)).refused or "")
    assert judge_unit("reset-failed", logind).refused is None


def test_a_timer_is_judged_with_what_it_starts() -> None:
    timer = unit("tidy.timer", Triggers="tidy.service")
    reboots = unit("tidy.service", SuccessAction="reboot")
    assert "triggers tidy.service" in (judge_unit(
        "start", timer, incident_unit="tidy.timer", triggered=[reboots]).refused or "")
    upgrade = unit("apt-daily-upgrade.service")
    assert any("installs updates" in p for p in judge_unit(
        "start", timer, incident_unit="tidy.timer", triggered=[upgrade]).person)


def test_the_catalog_runs_the_canonical_name_it_judged() -> None:
    logind, _ = parse_show(SHOW)
    ctx = PlanContext(facts_read=True, units={
        "dbus-org.freedesktop.login1.service": logind}, incident_unit=logind.id)
    plan = plan_action("restart_unit", {"unit": "dbus-org.freedesktop.login1.service"}, ctx)
    assert plan.allowed and plan.risk == "high" and plan.subject == "systemd-logind.service"
    assert plan.commands == (("systemctl", "restart", "--", "systemd-logind.service"),)
    stop = plan_action("run_command", {"argv": ["systemctl", "stop",
                                                "dbus-org.freedesktop.login1.service"]}, ctx)
    assert not stop.allowed and "never stopped" in stop.reason
    unknown = plan_action("run_command", {"argv": ["systemctl", "stop", "x.service"]},
                          PlanContext(facts_read=True))
    assert not unknown.allowed and "not stopped without knowing" in unknown.reason


def test_a_unit_after_double_dash_is_judged_and_a_leading_dash_is_refused() -> None:
    # the host says "-x.service" is another name of sshd.service: a name that starts with
    # "-" must not slip past the facts because it looks like an option
    sshd = unit("sshd.service", names=("-x.service",))
    ctx = PlanContext(facts_read=True, units={"-x.service": sshd, "sshd.service": sshd})
    for verb in ("stop", "disable", "mask"):
        plan = plan_action("run_command", {"argv": ["systemctl", verb, "--", "-x.service"]},
                           ctx)
        assert not plan.allowed and "starts with '-'" in plan.reason
        dotted = plan_action("run_command", {"argv": ["systemctl", verb, ".x.service"]}, ctx)
        assert not dotted.allowed
    protected = plan_action("run_command", {"argv": ["systemctl", "--no-pager", "stop", "--",
                                                     "sshd.service"]}, ctx)
    assert not protected.allowed and "sshd.service is protected" in protected.reason


def test_facts_needed_names_what_the_plan_depends_on() -> None:
    assert facts_needed("restart_unit", {"unit": "nginx"}) == FactsNeeded(("nginx.service",))
    assert facts_needed("run_command", {"argv": ["systemctl", "stop", "--", "a"]}) == \
        FactsNeeded(("a.service",))
    assert facts_needed("run_command", {"argv": ["systemctl", "-q", "stop", "--", "b"]}) \
        == FactsNeeded(("b.service",))
    assert facts_needed("kill_process", {"pid": "42"}) == FactsNeeded(pid=42)
    assert facts_needed("restart_unit", {"unit": "a b"}) == FactsNeeded()
    assert facts_needed("vacuum_journal", {}) == FactsNeeded()


# -- processes ------------------------------------------------------------------------------------
PS = """\
    1     0 systemd          0::/init.scope
  500     1 sshd             0::/system.slice/ssh.service
  812   500 sshd             0::/user.slice/user-1000.slice/session-3.scope
  813   812 bash             0::/user.slice/user-1000.slice/session-3.scope
  900   813 yes              0::/user.slice/user-1000.slice/session-3.scope
  950     1 systemd          0::/user.slice/user-1000.slice/user@1000.service/init.scope
  951   950 cpuhog           0::/user.slice/user-1000.slice/user@1000.service/app.slice/hog.service
 1000     1 nginx            0::/system.slice/nginx.service
 1001  1000 nginx            0::/system.slice/nginx.service
 1100     1 python3          0::/system.slice/hal-ai.service
 1200   500 odd child        0::/system.slice/batch.service
    2     0 kthreadd         -
   30     2 kworker/0:1      -
 1300     1 tool             12:pids:/system.slice/t.service,1:name=systemd:/system.slice/t.service
"""


@pytest.mark.parametrize(("pid", "why"), [
    (500, "ssh.service, which is protected"),
    (1100, "the assistant's own service"),
    (30, "kernel thread"),
    (2, "kernel thread"),
    (1001, "the assistant itself"),
])
def test_processes_that_are_never_killed(pid, why) -> None:
    facts = facts_for(pid, parse_ps(PS))
    assert facts is not None
    verdict = judge_process(facts, own_units=("hal-ai.service",), own_pids=(1001,))
    assert verdict.refused and why in verdict.refused


@pytest.mark.parametrize(("pid", "why"), [
    (900, "login session (session-3.scope)"),
    (813, "login session"),
    (951, "user@1000.service"),
    (1200, "started by process 500 (sshd) of ssh.service"),
])
def test_processes_of_a_login_need_a_person(pid, why) -> None:
    facts = facts_for(pid, parse_ps(PS))
    assert facts is not None
    verdict = judge_process(facts)
    assert verdict.refused is None and any(why in p for p in verdict.person), verdict


def test_a_service_process_is_judged_by_its_unit() -> None:
    table = parse_ps(PS)
    nginx = facts_for(1001, table)
    assert nginx is not None and nginx.process.unit == "nginx.service"
    assert [p.pid for p in nginx.ancestors] == [1000, 1]
    assert judge_process(nginx) == judge_process(nginx, protected=("db",))
    assert judge_process(nginx).person == ()
    assert "protected" in (judge_process(nginx, protected=("nginx",)).refused or "")
    hybrid = facts_for(1300, table)
    assert hybrid is not None and hybrid.process.unit == "t.service"
    assert facts_for(4242, table) is None


def test_kill_plans_carry_the_verdict() -> None:
    table = parse_ps(PS)
    session = PlanContext(facts_read=True, process=facts_for(900, table))
    plan = plan_action("kill_process", {"pid": 900}, session)
    assert plan.allowed and plan.risk == "high" and "session-3.scope" in plan.reason
    nginx_unit = unit("nginx.service", ControlGroup="/system.slice/nginx.service")
    nginx = plan_action("kill_process", {"pid": 1001}, PlanContext(
        facts_read=True, process=facts_for(1001, table), units={"nginx.service": nginx_unit},
        incident_rule="runaway_process", incident_subject="nginx.service"))
    assert nginx.allowed and nginx.risk == "medium" and "nginx.service" in nginx.reason
    # named as the runaway finding names it: a hog nginx starts again counts toward the same
    # flapping limit; a session's process by its pid
    assert (nginx.subject, plan.subject) == ("nginx.service", "pid:900")
    # the unit it runs in could not be read: a person decides
    unread = plan_action("kill_process", {"pid": 1001},
                         PlanContext(facts_read=True, process=facts_for(1001, table)))
    assert unread.risk == "high" and "could not be read" in unread.reason
    sshd = plan_action("kill_process", {"pid": 500},
                       PlanContext(facts_read=True, process=facts_for(500, table)))
    assert not sshd.allowed and "protected" in sshd.reason


_END = (" ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; "
        "status=0/0 }")


def test_an_argument_holding_a_semicolon_hides_no_word_of_the_command() -> None:
    shown = (f"ExecStop={{ path=/bin/systemctl ; argv[]=/bin/systemctl x ; y poweroff{_END}\n"
             "Id=a.service\n")
    [(commands, stops)] = parse_commands(shown, ["a.service"])
    assert stops == (("/bin/systemctl", "x", ";", "y", "poweroff"),)
    verdict = judge_unit("stop", UnitFacts("a.service", (), {}, commands, stops))
    assert verdict.refused or verdict.person, verdict


def test_a_line_break_in_a_command_makes_every_program_judged_with_every_word() -> None:
    shown = (f"ExecStart={{ path=/bin/echo ; argv[]=/bin/echo x\n\nId=b.service\n"
             f"ExecStart={{ path=/bin/true ; argv[]=/bin/true{_END}\n"
             f"ExecStopPost={{ path=/bin/systemctl ; argv[]=/bin/systemctl reboot{_END}\n"
             "Id=a.service\n\nId=b.service\n")
    per_unit = parse_commands(shown, ["a.service", "b.service"])
    for commands, stops in per_unit:
        assert ("/bin/systemctl", "x", "reboot") in commands and commands == stops


def _unit_running(argv: str, key: str = "ExecStart", unit: str = "app.service") -> UnitFacts:
    """A loaded unit whose one command line (under ``key``) is ``argv``, as read from
    systemctl show."""
    [(commands, stops)] = parse_commands(_shown(key, argv) + f"\nId={unit}\n", [unit])
    return UnitFacts(unit, (unit,), {"LoadState": ("loaded",)}, commands, stops)


def _shown(key: str, argv: str) -> str:
    """One command line as systemd 252 prints it: the argv unquoted, words joined by spaces."""
    return f"{key}={{ path={argv.split()[0]} ; argv[]={argv}{_END}"


@pytest.mark.parametrize(("key", "argv", "runs"), [
    ("ExecStop", "/bin/sh -c systemctl poweroff", "systemctl poweroff"),
    ("ExecStop", "/bin/bash -c systemctl poweroff", "systemctl poweroff"),
    ("ExecStopPost", "/bin/sh -ec test -d /run/app && reboot", "reboot"),
    ("ExecStop", "/usr/bin/env sh -c poweroff", "poweroff"),
    ("ExecStartPre", "/usr/bin/env bash -c sleep 1; reboot", "reboot"),
    ("ExecStart", "/bin/dash -xeuc exec /usr/bin/app; /sbin/halt -f", "/sbin/halt -f"),
    ("ExecStop", "/bin/bash -O extglob -c true && kexec -e", "kexec -e"),
    ("ExecStop", "/bin/sh -c $(systemctl --no-block reboot)", "systemctl --no-block reboot"),
    ("ExecStop", "/bin/sh -c systemctl ; isolate rescue.target", "systemctl ... isolate"),
    ("ExecStop", "/usr/bin/busybox sh -c init 0", "init 0"),
    ("ExecStop", "/bin/sh -c \\shutdown -h now", "shutdown -h now"),
    ("ExecStop", "/usr/bin/python3 -c import os; os.system('reboot')", "reboot"),
    ("ExecStop", "/usr/bin/python3 -Sc import subprocess; subprocess.run(['systemctl', "
     "'poweroff'])", "systemctl poweroff"),
    ("ExecStopPost", "/usr/bin/perl -e system(\"/sbin/poweroff\")", "/sbin/poweroff"),
    ("ExecStop", "/usr/bin/perl -lne print; exec 'halt' if /x/", "halt"),
    ("ExecStop", "/usr/bin/ruby -e `reboot`", "reboot"),
    ("ExecStop", "/usr/bin/env node --eval require('child_process').execSync('kexec -e')",
     "kexec -e"),
    ("ExecStop", "/usr/bin/awk BEGIN { system(\"shutdown -h now\") }", "shutdown -h now"),
])
def test_a_shell_script_that_powers_off_is_judged_by_its_words(key, argv, runs) -> None:
    facts = _unit_running(argv, key)
    for verb in ("restart", "start"):
        refused = judge_unit(verb, facts, incident_unit="app.service").refused
        # old: the shell was the program and its script plain arguments: nothing against it
        assert refused and f"its script runs {runs}" in refused, refused
    if facts.stop_commands:
        assert "stopping app.service runs" in (judge_unit("stop", facts).refused or "")


@pytest.mark.parametrize("argv", [
    "/bin/sh -c exec /usr/bin/myservice --port 8080",
    "/bin/bash -ec test -f /etc/app.conf && exec /usr/bin/app",
    "/bin/sh -c systemctl is-active --quiet db.service || exit 1",
    "/bin/sh -c echo initialising; sleep 1",
    "/bin/sh /usr/lib/app/reboot-helper.sh",
    "/usr/bin/python3 -m http.server 8080",
    "/usr/bin/python3 -c import app; app.main()",
    "/usr/bin/perl /usr/lib/app/poweroff-guard.pl",
    "/usr/bin/awk -f /usr/lib/app/report.awk /var/log/app.log",
])
def test_an_ordinary_shell_wrapped_service_stays_harmless(argv) -> None:
    facts = _unit_running(argv)
    assert judge_unit("restart", facts, incident_unit="app.service") == Verdict(None, ())


@pytest.mark.parametrize(("argv", "program"), [
    ("/bin/sh -c apt-get -y upgrade", "apt-get"),
    ("/usr/bin/env apt-get -y dist-upgrade", "apt-get"),
    ("/bin/bash -ec cd /etc/nixos && nixos-rebuild switch --upgrade", "nixos-rebuild"),
    ("/bin/sh -c test -x /usr/bin/dnf && /usr/bin/dnf -y upgrade", "dnf"),
    ("/usr/bin/nice -n 19 /usr/bin/unattended-upgrade", "unattended-upgrade"),
])
def test_a_unit_that_installs_software_through_a_wrapper_or_script_needs_a_person(
        argv, program) -> None:
    facts = _unit_running(argv, unit="upd.service")
    verdict = judge_unit("restart", facts, incident_unit="upd.service")
    # old: only the command's own program was read (sh, env, nice): nothing to weigh
    assert f"it runs {program}, which installs software: the same as update_packages" in \
        verdict.person, verdict


@pytest.mark.parametrize("argv", [
    "/usr/bin/app --log /var/log/apt-get.log",
    "/bin/sh -c exec /usr/bin/app --no-upgrade",
    "/usr/bin/env LANG=C /usr/bin/app",
])
def test_a_word_about_updates_is_no_update(argv) -> None:
    facts = _unit_running(argv)
    assert judge_unit("restart", facts, incident_unit="app.service") == Verdict(None, ())


@pytest.mark.parametrize(("text", "also"), [
    ("[Install]\nWantedBy=multi-user.target\nAlso=a.socket b.service\n",
     ("a.socket", "b.service")),
    # systemd reads "Also =" and a line that goes on, comments between skipped
    ("[Install]\n  Also = a.service \\\n; note\n   b.service\n", ("a.service", "b.service")),
    # an escaped backslash ends the line: the next one is systemd's Also= of its own
    ("[Service]\nEnvironment=X=a\\\\\nAlso=c.service\n", ("c.service",)),
    # wherever systemd could read one, it counts: a line a continuation would swallow too
    ("[Service]\nExecStart=/bin/true \\\nAlso=d.service\n", ("d.service",)),
    ("[Install]\n#Also=e.service\nalso=f.service\n", ()),
])
def test_what_a_disable_also_disables_is_read_from_the_unit_files(text, also) -> None:
    assert install_also(text) == also


@pytest.mark.parametrize("value", ["%p-helper.service", "sshd", '"sshd.service"'])
def test_an_also_that_cannot_be_told_is_no_guess(value) -> None:
    with pytest.raises(UnitFileError):
        install_also(f"[Install]\nAlso=ok.service {value}\n")
