"""Decisions and approvals against real systemd in the fault lab: a dry run runs nothing, a
proposal is decided once, a kill hits only the process the person was shown."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.safety.sudo_rules import sudoers_text
from ai_sysadmin.store import ActionStore, Database, IncidentStore
from ai_sysadmin.store.outbox import Outbox
from tests.lab.daemon_runner import QUIET_HOST_WIDE, run_daemon

pytestmark = pytest.mark.lab

#: fails its first start (and counts every start), runs from the second on
FAILS_ONCE = """\
[Service]
ExecStartPre=/bin/sh -c 'echo x >> /var/tmp/starts'
ExecStart=/bin/sh -c 'if [ -e /var/tmp/once ]; then exec sleep infinity; fi; \
touch /var/tmp/once; exit 1'
"""


def lab_settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(ai_name="hal", state_dir=tmp_path / "state", autonomy_level="auto-safe",
                    safety={"verify_settle_seconds": 0, "verify_timeout": 5}, **extra)


def failed_app(sb: Sandbox) -> SandboxTransport:
    apply(sb, "install_unit", {"name": "app.service", "text": FAILS_ONCE})
    sb.exec(["systemctl", "start", "app.service"])
    return SandboxTransport(sb)


def app_incident(store: IncidentStore, host: str) -> int:
    finding = Finding(host, "failed_unit", "app.service", Severity.CRITICAL, "failed")
    return store.record_check(host, [finding], {"failed_unit"}).opened[0]


def failed_app_incident(sb: Sandbox, tmp_path: Path
                        ) -> tuple[SandboxTransport, Settings, IncidentStore, int]:
    """app.service failed in the lab, and its incident in a store of the lab's settings."""
    transport = failed_app(sb)
    settings = lab_settings(tmp_path)
    store = IncidentStore(Database(settings.db_path))
    return transport, settings, store, app_incident(store, transport.host)


def starts(sb: Sandbox) -> int:
    return sb.exec(["cat", "/var/tmp/starts"]).stdout.count("x")


def in_child(work: object) -> None:
    """``work()`` in a forked process that then ends: a daemon that decided and is gone."""
    pid = os.fork()
    if pid == 0:
        try:
            work()  # type: ignore[operator]
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def approved_by_a_gone_daemon(settings: Settings, transport: SandboxTransport,
                              incident_id: int) -> None:
    """A daemon of ``settings`` decided a restart of app.service for the incident, and is
    gone before it ran it."""
    host = transport.host

    def decide_and_die() -> None:
        mine = IncidentStore(Database(settings.db_path))
        asyncio.run(Executor(settings, mine, {host: transport}).propose(
            host, "restart_unit", {"unit": "app.service"}, incident_id=incident_id))

    in_child(decide_and_die)


def test_a_dry_run_daemon_never_runs_what_a_gone_daemon_approved(tmp_path: Path) -> None:
    with Sandbox() as sb:
        transport, settings, store, incident_id = failed_app_incident(sb, tmp_path)
        host = transport.host

        approved_by_a_gone_daemon(settings, transport, incident_id)
        dry = lab_settings(tmp_path, executor={"dry_run": True})
        executor = Executor(dry, store, {host: transport})
        done = [asyncio.run(executor.run(a.id)) for a in executor.recover()]

        assert [a.state for a in done] == ["recorded"]
        assert done[0].started_at is None and not done[0].result
        assert "dry run" in done[0].reason and "app.service" in done[0].reason
        assert starts(sb) == 1  # only the failed start before: nothing restarted it
        assert sb.exec(["systemctl", "is-active", "app.service"]).stdout.strip() != "active"
        rows = [e["action"] for e in store.audit_log(50) if e["subject"] == f"action:{done[0].id}"]
        assert "action.executing" not in rows and "action.recorded" in rows


