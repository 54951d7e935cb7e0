"""An approval from the moment a person says yes to the end of the action, when things go wrong
on the way: a Ctrl-C, a process that dies, a TTL that passes, a host whose facts changed, a
daemon that starts while an ``approve`` runs. At most once, and nothing stuck."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import StoreError, TransportError
from ai_sysadmin.executor import Executor
from ai_sysadmin.executor.host_facts import PACKAGE_PROBE
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.knowledge.learning import lesson
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import Action, ActionStore, IncidentStore
from tests.support.polling import until

HOST = "testhost"


class ScriptedHost(LocalTransport):
    """A host whose commands really run, here: ``systemctl show`` prints the file ``show``
    (so a test can change what the host says of its units), ``true`` (the executor's "does
    the host answer") runs or hangs, the look for its package managers runs as it is (on
    ``path`` where set: the PATH of a host without some), and every other command only
    writes its argv to ``ran``."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(HOST)
        self.show, self.ran, self.asked = tmp / "show", tmp / "ran", tmp / "asked"
        self.show.write_text(unit_show("app.service"))
        self.ran.write_text("")
        self.hang = False
        #: what its /etc/os-release says; None: it cannot be read (a host that stopped
        #: answering after the probe)
        self.os_release: str | None = 'ID=debian\nVERSION_ID="12"\n'
        self.path: str | None = None

    async def read_file(self, path: str, timeout: float = 20.0) -> str | None:
        if path in ("/etc/os-release", "/usr/lib/os-release"):
            if self.os_release is None:
                raise TransportError(f"{HOST}: no answer: connection reset")
            return self.os_release
        return await super().read_file(path, timeout)

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        if argv == ("true",):
            # hanging, it says so first (a file), so that a test waits for that, not a time
            return ("sh", "-c", 'touch "$0"; exec sleep 60', str(self.asked)) \
                if self.hang else argv
        if len(argv) > 1 and argv[0].endswith("systemctl") and argv[1] == "show":
            return ("cat", str(self.show))
        if argv[1:3] == ("-c", PACKAGE_PROBE):
            sh = shutil.which(argv[0]) or argv[0]
            return argv if self.path is None else ("env", f"PATH={self.path}", sh, *argv[1:])
        return ("sh", "-c", 'printf "%s\\n" "$*" >> "$0"', str(self.ran), *argv)

    def commands(self) -> list[str]:
        return [line for line in self.ran.read_text().splitlines()
                if line.startswith(("systemctl restart", "journalctl --vacuum", "apt-get",
                                    "nix-collect-garbage"))]


def unit_show(unit_id: str, *aliases: str) -> str:
    return (f"Id={unit_id}\nNames={' '.join((unit_id, *aliases))}\nLoadState=loaded\n"
            "ActiveState=failed\nType=simple\n")


@pytest.fixture
def host(tmp_path: Path) -> ScriptedHost:
    return ScriptedHost(tmp_path)


def incident(store: IncidentStore, unit: str = "app.service") -> int:
    finding = Finding(HOST, "failed_unit", unit, Severity.CRITICAL, f"{unit} failed")
    return store.record_check(HOST, [finding], {"failed_unit"}).opened[0]


def restart_waiting(settings: Settings, store: IncidentStore, host: ScriptedHost
                    ) -> tuple[Executor, int, Action]:
    """An incident about app.service, and the restart proposed for it, waiting for a person."""
    executor = Executor(settings, store, {HOST: host})
    incident_id = incident(store)
    action = asyncio.run(executor.propose(HOST, "restart_unit", {"unit": "app.service"},
                                          incident_id=incident_id))
    return executor, incident_id, action


def history(store: IncidentStore, action_id: int) -> list[tuple[str, str]]:
    return [(e["action"], e["detail"]) for e in store.audit_log(200)
            if e["subject"] == f"action:{action_id}"]


def test_an_approval_cut_off_before_anything_ran_can_be_given_again(quick, store, host) -> None:
    executor = Executor(quick, store, {HOST: host})
    action = asyncio.run(executor.propose(HOST, "vacuum_journal", {"max_size": "500M"}))
    host.hang = True  # the host does not answer: the person presses Ctrl-C meanwhile

    async def approve_then_cancel() -> None:
        approving = asyncio.create_task(executor.approve(action.id, "alice"))
        await until(host.asked.exists)
        assert executor.actions.get(action.id).state == "approved"
        approving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await approving

    asyncio.run(approve_then_cancel())
    again = executor.actions.get(action.id)
    assert again.state == "pending" and again.owner is None
    assert again.expires_at is not None and again.expires_at > time.time() + 3600
    assert any("cut off (cancelled) before anything ran" in detail
               for _, detail in history(store, action.id))
    assert host.commands() == []
    host.hang = False
    done = asyncio.run(executor.approve(action.id, "alice"))
    assert done.state == "succeeded", done
    assert host.commands() == ["journalctl --vacuum-size=500M"]