@pytest.mark.parametrize("level", ["observe", "suggest"])
def test_a_fix_a_gone_daemon_approved_follows_the_autonomy_level_it_restarts_at(
        tmp_path: Path, level: str) -> None:
    """auto-safe approved a low-risk restart and stopped before running it; the config now
    says observe or suggest. At observe it is recorded (nobody is asked to approve what
    could never run there); at suggest a person is asked, told why: the level, not the
    host's facts, which did not change."""
    with Sandbox() as sb:
        transport, settings, store, incident_id = failed_app_incident(sb, tmp_path)
        host = transport.host

        approved_by_a_gone_daemon(settings, transport, incident_id)
        now = lab_settings(tmp_path).model_copy(update={"autonomy_level": level})
        executor = Executor(now, store, {host: transport})
        (done,) = [asyncio.run(executor.run(a.id)) for a in executor.recover()]

        assert starts(sb) == 1  # only the failed start before: nothing restarted it
        kinds = [e.kind for e in Outbox.events(store.db.conn, ["new"])]
        if level == "observe":
            assert (done.state, done.reason) == (
                "recorded", "not run: the autonomy level is observe: nothing runs")
            assert "approval" not in kinds
            assert store.get(incident_id).state != "awaiting_approval"
        else:
            assert done.state == "pending" and "approval" in kinds
            assert done.reason.startswith(
                "needs a person: low-risk actions wait for a person at suggest, the autonomy "
                "level now")
            assert "facts" not in done.reason


def test_a_proposal_two_daemons_decide_at_once_yields_one_action(tmp_path: Path) -> None:
    with Sandbox() as sb:
        transport, settings, store, incident_id = failed_app_incident(sb, tmp_path)
        host = transport.host
        store.transition(incident_id, "investigating", "agent", "investigation started")
        store.add_proposal(incident_id, host, "restart_unit", '{"unit": "app.service"}', "why")
        store.transition(incident_id, "open", "agent", "the daemon died here")
        # the second daemon read the undecided proposals just before the first decided them
        seen = store.undecided_proposals()

        def first_daemon() -> None:
            mine = IncidentStore(Database(settings.db_path))
            asyncio.run(Executor(settings, mine, {host: transport}).decide_undecided())

        in_child(first_daemon)
        second = Executor(settings, store, {host: transport})
        asyncio.run(second.decide_and_act(incident_id, host, seen))

        actions = ActionStore(store.db).find()
        assert [(a.proposal_id, a.state) for a in actions] == [(seen[0]["id"], "succeeded")]
        assert starts(sb) == 2  # the failed start, then one restart
        decided = [e for e in store.audit_log(100) if e["action"] == "action.approved"]
        assert len(decided) == 1


def test_proposals_a_restarted_daemon_refuses_all_leave_the_incident_to_a_person(
        tmp_path: Path) -> None:
    """The daemon died between recording an investigation's proposal (clean /etc) and
    deciding it; the restarted daemon's policy refuses it (outside clean_paths). Its
    incident stayed open, diagnosed, with no retry planned and nobody told: looked at by
    nobody, as if the crash had not come between, where the retries are spent."""
    with Sandbox() as sb:
        transport = failed_app(sb)
        settings = lab_settings(tmp_path, check_interval=3600, thresholds=QUIET_HOST_WIDE,
                                agent={"max_investigations": 1},
                                llm={"url": "http://127.0.0.1:9", "model": "none"})
        store = IncidentStore(Database(settings.db_path))
        incident_id = app_incident(store, transport.host)
        store.transition(incident_id, "investigating", "agent", "investigation started")
        store.add_proposal(incident_id, transport.host, "clean_directory",
                           '{"path": "/etc", "older_than_days": 7}', "old files")
        store.record_investigation(incident_id, "DIAGNOSIS: old files", None)

        def told(store: IncidentStore) -> bool:
            return any(e.kind == "escalated" for e in store.get(incident_id).events)

        store, _ = run_daemon(settings, sb, told)
    (action,) = ActionStore(store.db).find()
    assert action.state == "refused" and "outside the configured" in action.reason
    incident = store.get(incident_id)
    assert incident.state == "open"
    (said,) = [e.detail for e in incident.events if e.kind == "escalated"]
    assert said.startswith("every proposal was refused: ") and "retries spent" in said


SLEEPER = "[Service]\nExecStart=/bin/sleep infinity\n"


def main_pid(sb: Sandbox, unit: str) -> int:
    return int(sb.exec(["systemctl", "show", "-p", "MainPID", "--value", unit]).stdout)


def start_with_pid(sb: Sandbox, unit: str, pid: int) -> bool:
    """Start ``unit`` so that its main process gets ``pid`` (the kernel's next PID set just
    below it; the manager forks a few times first, hence the tries)."""
    for before in range(1, 12):
        sb.exec(["unshare", "-m", "sh", "-c", "mkdir -p /run/p && mount -t proc proc /run/p "
                 f"&& echo {pid - before} > /run/p/sys/kernel/ns_last_pid && "
                 f"systemctl start {unit}"])
        if main_pid(sb, unit) == pid:
            return True
        sb.exec(["systemctl", "stop", unit])
    return False


def test_a_persons_restart_of_a_runaway_service_is_verified_by_its_new_process(
        tmp_path: Path) -> None:
    """`approve` checks the host afresh: no look of its own is runaway_min_seconds old, so
    no share tells that the service stopped spinning. The process that spun is gone, and the
    one the restart started is the fix's own: that verifies it."""
    with Sandbox() as sb:
        apply(sb, "install_unit", {"name": "spin.service", "text": SLEEPER})
        apply(sb, "start_unit", {"name": "spin.service"})
        transport = SandboxTransport(sb)
        host = transport.host
        settings = lab_settings(tmp_path).model_copy(update={"autonomy_level": "suggest"})
        store = IncidentStore(Database(settings.db_path))
        hog = Finding(host, "runaway_process", "spin.service", Severity.WARNING,
                      "sleep (pid 1) in spin.service has used 100% CPU for 300 s")
        incident_id = store.record_check(host, [hog], {"runaway_process"}).opened[0]
        executor = Executor(settings, store, {host: transport})
        shown = asyncio.run(executor.propose(host, "restart_unit", {"unit": "spin.service"},
                                             incident_id=incident_id))
        assert shown.state == "pending"
        pid = main_pid(sb, "spin.service")

        done = asyncio.run(executor.approve(shown.id, "alice"))

        assert main_pid(sb, "spin.service") != pid
    assert done.state == "succeeded", done.result
    assert done.result is not None and done.result["verification"] == (
        "no process of spin.service from before the fix runs and spin.service active for 0 s")


def runaway_beside_db(sb: Sandbox, tmp_path: Path, level: str
                      ) -> tuple[SandboxTransport, Settings, IncidentStore, int]:
    """runaway.service running (its main PID returned), db.service installed to take that
    PID over, and a store of the lab's settings at autonomy ``level``."""
    apply(sb, "install_unit", {"name": "runaway.service", "text": SLEEPER})
    apply(sb, "install_unit", {"name": "db.service", "text": SLEEPER})
    apply(sb, "start_unit", {"name": "runaway.service"})
    settings = lab_settings(tmp_path).model_copy(update={"autonomy_level": level})
    return (SandboxTransport(sb), settings, IncidentStore(Database(settings.db_path)),
            main_pid(sb, "runaway.service"))


@pytest.mark.parametrize("as_command", [False, True], ids=["kill_process", "run_command"])
def test_an_approved_kill_never_hits_the_process_that_took_over_the_pid(tmp_path: Path,
                                                                        as_command: bool
                                                                        ) -> None:
    with Sandbox() as sb:
        transport, settings, store, pid = runaway_beside_db(sb, tmp_path, "suggest")
        host = transport.host
        executor = Executor(settings, store, {host: transport})
        # the kill as the catalog's action, or as the argv a model may propose
        kind, params = (("run_command", {"argv": ["kill", "-TERM", str(pid)]}) if as_command
                        else ("kill_process", {"pid": pid}))
        shown = asyncio.run(executor.propose(host, kind, params))
        assert shown.state == "pending" and "runaway.service" in shown.reason
        sb.exec(["systemctl", "stop", "runaway.service"], check=True)
        if not start_with_pid(sb, "db.service", pid):
            pytest.skip(f"the lab's kernel did not give PID {pid} again")

        done = asyncio.run(executor.approve(shown.id, "alice"))

        assert done.state == "pending" and done.result is None
        assert "not the one it was decided on" in done.reason and "db.service" in done.reason
        assert "runaway.service" in done.reason
        assert sb.exec(["systemctl", "is-active", "db.service"]).stdout.strip() == "active"
        assert main_pid(sb, "db.service") == pid
        rows = [e["action"] for e in store.audit_log(50) if e["subject"] == f"action:{done.id}"]
        assert "action.executing" not in rows and rows[-1] == "action.replanned"

        # shown the process it is now, a person's second yes signals that one
        again = asyncio.run(executor.approve(shown.id, "alice"))
        assert again.state == "succeeded"
        assert sb.exec(["systemctl", "is-active", "db.service"]).stdout.strip() != "active"