def test_an_approved_action_can_still_be_rejected_until_it_runs(settings, store, host) -> None:
    executor = Executor(settings.model_copy(update={"autonomy_level": "auto-safe"}), store,
                        {HOST: host})
    action = asyncio.run(executor.propose(HOST, "vacuum_journal", {"max_size": "500M"}))
    assert action.state == "approved"
    assert executor.reject(action.id, "alice", "not now").state == "rejected"
    assert asyncio.run(executor.run(action.id)).state == "rejected"
    assert host.commands() == []


HOLDER = """
import sys, time
from ai_sysadmin.store import ActionStore, Database
actions = ActionStore(Database(sys.argv[1]))
actions.move(int(sys.argv[2]), "approved", "bob", "ok")
actions.claim(int(sys.argv[2]), "executor")
print("claimed", flush=True)
sys.stdin.read()  # "runs" the action until the test closes stdin or kills it
"""


def test_a_starting_daemon_leaves_an_action_to_the_living_approve_that_runs_it(
        settings, store, host) -> None:
    executor, incident_id, action = restart_waiting(settings, store, host)
    assert action.state == "pending"
    approve = subprocess.Popen([sys.executable, "-c", HOLDER, str(store.db.path),
                                str(action.id)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert approve.stdout is not None and approve.stdout.readline() == "claimed\n"
        assert executor.recover() == []  # the daemon starts while `approve` runs it
        assert executor.actions.get(action.id).state == "executing"
    finally:
        approve.kill()
        approve.wait()
    assert executor.recover() == []  # it died while running: failed, never run again
    failed = executor.actions.get(action.id)
    assert failed.state == "failed" and "interrupted" in (failed.result or {})["error"]
    assert store.get(incident_id).state == "open"


def test_approvals_whose_holder_died_wait_for_a_person_or_run_as_the_policy_decided(
        settings, store, host) -> None:
    executor = Executor(settings, store, {HOST: host})
    by_person = asyncio.run(executor.propose(HOST, "vacuum_journal", {"max_size": "500M"}))
    by_policy = asyncio.run(Executor(
        settings.model_copy(update={"autonomy_level": "auto-safe"}), store, {HOST: host}
    ).propose(HOST, "vacuum_journal", {"max_size": "400M"}))
    executor.actions.move(by_person.id, "approved", "alice", "ok")
    assert executor.recover() == []  # held by this process, which lives
    with store.db.transaction() as conn:  # the processes that held them died
        conn.execute("UPDATE actions SET owner='gone 1 1'")
    assert [a.id for a in executor.recover()] == [by_policy.id]
    waiting = executor.actions.get(by_person.id)
    assert waiting.state == "pending" and waiting.expires_at is not None
    assert any("approval by alice ended before anything ran" in detail
               for _, detail in history(store, by_person.id))


def test_an_approval_nobody_gave_in_time_expires_and_frees_its_incident(
        settings, store, host) -> None:
    executor, incident_id, action = restart_waiting(settings, store, host)
    assert store.get(incident_id).state == "awaiting_approval"
    with store.db.transaction() as conn:  # its TTL passed an hour ago
        conn.execute("UPDATE actions SET expires_at=? WHERE id=?", (time.time() - 3600,
                                                                    action.id))
    with pytest.raises(StoreError, match="is expired, not pending"):
        asyncio.run(executor.approve(action.id, "alice"))
    assert host.commands() == []
    assert store.get(incident_id).state == "open"
    assert ("action.expired", "approval TTL passed") in history(store, action.id)


def test_a_fix_the_policy_refuses_on_approval_sends_its_incident_back_to_investigation(
        settings, store, host) -> None:
    incident_id = incident(store)
    executor = Executor(settings, store, {HOST: host})
    action = asyncio.run(executor.propose(HOST, "restart_unit", {"unit": "app.service"},
                                          incident_id=incident_id))
    # meanwhile app.service became another name of the host's sshd
    host.show.write_text(unit_show("sshd.service", "app.service"))
    refused = asyncio.run(Executor(settings.model_copy(update={"autonomy_level": "observe"}),
                                   store, {HOST: host}).approve(action.id, "alice"))
    assert refused.state == "refused"
    assert store.get(incident_id).state == "open"
    other = asyncio.run(executor.propose(HOST, "restart_unit", {"unit": "app.service"},
                                         incident_id=incident_id))
    host.show.write_text(unit_show("app.service") + "SuccessAction=reboot\n")
    refused = asyncio.run(executor.approve(other.id, "alice"))
    assert refused.state == "refused" and host.commands() == []
    assert store.get(incident_id).state == "open"
    assert [i.id for i in store.investigation_due()] == [incident_id]


def test_a_fix_whose_commands_changed_is_shown_again_before_it_runs(quick, store, host) -> None:
    executor = Executor(quick, store, {HOST: host})
    action = asyncio.run(executor.propose(HOST, "restart_unit", {"unit": "app.service"}))
    assert action.plan["commands"] == [["systemctl", "restart", "--", "app.service"]]
    host.show.write_text(unit_show("app2.service", "app.service"))  # now an alias
    again = asyncio.run(executor.approve(action.id, "alice"))
    assert again.state == "pending" and host.commands() == []
    assert "what it would run changed" in again.reason
    assert again.plan["commands"] == [["systemctl", "restart", "--", "app2.service"]]
    lines = asyncio.run(executor.rehearse(action.id)).lines
    assert lines[-1][-1] == "app2.service"
    done = asyncio.run(executor.approve(action.id, "alice"))
    assert done.state in ("succeeded", "failed") and done.started_at is not None
    assert host.commands() == ["systemctl restart -- app2.service"]
    assert ActionStore(store.db).get(action.id).state == done.state


def test_a_run_cut_off_by_an_error_never_leaves_its_action_executing(quick, store, host
                                                                      ) -> None:
    class BrokenCheck:  # the verification's check fails in a way nobody foresaw
        previous = None

        async def check(self, reason: str = "x", afresh=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("collector bug")

    settings = quick.model_copy(update={"autonomy_level": "auto-safe"})
    executor = Executor(settings, store, {HOST: host}, checker_for=lambda h: BrokenCheck())
    action = asyncio.run(executor.propose(HOST, "vacuum_journal", {"max_size": "500M"}))
    with pytest.raises(RuntimeError):
        asyncio.run(executor.run(action.id))
    failed = executor.actions.get(action.id)
    assert failed.state == "failed" and "cut off while running" in failed.result["error"]
    assert host.commands() == ["journalctl --vacuum-size=500M"]  # it ran once, and only once
    # what it ran is on record beside the error
    assert [c["argv"] for c in failed.result["commands"]] == [
        ["journalctl", "--vacuum-size=500M"]]


def test_a_stop_before_the_claim_leaves_the_policys_action_for_the_next_start(
        settings, store, host) -> None:
    executor = Executor(settings.model_copy(update={"autonomy_level": "auto-safe"}), store,
                        {HOST: host})
    action = asyncio.run(executor.propose(HOST, "vacuum_journal", {"max_size": "500M"}))
    host.hang = True  # the daemon is stopped while it asks the host whether it answers

    async def run_then_stop() -> None:
        running = asyncio.create_task(executor.run(action.id))
        await until(host.asked.exists)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    asyncio.run(run_then_stop())
    assert executor.actions.get(action.id).state == "approved" and host.commands() == []


def test_a_fix_refused_just_before_it_runs_frees_its_incident(settings, store, host) -> None:
    executor, incident_id, action = restart_waiting(settings, store, host)
    executor.actions.move(action.id, "approved", "alice", "ok")  # approved, not yet run
    host.show.write_text(unit_show("app.service") + "SuccessAction=reboot\n")
    refused = asyncio.run(executor.run(action.id, by_person=True))
    assert refused.state == "refused" and host.commands() == []
    assert store.get(incident_id).state == "open"
    assert [i.id for i in store.investigation_due()] == [incident_id]


def test_new_commands_shown_again_get_the_whole_time_for_an_answer(quick, store, host) -> None:
    executor = Executor(quick, store, {HOST: host})
    action = asyncio.run(executor.propose(HOST, "restart_unit", {"unit": "app.service"}))
    with store.db.transaction() as conn:  # an hour before it would expire
        conn.execute("UPDATE actions SET expires_at=? WHERE id=?", (time.time() + 3600,
                                                                    action.id))
    host.show.write_text(unit_show("app2.service", "app.service"))
    again = asyncio.run(executor.approve(action.id, "alice"))
    assert again.state == "pending"
    assert again.expires_at > time.time() + quick.safety.approval_ttl_hours * 3600 - 60


def test_a_burst_named_by_a_journal_identifier_never_authorises_an_automatic_restart(
        settings, store, host) -> None:
    # `logger -t app.service` from any user: the burst's source reads like the unit
    from ai_sysadmin.monitor.snapshot import JournalEntry

    spoofed = JournalEntry("s=a;i=1", 0.0, 3, "x", identifier="app.service").source
    assert spoofed == "app.service (syslog identifier)"
    burst = Finding(HOST, "journal_error_burst", spoofed, Severity.WARNING,
                    f"25 journal errors from {spoofed} in 300 s")
    (incident_id,) = store.record_check(HOST, [burst], {"journal_error_burst"}).opened
    executor = Executor(settings.model_copy(update={"autonomy_level": "auto-full"}), store,
                        {HOST: host})
    action = asyncio.run(executor.propose(HOST, "restart_unit", {"unit": "app.service"},
                                          incident_id=incident_id))
    assert action.state == "pending" and "the incident is about" not in action.reason
    assert "no incident names this unit" in action.reason
    failed = incident(store)  # systemd itself says app.service failed: that one may
    auto = asyncio.run(executor.propose(HOST, "restart_unit", {"unit": "app.service"},
                                        incident_id=failed))
    assert auto.state == "approved", auto.reason


def test_a_fix_for_an_incident_that_cleared_while_it_was_investigated_does_not_run(
        quick, store, host) -> None:
    # the unit failed, systemd restarted it by itself, and the next check resolved the
    # incident while the model was still at work; then its restart comes in
    executor = Executor(quick.model_copy(update={"autonomy_level": "auto-safe"}), store,
                        {HOST: host})
    incident_id = incident(store)
    assert store.record_check(HOST, [], {"failed_unit"}).resolved == [incident_id]
    learned: list[Action] = []

    async def learn(action: Action) -> None:
        learned.append(action)

    executor.outcome_listeners.append(learn)
    asyncio.run(executor.decide_and_act(incident_id, HOST, [
        {"kind": "restart_unit", "parameters": {"unit": "app.service"}}]))
    [action] = executor.actions.find(("not_needed",))
    assert action.incident_id == incident_id and host.commands() == []
    assert history(store, action.id)[-1][1].endswith(
        f"incident {incident_id} is resolved: no longer needed, not run")
    assert learned == [] and store.get(incident_id).state == "resolved"
    # while the incident is live the same fix runs
    live = incident(store, "other.service")
    host.show.write_text(unit_show("other.service"))
    asyncio.run(executor.decide_and_act(live, HOST, [
        {"kind": "restart_unit", "parameters": {"unit": "other.service"}}]))
    assert host.commands() == ["systemctl restart -- other.service"]


def test_a_stop_while_a_fix_is_verified_keeps_what_ran_and_leaves_the_verdict_to_the_checks(
        settings, store, host) -> None:
    # the daemon is stopped (an upgrade) seconds after the restart ran, while it waits to see
    # the unit stay up: that is no failure of the fix for a person to chase
    slow = settings.model_copy(update={"autonomy_level": "auto-safe", "safety":
                                       settings.safety.model_copy(update={
                                           "verify_settle_seconds": 30, "verify_timeout": 60})})
    executor = Executor(slow, store, {HOST: host})
    incident_id = incident(store)
    action = asyncio.run(executor.propose(HOST, "restart_unit", {"unit": "app.service"},
                                          incident_id=incident_id))
    assert action.state == "approved"

    async def run_then_stop() -> None:
        running = asyncio.create_task(executor.run(action.id))
        await until(lambda: host.commands() == ["systemctl restart -- app.service"])
        await until(lambda: executor.actions.get(action.id).result is not None)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    asyncio.run(run_then_stop())
    ended = executor.actions.get(action.id)
    assert ended.state == "failed" and host.commands() == ["systemctl restart -- app.service"]
    assert ended.result is not None
    assert [c["argv"] for c in ended.result["commands"]] == [
        ["systemctl", "restart", "--", "app.service"]]
    assert ended.result["verification"] == "cut off (cancelled)"
    said = dict(history(store, action.id))
    assert said["action.failed"].startswith("its commands ran; the verification was cut off")
    assert "escalated" not in said
    # the checks decide: a cut-off verification neither escalates the incident nor holds it,
    # and nobody is paged "fix failed" for a fix that may well have held
    assert store.get(incident_id).state == "open"
    assert told(store) == ["opened"]
    assert store.needing_person([incident_id]) == set()  # the checks' still


def told(store: IncidentStore) -> list[str]:
    return [kind for (kind,) in store.db.conn.execute(
        "SELECT kind FROM notify_events ORDER BY id")]


def cut_off_while_verified(settings: Settings, store: IncidentStore,
                           host: ScriptedHost) -> tuple[int, Action]:
    """An incident whose restart ran, its verification cut off by a stop."""
    executor = Executor(settings.model_copy(update={"autonomy_level": "auto-safe"}), store,
                        {HOST: host})
    incident_id = incident(store)
    action = asyncio.run(executor.propose(HOST, "restart_unit", {"unit": "app.service"},
                                          incident_id=incident_id))

    async def run_then_stop() -> None:
        running = asyncio.create_task(executor.run(action.id))
        await until(lambda: executor.actions.get(action.id).result is not None)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    asyncio.run(run_then_stop())
    assert store.get(incident_id).state == "open"
    return incident_id, executor.actions.get(action.id)


def slow(settings: Settings) -> Settings:
    return settings.model_copy(update={"safety": settings.safety.model_copy(update={
        "verify_settle_seconds": 30, "verify_timeout": 60})})


def test_the_check_after_a_cut_off_verification_that_still_finds_it_tells_the_fix_failed_once(
        settings, store, host) -> None:
    incident_id, action = cut_off_while_verified(slow(settings), store, host)
    finding = Finding(HOST, "failed_unit", "app.service", Severity.CRITICAL, "app.service failed")
    # a check that could not judge the rule tells nothing
    store.record_check(HOST, [], set())
    assert told(store) == ["opened"]
    store.record_check(HOST, [finding], {"failed_unit"})
    assert told(store) == ["opened", "failed"]
    (facts,) = [json.loads(f) for (f,) in store.db.conn.execute(
        "SELECT facts FROM notify_events WHERE kind='failed'")]
    assert facts["action"]["id"] == action.id and "did not hold" in facts["detail"]
    assert store.needing_person([incident_id]) == {incident_id}
    # `approve show` no longer says the next checks tell: one did; and it is learned
    ended = ActionStore(store.db).get(action.id)
    assert ended.state == "failed" and "did not hold" in ended.reason, ended.reason
    assert "did not hold" in (store.last_said(f"action:{action.id}") or "")
    assert ActionStore(store.db).lessons_due() == [action.id]
    # its commands ran (a fix that never reached its host teaches nothing): learned so
    learned = lesson(store.get(incident_id), ended)
    assert learned is not None and learned.record.outcome == "failed"
    # told once: the checks after it say nothing more
    store.record_check(HOST, [finding], {"failed_unit"})
    store.record_check(HOST, [finding], {"failed_unit"})
    assert told(store) == ["opened", "failed"]
    assert [e.kind for e in store.get(incident_id, history=None).events].count("escalated") == 1


def test_a_cut_off_verification_whose_fix_held_is_told_fixed_by_the_next_check(
        settings, store, host) -> None:
    incident_id, action = cut_off_while_verified(slow(settings), store, host)
    store.record_check(HOST, [], {"failed_unit"})
    assert store.get(incident_id).state == "resolved"
    assert told(store) == ["opened", "fixed"]
    (facts,) = [json.loads(f) for (f,) in store.db.conn.execute(
        "SELECT facts FROM notify_events WHERE kind='fixed'")]
    assert facts["action"]["id"] == action.id and "it held" in facts["detail"]
    # `approve list --all`/`show` say it succeeded (they said "failed ... the next checks
    # tell" after the person was told it was fixed), and it is learned as a fix that worked
    ended = ActionStore(store.db).get(action.id)
    assert ended.state == "succeeded" and "it held" in ended.reason, ended.reason
    assert "it held" in (store.last_said(f"action:{action.id}") or "")
    assert ActionStore(store.db).lessons_due() == [action.id]
    learned = lesson(store.get(incident_id), ended)
    assert learned is not None and learned.record.outcome == "verified"
    # back later: a new episode, investigated anew; the old fix is no news of it
    finding = Finding(HOST, "failed_unit", "app.service", Severity.CRITICAL, "app.service failed")
    store.record_check(HOST, [finding], {"failed_unit"})
    store.record_check(HOST, [finding], {"failed_unit"})
    assert store.get(incident_id).state == "reopened"
    assert told(store) == ["opened", "fixed", "opened"]
    assert store.needing_person([incident_id]) == set()


def test_an_os_specific_fix_approved_by_a_fresh_approve_runs(quick, store, host) -> None:
    """`approve` is a process of its own, whose checkers have seen no check yet: the OS a fix
    depends on is read from the host, not taken from a check that never ran there."""
    action = asyncio.run(Executor(quick, store, {HOST: host}).propose(
        HOST, "update_packages", {}))
    assert action.state == "pending" and action.plan["commands"] == [["apt-get", "-y", "upgrade"]]
    done = asyncio.run(Executor(quick, store, {HOST: host}).approve(action.id, "alice"))
    assert done.state == "succeeded", done.reason
    assert host.commands() == ["apt-get -y upgrade"]


AMAZON_LINUX_2 = 'NAME="Amazon Linux"\nID="amzn"\nID_LIKE="centos rhel fedora"\nVERSION_ID="2"\n'


def test_an_update_on_a_host_without_a_package_manager_is_refused_before_anyone_approves(
        quick, store, host, tmp_path) -> None:
    """A RHEL-like host was given dnf by its family, which a person approved and which then
    failed to start: which package manager a host has is looked for on it, where
    ``programs.*`` says."""
    host.os_release, host.path = AMAZON_LINUX_2, str(tmp_path)  # a PATH with none of them
    action = asyncio.run(Executor(quick, store, {HOST: host}).propose(
        HOST, "update_packages", {}))
    assert action.state == "refused", action.reason
    assert ("no package update command is known for amzn: the host has none of the package "
            "managers known here (nixos-rebuild, apt-get, pacman, dnf, yum, rpm-ostree, zypper, "
            "transactional-update)"
            in action.reason)
    assert host.commands() == []
    # a Debian host whose apt-get is off its PATH, where programs.apt_get names it
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        pytest.skip("this machine has no apt-get")
    host.os_release = 'ID=debian\nVERSION_ID="12"\n'
    settings = quick.model_copy(update={"programs": quick.programs.model_copy(
        update={"apt_get": apt_get})})
    executor = Executor(settings, store, {HOST: host})
    action = asyncio.run(executor.propose(HOST, "update_packages", {}))
    assert action.state == "pending" and action.plan["commands"] == [["apt-get", "-y", "upgrade"]]
    assert executor.command_lines(action)[0][-3:] == [apt_get, "-y", "upgrade"]


def test_a_fix_whose_os_cannot_be_read_waits_for_a_person_and_runs_once_it_can(
        quick, store, host) -> None:
    host.os_release = None
    executor = Executor(quick.model_copy(update={"autonomy_level": "auto-full"}), store,
                        {HOST: host})
    # the daemon, before any check: not refused for good, a person's decision
    action = asyncio.run(executor.propose(HOST, "nix_gc", {"older_than": "30d"}))
    assert action.state == "pending", action.reason
    assert "connection reset" in action.reason
    # a person approves while the host still cannot say: nothing runs, approvable again
    seen = asyncio.run(executor.rehearse(action.id))
    assert seen.waits_again and "connection reset" in (seen.would_not or "")
    waiting = asyncio.run(executor.approve(action.id, "alice"))
    assert waiting.state == "pending" and "it can be approved again" in waiting.reason
    assert host.commands() == []
    # it answers, and is a NixOS host: the commands are shown as they are now, then run
    host.os_release = "ID=nixos\n"
    shown = asyncio.run(executor.approve(action.id, "alice"))
    assert shown.state == "pending" and shown.plan["commands"] == [
        ["nix-collect-garbage", "--delete-older-than", "30d"]]
    assert asyncio.run(executor.approve(action.id, "alice")).state == "succeeded"
    assert host.commands() == ["nix-collect-garbage --delete-older-than 30d"]
    # on a host that answers it is not NixOS: refused, and it says what the host is
    host.os_release = "ID=debian\n"
    refused = asyncio.run(executor.propose(HOST, "nix_gc", {"older_than": "30d"}))
    assert refused.state == "refused" and "this host is debian" in refused.reason


def test_a_short_nix_gc_waits_for_a_person_where_a_long_one_runs(quick, store, host) -> None:
    host.os_release = "ID=nixos\n"
    executor = Executor(quick.model_copy(update={"autonomy_level": "auto-safe"}), store,
                        {HOST: host})
    short = asyncio.run(executor.propose(HOST, "nix_gc", {"older_than": "1d"}))
    assert (short.state, short.risk) == ("pending", "high")
    assert "only the generations of the last 1d are left to roll back to" in short.reason
    long = asyncio.run(executor.propose(HOST, "nix_gc", {"older_than": "14d"}))
    assert (long.state, long.risk) == ("approved", "low")


def test_a_fix_that_ran_too_often_is_escalated_and_its_dry_run_says_so(quick, store, host
                                                                       ) -> None:
    executor = Executor(quick, store, {HOST: host})
    for size in ("500M", "400M", "300M"):  # as often as flapping_max allows in the window
        ran = asyncio.run(executor.propose(HOST, "vacuum_journal", {"max_size": size}))
        assert asyncio.run(executor.approve(ran.id, "alice")).state == "succeeded"
    waiting = asyncio.run(executor.propose(HOST, "vacuum_journal", {"max_size": "200M"}))

    seen = asyncio.run(executor.rehearse(waiting.id))
    assert seen.lines == [] and not seen.waits_again
    assert "already ran 3 times" in (seen.would_not or "") and "escalated" in seen.would_not

    done = asyncio.run(executor.approve(waiting.id, "alice"))
    assert done.state == "escalated" and "already ran 3 times" in done.reason
    escalated = [detail for what, detail in history(store, waiting.id) if what == "escalated"]
    assert len(escalated) == 1 and "already ran 3 times" in escalated[0]
    assert len(host.commands()) == 3


class SudoHost(ScriptedHost):
    """This host, where the configured sudo really runs (whatever it is given)."""

    def __init__(self, tmp: Path, sudo: str) -> None:
        super().__init__(tmp)
        self.sudo = sudo

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        return argv if argv[0] == self.sudo else super().wrap(argv)


def test_a_fix_sudo_would_not_run_here_is_not_claimed_and_can_be_approved_again(
        quick, store, tmp_path, monkeypatch) -> None:
    """A daemon (or `approve`) that is not root runs this host's fixes as `sudo -n -- ARGV`:
    sudo is asked first (`sudo -n -l -- ARGV` runs nothing), so a sudo that is missing or has
    no rule for the fix costs the at-most-once action nothing."""
    # as sudo -l says no to a command no rule allows: by its exit alone
    refusing = tmp_path / "sudo"
    refusing.write_text('#!/bin/sh\necho "$*" >> "$0.asked"\nexit 1\n')
    refusing.chmod(0o755)
    monkeypatch.setattr("ai_sysadmin.executor.executor.os.geteuid", lambda: 1000)
    for sudo, said in (("/nonexistent/sudo", "cannot start"),
                       (str(refusing), "(exit 1: no sudo rule of this user allows it)")):
        settings = quick.model_copy(update={"safety": quick.safety.model_copy(
            update={"sudo": sudo})})
        host = SudoHost(tmp_path, sudo)
        executor = Executor(settings, store, {HOST: host})
        action = asyncio.run(executor.propose(HOST, "vacuum_journal", {"max_size": "500M"}))
        seen = asyncio.run(executor.rehearse(action.id))
        assert seen.waits_again and said in (seen.would_not or "")
        done = asyncio.run(executor.approve(action.id, "alice"))
        assert done.state == "pending" and done.result is None, done.reason
        assert said in done.reason and "it can be approved again" in done.reason
        assert "action.executing" not in [what for what, _ in history(store, action.id)]
    # asked with -l, for exactly the line the fix would run
    asked = (tmp_path / "sudo.asked").read_text().splitlines()
    assert asked and all(line == "-n -l -- journalctl --vacuum-size=500M" for line in asked)


def test_a_fix_sudo_wants_a_password_for_is_refused_by_sudo_and_can_be_approved_again(
        quick, store, tmp_path, monkeypatch) -> None:
    """`sudo -n -l` wants a password to answer at all where sudoers' listpw says so (with
    `listpw=always`, even for what a NOPASSWD rule lets run): its "a password is required"
    says nothing of the fix, and the run is tried. A sudo that wants one for the run too
    refuses `sudo -n` before it runs anything: the fix was claimed, yet nothing of it ran,
    and it waits for a person again (not failed), approvable again."""
    wants_password = tmp_path / "sudo"
    wants_password.write_text('#!/bin/sh\necho "$*" >> "$0.asked"\n'
                              'echo "sudo: unable to resolve host testhost: Name or service '
                              'not known" >&2\necho "sudo: a password is required" >&2; exit 1\n')
    wants_password.chmod(0o755)
    monkeypatch.setattr("ai_sysadmin.executor.executor.os.geteuid", lambda: 1000)
    settings = quick.model_copy(update={"safety": quick.safety.model_copy(
        update={"sudo": str(wants_password)})})
    executor = Executor(settings, store, {HOST: SudoHost(tmp_path, str(wants_password))})
    action = asyncio.run(executor.propose(HOST, "vacuum_journal", {"max_size": "500M"}))
    for _ in range(2):
        done = asyncio.run(executor.approve(action.id, "alice"))
        assert done.state == "pending" and done.result is None, done.reason
        assert done.started_at is None and done.expires_at is not None
        assert done.reason == (
            "needs a person: not run, nothing ran: journalctl --vacuum-size=500M: sudo on "
            "testhost needs a password: `sudo -n` failed: a password is required; it can be "
            "approved again")
    moves = [what for what, _ in history(store, action.id)]
    assert moves[-3:] == ["action.approved", "action.executing", "action.pending"]
    # asked first, then the run sudo refused: nothing ran, nothing was asked of it again
    asked = (tmp_path / "sudo.asked").read_text().splitlines()
    assert asked == ["-n -l -- journalctl --vacuum-size=500M",
                     "-n -- journalctl --vacuum-size=500M"] * 2
    # no attempt counts toward the flapping limit: each approval runs it again
    assert executor.actions.recent_attempts(HOST, "vacuum_journal", action.subject,
                                            0, time.time() + 60) == 0


def test_an_approval_asked_before_the_clock_was_set_back_still_expires_after_its_ttl(
        settings, store, host, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's clock ran a year ahead when it asked for the approval (stepped here, as
    libfaketime would); NTP sets it right. Nobody answers: the approval ends a TTL later on
    the clock as it is now, and the incident is open again, where it waited a year."""
    real = time.time
    with monkeypatch.context() as ahead:
        ahead.setattr(time, "time", lambda: real() + 365 * 86400)
        executor, incident_id, action = restart_waiting(settings, store, host)
    ttl = settings.safety.approval_ttl_hours * 3600
    assert executor.expire() == []  # the daemon's housekeeping, right after the step
    waiting = executor.actions.get(action.id)
    assert waiting.state == "pending" and waiting.expires_at is not None
    assert waiting.expires_at <= real() + ttl
    monkeypatch.setattr(time, "time", lambda: real() + ttl + 60)  # a TTL on, unanswered
    assert [a.id for a in executor.expire()] == [action.id]
    assert store.get(incident_id).state == "open"
    assert ("action.expired", "approval TTL passed") in history(store, action.id)


def test_an_incident_left_remediating_after_its_fix_failed_waits_for_a_person_at_the_next_check(
        settings, store, host) -> None:
    """The fix's end is written, and the write that moves its incident back after it is
    refused (a disk that filled in between): the incident was left remediating for good,
    neither shown as waiting for a person nor ever investigated again while its finding
    stayed. The next check that still finds it moves it back, as the fix's end would have."""
    executor, incident_id, action = restart_waiting(settings, store, host)
    actions = ActionStore(store.db)
    actions.move(action.id, "approved", "alice", "go")
    assert actions.claim(action.id, "executor") is not None
    store.transition(incident_id, "remediating", "executor", f"running action {action.id}")
    actions.move(action.id, "failed", "executor", "exit status 1", {"error": "exit status 1"})
    assert store.get(incident_id).state == "remediating"  # the move back, refused

    finding = Finding(HOST, "failed_unit", "app.service", Severity.CRITICAL, "app.service failed")
    store.record_check(HOST, [finding], {"failed_unit"})
    assert store.get(incident_id).state == "open"
    assert store.needing_person([incident_id]) == {incident_id}
    moved = [e for e in store.get(incident_id, history=None).events if e.to_state == "open"]
    assert f"action {action.id} failed" in moved[-1].detail


def test_an_incident_left_remediating_while_its_fix_runs_stays_so(settings, store, host) -> None:
    """Its fix still running (or verifying), a check that finds the finding leaves the
    incident to the fix."""
    executor, incident_id, action = restart_waiting(settings, store, host)
    actions = ActionStore(store.db)
    actions.move(action.id, "approved", "alice", "go")
    assert actions.claim(action.id, "executor") is not None
    store.transition(incident_id, "remediating", "executor", f"running action {action.id}")
    finding = Finding(HOST, "failed_unit", "app.service", Severity.CRITICAL, "app.service failed")
    store.record_check(HOST, [finding], {"failed_unit"})
    assert store.get(incident_id).state == "remediating"