def test_the_audit_credits_the_policy_with_its_decisions_and_the_agent_with_its_proposals(
        tmp_path: Path) -> None:
    with Sandbox() as sb:
        transport = failed_app(sb)
        host = transport.host
        for level, decided in (("auto-safe", "action.approved"), ("suggest", "action.pending")):
            settings = lab_settings(tmp_path / level).model_copy(
                update={"autonomy_level": level})
            store = IncidentStore(Database(settings.db_path))
            incident_id = app_incident(store, host)
            store.transition(incident_id, "investigating", "agent", "investigation started")
            store.add_proposal(incident_id, host, "restart_unit", '{"unit": "app.service"}',
                               "it failed")
            store.transition(incident_id, "open", "agent", "investigation finished")
            asyncio.run(Executor(settings, store, {host: transport}).decide_undecided())

            who = {e["action"]: e["actor"] for e in store.audit_log(100)}
            assert who["proposal.recorded"] == "agent"
            assert who[decided] == "policy", (level, who)


def test_an_action_back_with_a_person_is_listed_with_its_risk_and_reason_now(
        tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    with Sandbox() as sb:
        apply(sb, "install_unit", {"name": "app.service",
                                   "text": "[Service]\nExecStart=/bin/false\n"})
        sb.exec(["systemctl", "start", "app.service"])
        transport = SandboxTransport(sb)
        host = transport.host
        settings = lab_settings(tmp_path)
        store = IncidentStore(Database(settings.db_path))
        executor = Executor(settings, store, {host: transport})
        decided = asyncio.run(executor.propose(host, "restart_unit", {"unit": "app.service"},
                                               incident_id=app_incident(store, host)))
        assert (decided.state, decided.risk) == ("approved", "low")
        # before it runs, a failed restart would now reboot the host
        sb.write_file("/etc/systemd/system/app.service.d/x.conf",
                      "[Unit]\nFailureAction=reboot\n")
        sb.exec(["systemctl", "daemon-reload"], check=True)
        assert asyncio.run(executor.run(decided.id)).state == "pending"

        code, out, _ = cli("approve", "list", "--json")
        (listed,) = json.loads(out)
        assert code == 0 and (listed["id"], listed["risk"]) == (decided.id, "high")
        assert listed["reason"].startswith("needs a person: the host's facts now make it high")
        assert "FailureAction" in listed["reason"] and listed["plan"]["risk"] == "high"
        code, out, _ = cli("approve", "show", str(decided.id))
        assert "risk high" in out and "FailureAction" in out
        assert sb.exec(["systemctl", "is-active", "app.service"]).stdout.strip() != "active"


RESPAWNING = "[Service]\nExecStart=/bin/sleep infinity\nRestart=always\nRestartSec=0\n"


def hog_executor(sb: Sandbox, tmp_path: Path) -> Executor:
    """hog.service running in the lab, which systemd starts again whenever it is killed, and
    an executor that may kill it on its own."""
    apply(sb, "install_unit", {"name": "hog.service", "text": RESPAWNING})
    apply(sb, "start_unit", {"name": "hog.service"})
    transport = SandboxTransport(sb)
    settings = lab_settings(tmp_path).model_copy(update={"autonomy_level": "auto-full"})
    return Executor(settings, IncidentStore(Database(settings.db_path)),
                    {transport.host: transport})


def kill_the_hog(sb: Sandbox, executor: Executor, killed: int) -> tuple[int, str, str]:
    """The hog runs away (again) once systemd started it after the kill of ``killed``: its
    incident, and the kill the executor is asked for. The pid, the subject and the state."""
    (host,) = executor.transports
    deadline = time.monotonic() + 10
    while (pid := main_pid(sb, "hog.service")) in (0, killed):
        assert time.monotonic() < deadline, "systemd did not start it again"
        time.sleep(0.05)  # a poll, with a deadline above
    hog = Finding(host, "runaway_process", "hog.service", Severity.WARNING, "hog")
    executor.store.record_check(host, [hog], {"runaway_process"})
    about = next(i.id for i in executor.store.incidents() if i.rule == "runaway_process")
    action = asyncio.run(executor.propose(host, "kill_process", {"pid": pid},
                                          incident_id=about))
    if action.state == "approved":
        action = asyncio.run(executor.run(action.id))
    return pid, action.subject, action.state


def test_kills_of_a_process_its_service_starts_again_meet_the_flapping_limit(
        tmp_path: Path) -> None:
    """A hog its service starts again is the same hog: each kill "works" (the process is
    gone), and the kills of one service count together, so the next one waits for a person
    instead of killing every respawn for ever."""
    with Sandbox() as sb:
        executor = hog_executor(sb, tmp_path)
        ended, killed = [], 0
        for _ in range(executor.settings.safety.flapping_max + 1):
            killed, subject, state = kill_the_hog(sb, executor, killed)
            ended.append((subject, state))
    assert {subject for subject, _ in ended} == {"hog.service"}
    assert [state for _, state in ended[:-1]] == \
        ["succeeded"] * executor.settings.safety.flapping_max
    assert ended[-1][1] == "escalated"


def test_fixes_made_while_the_clock_ran_a_year_ahead_do_not_refuse_the_next_for_a_year(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock ran a year ahead (the daemon's, stepped here as libfaketime would) while the
    hog was killed as often as the flapping limit allows; NTP sets it right. The next kill
    runs: the limit counts the window on the clock as it is now, not the attempts stamped a
    year ahead, which refused the fix until the clock caught up."""
    real = time.time
    with Sandbox() as sb:
        executor = hog_executor(sb, tmp_path)
        killed = 0
        with monkeypatch.context() as ahead:
            ahead.setattr(time, "time", lambda: real() + 365 * 86400)
            for _ in range(executor.settings.safety.flapping_max):
                killed, _, state = kill_the_hog(sb, executor, killed)
                assert state == "succeeded"
        assert kill_the_hog(sb, executor, killed)[1:] == ("hog.service", "succeeded")


class AsNobody(LocalTransport):
    """This host as a daemon that is not root meets it: every command as nobody, here the
    lab's (its sudo and sudoers are real)."""

    def __init__(self, sb: Sandbox) -> None:
        super().__init__(sb.hostname)
        self.sb = sb

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        return self.sb.nsenter_argv(("setpriv", "--reuid=65534", "--regid=65534",
                                     "--clear-groups", *argv))


def nobody_daemon(sb: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  more_rules: str = "") -> tuple[Executor, AsNobody, int]:
    """A daemon that is not root (nobody) with the printed drop-in (``more_rules`` before
    it), and runaway.service running: the executor, its transport and the service's PID."""
    if sb.exec(["sh", "-c", "command -v sudo visudo setpriv"]).returncode:
        reason = "sudo, visudo or setpriv is not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the sudo test", pytrace=False)
        pytest.skip(reason)
    settings = lab_settings(tmp_path).model_copy(update={"autonomy_level": "suggest"})
    rules = more_rules + sudoers_text(settings, "nobody", lambda p: shutil.which(p) or p)
    sb.write_file("/etc/sudoers.d/ai-sysadmin", rules, mode=0o440)
    assert sb.exec(["visudo", "-c", "-f", "/etc/sudoers.d/ai-sysadmin"]).returncode == 0
    apply(sb, "install_unit", {"name": "runaway.service", "text": SLEEPER})
    apply(sb, "start_unit", {"name": "runaway.service"})
    transport = AsNobody(sb)
    monkeypatch.setattr("ai_sysadmin.executor.executor.os.geteuid", lambda: 65534)
    store = IncidentStore(Database(settings.db_path))
    return (Executor(settings, store, {transport.host: transport}), transport,
            main_pid(sb, "runaway.service"))


def test_a_daemon_that_is_not_root_runs_what_its_sudo_rules_allow_and_asks_for_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Sandbox() as sb:
        executor, transport, pid = nobody_daemon(sb, tmp_path, monkeypatch)

        # the rules hold -TERM only: a KILL is not claimed, and can be approved again
        kill = asyncio.run(executor.propose(transport.host, "kill_process",
                                            {"pid": pid, "signal": "KILL"}))
        assert kill.state == "pending"
        waiting = asyncio.run(executor.approve(kill.id, "alice"))
        assert waiting.state == "pending" and waiting.result is None
        # sudo -l says no by its exit alone: that is the reason, not the warning sudo printed
        # first (the lab's own name does not resolve)
        assert f"sudo -n -l says it would not run kill -KILL {pid} (exit 1: no sudo rule of " \
            "this user allows it" in waiting.reason
        assert main_pid(sb, "runaway.service") == pid

        # what the rules allow runs, through sudo, as root
        vacuum = asyncio.run(executor.propose(transport.host, "vacuum_journal",
                                              {"max_size": "500M"}))
        done = asyncio.run(executor.approve(vacuum.id, "alice"))
        assert done.state == "succeeded", done.reason
        assert done.result["commands"][0]["argv"] == ["journalctl", "--vacuum-size=500M"]


def test_a_fix_the_run_wants_a_password_for_waits_for_a_person_though_sudo_l_said_yes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's user is also in a password rule (as a member of %sudo or %wheel is):
    `sudo -n -l` lists a SIGKILL (that rule matches it, and one NOPASSWD rule of the user's
    lets it list without a password), the run wants the password. sudo refuses `sudo -n`
    before the kill runs: the fix waits for a person with that reason, not failed, and its
    incident waits for approval again; the process lives."""
    with Sandbox() as sb:
        executor, transport, pid = nobody_daemon(sb, tmp_path, monkeypatch,
                                                 "nobody ALL=(ALL:ALL) ALL\n")
        host = transport.host
        hog = Finding(host, "runaway_process", "runaway.service", Severity.WARNING, "hog")
        incident = executor.store.record_check(host, [hog], {"runaway_process"}).opened[0]
        kill = asyncio.run(executor.propose(host, "kill_process",
                                            {"pid": pid, "signal": "KILL"}, incident_id=incident))
        assert kill.state == "pending", kill.reason
        waiting = asyncio.run(executor.approve(kill.id, "alice"))
        assert waiting.state == "pending" and waiting.result is None, waiting.reason
        assert waiting.reason == (
            f"needs a person: not run, nothing ran: kill -KILL {pid}: sudo on {host} needs a "
            "password: `sudo -n` failed: a password is required; it can be approved again")
        assert executor.store.get(incident, history=0).state == "awaiting_approval"
        assert main_pid(sb, "runaway.service") == pid


def test_a_sudo_that_wants_a_password_to_list_still_runs_what_its_rules_allow(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`Defaults listpw=always`: `sudo -n -l` wants a password to answer for any command,
    though the drop-in's NOPASSWD rules let the runs through. The vacuum runs (it waited for
    a person forever); a SIGKILL, which no rule lets through, is refused by sudo before it
    runs and waits for a person."""
    with Sandbox() as sb:
        executor, transport, pid = nobody_daemon(sb, tmp_path, monkeypatch,
                                                 "Defaults listpw=always\n")
        vacuum = asyncio.run(executor.propose(transport.host, "vacuum_journal",
                                              {"max_size": "500M"}))
        done = asyncio.run(executor.approve(vacuum.id, "alice"))
        assert done.state == "succeeded", done.reason
        kill = asyncio.run(executor.propose(transport.host, "kill_process",
                                            {"pid": pid, "signal": "KILL"}))
        waiting = asyncio.run(executor.approve(kill.id, "alice"))
        assert waiting.state == "pending", waiting.reason
        assert "sudo on sdtest needs a password" in waiting.reason
        assert main_pid(sb, "runaway.service") == pid


def test_a_kill_left_by_a_gone_daemon_is_judged_after_the_host_is_looked_at_again(
        tmp_path: Path) -> None:
    """The next daemon looks at the host again before it runs a kill a gone one approved (a
    whole check, seconds). The PID passed to another service's process meanwhile: the
    process is judged after that look, just before the claim, and the kill never hits it;
    judged before it, it did."""
    with Sandbox() as sb:
        transport, settings, store, pid = runaway_beside_db(sb, tmp_path, "auto-full")
        host = transport.host
        hog = Finding(host, "runaway_process", "runaway.service", Severity.WARNING, "hog")
        incident = store.record_check(host, [hog], {"runaway_process"}).opened[0]

        def decide_and_end() -> None:
            decided = asyncio.run(Executor(settings, IncidentStore(Database(settings.db_path)),
                                           {host: transport}).propose(
                host, "kill_process", {"pid": pid}, incident_id=incident))
            assert decided.state == "approved", decided

        in_child(decide_and_end)
        executor = Executor(settings, store, {host: transport})
        (left,) = executor.recover()
        swapped: list[bool] = []
        looked = executor._finding_present

        async def look_while_the_pid_passes(action: object, reason: str = "approval") -> bool:
            # the look takes seconds; meanwhile the hog ends and db.service gets its PID
            sb.exec(["systemctl", "stop", "runaway.service"], check=True)
            swapped.append(start_with_pid(sb, "db.service", pid))
            return await looked(action, reason)  # type: ignore[arg-type]

        executor._finding_present = look_while_the_pid_passes  # type: ignore[method-assign]
        done = asyncio.run(executor.run(left.id))
        if not swapped[0]:
            pytest.skip(f"the lab's kernel did not give PID {pid} again")
        assert sb.exec(["systemctl", "is-active", "db.service"]).stdout.strip() == "active"
    assert done.result is None or not done.result.get("commands"), done.result
    assert done.state in ("pending", "not_needed"), (done.state, done.reason)


def test_a_persons_yes_to_a_start_whose_risk_rose_since_it_was_shown_runs_nothing(
        tmp_path: Path) -> None:
    """Shown as a low-risk start, app.service gained Conflicts=db.service before the yes:
    starting it now stops db.service, high risk. The same argv ran on the yes to the low
    risk shown; now it waits for the person again, shown as it is."""
    with Sandbox() as sb:
        transport, settings, store, incident_id = failed_app_incident(sb, tmp_path)
        settings = settings.model_copy(update={"autonomy_level": "suggest"})
        apply(sb, "install_unit", {"name": "db.service", "text": SLEEPER})
        apply(sb, "start_unit", {"name": "db.service"})
        host = transport.host
        executor = Executor(settings, store, {host: transport})
        shown = asyncio.run(executor.propose(host, "start_unit", {"unit": "app.service"},
                                             incident_id=incident_id))
        assert (shown.state, shown.risk) == ("pending", "low"), (shown.state, shown.reason)
        before = starts(sb)
        sb.exec(["sh", "-c", "mkdir -p /etc/systemd/system/app.service.d && printf "
                 "'[Unit]\\nConflicts=db.service\\n' > /etc/systemd/system/app.service.d/c.conf"
                 " && systemctl daemon-reload"], check=True)

        done = asyncio.run(executor.approve(shown.id, "alice"))

        assert starts(sb) == before
        assert sb.exec(["systemctl", "is-active", "db.service"]).stdout.strip() == "active"
    assert (done.state, done.risk) == ("pending", "high"), (done.state, done.reason)
    assert "high risk, low when it was shown" in done.reason and "db.service" in done.reason


FEDORA_COREOS = 'NAME="Fedora Linux"\nID=fedora\nVARIANT_ID=coreos\nVERSION_ID=40\n'
CENTOS_7 = 'NAME="CentOS Linux"\nID="centos"\nID_LIKE="rhel fedora"\nVERSION_ID="7"\n'


def test_an_update_is_the_package_manager_the_host_has_not_its_familys(tmp_path: Path
                                                                      ) -> None:
    """The lab is this machine's Debian: apt-get. Said to be Fedora CoreOS, booted from an
    ostree deployment, or CentOS, it still has no dnf: each was a `dnf -y upgrade` a person
    approved and that failed; now refused before anyone is asked, saying why."""
    with Sandbox() as sb:
        transport = SandboxTransport(sb)
        settings = lab_settings(tmp_path)
        executor = Executor(settings, IncidentStore(Database(settings.db_path)),
                            {transport.host: transport})

        def update() -> tuple[str, str, list[list[str]]]:
            action = asyncio.run(executor.propose(transport.host, "update_packages", {}))
            return action.state, action.reason, action.plan["commands"]

        assert update()[::2] == ("pending", [["apt-get", "-y", "upgrade"]])
        sb.write_file("/etc/os-release", CENTOS_7)
        state, reason, _ = update()
        assert state == "refused" and "no package update command is known for centos: it " \
            "has apt-get, not dnf or yum as its fedora family does: a person updates it" \
            in reason, reason
        sb.write_file("/etc/os-release", FEDORA_COREOS)
        sb.write_file("/run/ostree-booted", "")
        state, reason, _ = update()
        assert state == "refused" and "the host booted an ostree deployment, whose packages " \
            "only rpm-ostree changes, and it has no rpm-ostree" in reason, reason
