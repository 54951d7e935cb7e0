"""Two people answer one action at the same moment, from two terminals: real ``approve``
processes on one state directory, held at a barrier (the host's ``systemctl show``, which
every approval asks once it has found the action waiting) until both are past their first
look at it. The fix runs at most once, and each person is told what happened to their answer:
the one who came second learns who decided first, and when."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.store import Action, ActionStore, IncidentStore
from tests.conftest import BIN
from tests.support.polling import poll_until
from tests.support.scripted_model import JSON, ScriptedModel, Step, http_error, say

MODEL_ENV = {"AI_SYSADMIN_LLM__BACKEND": "openai", "AI_SYSADMIN_LLM__MODEL": "scripted",
             "AI_SYSADMIN_LLM__TIMEOUT": "10", "AI_SYSADMIN_QUEUE__WAIT_TIMEOUT": "30"}

#: systemctl on the test's host: ``show`` says it was asked, waits for the test's ``go`` (a
#: deadline, not a pause: the test writes it as soon as everyone is there) and describes a
#: failed app.service; ``restart`` waits for ``go-restart`` where that is asked for;
#: whatever is asked is noted in ``ran``
SYSTEMCTL = """#!/bin/sh
here={here}
case "$1" in
show)
  : > "$here/arrived.$$"
  n=0
  until [ -e "$here/go" ]; do n=$((n+1)); [ "$n" -gt 2400 ] && exit 3; sleep 0.05; done
  cat "$here/show";;
restart)
  printf '%s\\n' "$*" >> "$here/ran"
  : > "$here/restarting"
  n=0
  while [ -e "$here/hold-restart" ]; do n=$((n+1)); [ "$n" -gt 2400 ] && exit 3; sleep 0.05; done;;
*) printf '%s\\n' "$*" >> "$here/asked";;
esac
"""

SHOW = "Id=app.service\nNames=app.service\nLoadState=loaded\nActiveState=failed\nType=simple\n"


class Host:
    """This machine as the test's host: its systemctl is :data:`SYSTEMCTL`."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir()
        self.systemctl = directory / "systemctl"
        self.systemctl.write_text(SYSTEMCTL.format(here=directory))
        self.systemctl.chmod(0o755)
        (directory / "show").write_text(SHOW)
        self.go = directory / "go"

    def arrived(self) -> int:
        return len(list(self.dir.glob("arrived.*")))

    def restarts(self) -> list[str]:
        ran = self.dir / "ran"
        return ran.read_text().splitlines() if ran.exists() else []

    def hold(self) -> None:
        """Everyone who asks ``show`` from now on waits for :meth:`release`."""
        self.go.unlink(missing_ok=True)
        for arrived in self.dir.glob("arrived.*"):
            arrived.unlink()

    def release(self) -> None:
        self.go.write_text("")


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path / "host")


@pytest.fixture
def people_settings(config_file: Callable[[str], Path], settings: Settings, host: Host
                    ) -> Settings:
    """What every process here reads: the config file the ``approve`` commands are given."""
    config_file(f'ai_name = "hal"\n[programs]\nsystemctl = "{host.systemctl}"\n'
                "[safety]\nverify_settle_seconds = 0\nverify_timeout = 1\n")
    return settings.model_copy(update={
        "programs": settings.programs.model_copy(update={"systemctl": str(host.systemctl)}),
        "safety": settings.safety.model_copy(update={"verify_settle_seconds": 0,
                                                     "verify_timeout": 1})})


def waiting(settings: Settings, store: IncidentStore, host: Host) -> Action:
    """A restart of app.service on this machine, waiting for a person."""
    host.release()
    here = short_hostname()
    action = asyncio.run(Executor(settings, store, {here: LocalTransport(here)}).propose(
        here, "restart_unit", {"unit": "app.service"}))
    assert action.state == "pending", action
    host.hold()
    return action


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN), "approve", *args], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(*processes: subprocess.Popen[str]) -> list[tuple[int, str, str]]:
    done = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        done.append((process.returncode, out, err))
    return done


def at(ts: float | None) -> str:
    assert ts is not None
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def test_the_same_approval_from_two_terminals_runs_once_and_tells_the_second_who_was_first(
        people_settings: Settings, store: IncidentStore, host: Host) -> None:
    action = waiting(people_settings, store, host)
    first, second = start("approve", str(action.id)), start("approve", str(action.id))
    try:
        poll_until(lambda: host.arrived() >= 2, what="both approvals to look at the host")
    finally:
        host.release()
    answers = finish(first, second)
    assert host.restarts() == ["restart -- app.service"]  # at most once
    done = ActionStore(store.db).get(action.id)
    # it ran (its verification fails here: this machine's systemctl lists no units)
    assert done.state in ("succeeded", "failed") and done.decided_by is not None
    # the one who ran it is shown the action (its verification fails here: exit 1)
    ran = [a for a in answers if f"action {action.id} restart_unit" in a[1]]
    late = [a for a in answers if a not in ran]
    assert len(ran) == 1 and len(late) == 1, answers
    code, _, err = late[0]
    assert code == 1  # final for this yes: not the 2 of one that waits for approval again
    said = " ".join(err.split())
    assert f"error: action {action.id} is " in said, err
    assert f", not pending: approved by {done.decided_by} at {at(done.decided_at)}" in said, err


def test_a_reject_while_another_terminal_approves_stands_and_the_approval_says_whose_it_is(
        people_settings: Settings, store: IncidentStore, host: Host) -> None:
    action = waiting(people_settings, store, host)
    approving = start("approve", str(action.id))
    try:
        poll_until(lambda: host.arrived() >= 1, what="the approval to look at the host")
        code, out, err = finish(start("reject", str(action.id), "--reason",
                                      "not during the sale"))[0]
        assert code == 0 and out == f"action {action.id} rejected\n", err
    finally:
        host.release()
    [(code, _, err)] = finish(approving)
    assert host.restarts() == []
    rejected = ActionStore(store.db).get(action.id)
    assert rejected.state == "rejected"
    assert code == 1 and " ".join(err.split()) == (
        f"error: action {action.id} is rejected, not pending: rejected by "
        f"{rejected.decided_by} at {at(rejected.decided_at)} (not during the sale)"), err


def test_a_reject_once_another_terminals_approval_runs_it_says_it_is_too_late_and_why(
        people_settings: Settings, store: IncidentStore, host: Host) -> None:
    action = waiting(people_settings, store, host)
    host.release()
    holding = host.dir / "hold-restart"
    holding.write_text("")
    approving = start("approve", str(action.id))
    try:
        poll_until((host.dir / "restarting").exists, what="the fix to start")
        code, _, err = finish(start("reject", str(action.id)))[0]
    finally:
        holding.unlink()
    finish(approving)
    assert host.restarts() == ["restart -- app.service"]
    ran = ActionStore(store.db).get(action.id)
    assert ran.state in ("succeeded", "failed") and ran.decided_at is not None
    assert code == 1 and " ".join(err.split()) == (
        f"error: action {action.id} is executing, too late to reject: approved by "
        f"{ran.decided_by} at {at(ran.decided_at)}, running since {at(ran.started_at)}"), err


def test_an_approval_given_as_its_time_runs_out_is_refused_saying_it_expired(
        people_settings: Settings, store: IncidentStore, host: Host) -> None:
    """The person said yes in time, but its time ran out while the host was asked, and the
    daemon (here a `list` from another terminal, which settles the same) expired it."""
    action = waiting(people_settings, store, host)
    approving = start("approve", str(action.id))
    try:
        poll_until(lambda: host.arrived() >= 1, what="the approval to look at the host")
        with store.db.transaction() as conn:
            conn.execute("UPDATE actions SET expires_at=? WHERE id=?",
                         (time.time() - 1, action.id))
        assert finish(start("list"))[0][0] == 0
        assert ActionStore(store.db).get(action.id).state == "expired"
    finally:
        host.release()
    [(code, _, err)] = finish(approving)
    assert host.restarts() == []
    assert code == 1 and " ".join(err.split()) == (
        f"error: action {action.id} is expired, not pending: approval TTL passed"), err


@dataclasses.dataclass
class _Discussed:
    """An ``approve discuss`` of a pending fix that another terminal rejected after the
    first question (:func:`_discuss_while_rejected`)."""

    action: Action
    code: int
    out: str
    err: str
    requests: list[JSON]


def _discuss_while_rejected(settings: Settings, store: IncidentStore, steps: list[Step],
                            then: str, *reason: str) -> _Discussed:
    """Discuss a pending journal vacuum: "what does it do?", answered by the first of
    ``steps``; another terminal rejects it (``--reason``, if given); then ``then``'s lines."""
    here = short_hostname()
    action = asyncio.run(Executor(settings, store, {here: LocalTransport(here)}).propose(
        here, "vacuum_journal", {"max_size": "500M"}))
    with ScriptedModel(steps) as model:
        discussing = subprocess.Popen(
            [str(BIN), "approve", "discuss", str(action.id)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **MODEL_ENV, "AI_SYSADMIN_LLM__URL": model.url})
        assert discussing.stdin is not None
        try:
            discussing.stdin.write("what does it do?\n")
            discussing.stdin.flush()
            poll_until(lambda: len(model.requests) == 1, what="the first question")
            rejecting = ["reject", str(action.id)] + (["--reason", *reason] if reason else [])
            code, _, err = finish(start(*rejecting))[0]
            assert code == 0, err
            out, err = discussing.communicate(then, timeout=120)
        finally:
            if discussing.poll() is None:
                discussing.kill()
                discussing.communicate()
    return _Discussed(ActionStore(store.db).get(action.id), discussing.returncode, out, err,
                      model.requests)


def _news(action: Action) -> str:
    return (f"action {action.id} is rejected: rejected by {action.decided_by} at "
            f"{at(action.decided_at)} (disk is fine)")


def test_a_discussion_hears_that_another_terminal_decided_the_action_meanwhile(
        settings: Settings, store: IncidentStore) -> None:
    """One person discusses a fix while another rejects it: the next answer is about the
    action as it is now, not the "pending" the discussion began with."""
    done = _discuss_while_rejected(
        settings, store, [say("It frees journal space; approve it when you are ready."),
                          say("It was rejected, so nothing will run.")],
        "should I approve it now?\n", "disk is fine")
    assert done.code == 0, done.err
    news = _news(done.action)
    assert f"note: since the last answer {news}" in " ".join(done.out.split()), done.out
    [first, second] = done.requests
    assert not any(news in str(m.get("content")) for m in first["messages"])
    asked = second["messages"][-1]
    assert asked["role"] == "user" and news in asked["content"], asked
    assert asked["content"].endswith("should I approve it now?")


def test_news_of_the_action_a_failed_turn_never_delivered_goes_with_the_next_question(
        settings: Settings, store: IncidentStore) -> None:
    """The action is rejected from another terminal; the next question's LLM call fails
    (HTTP 500), so the model never read the news: the question after it carries it."""
    done = _discuss_while_rejected(
        settings, store, [say("It frees journal space; approve it when you are ready."),
                          http_error(500, '{"error": "model crashed"}'),
                          say("It was rejected, so nothing will run.")],
        "should I approve it now?\nso, approve it?\n", "disk is fine")
    assert done.code == 2, done.err  # one question got no answer
    assert "answered HTTP 500" in done.err, done.err
    news = _news(done.action)
    # the person is told once, before the question that failed
    assert " ".join(done.out.split()).count(f"note: since the last answer {news}") == 1, done.out
    assert "It was rejected, so nothing will run." in done.out
    [_, failed, answered] = done.requests
    assert news in failed["messages"][-1]["content"]
    asked = answered["messages"][-1]
    assert asked["role"] == "user" and news in asked["content"], asked
    assert asked["content"].endswith("so, approve it?")
    # the failed question is not in the conversation: the roles still alternate
    assert [m["role"] for m in answered["messages"][1:]] == ["user", "assistant", "user",
                                                             "assistant", "user"]


def test_a_cleared_discussion_hears_again_what_became_of_the_action(
        settings: Settings, store: IncidentStore) -> None:
    """/clear takes the conversation back to its opening, which says the action is pending:
    the next question tells the model again that it was rejected (the person was told)."""
    done = _discuss_while_rejected(
        settings, store, [say("It frees journal space."), say("It was rejected."),
                          say("Still rejected.")], "what now?\n/clear\nand now?\n")
    assert done.code == 0, done.err
    assert " ".join(done.out.split()).count("note: since the last answer") == 1, done.out
    for request, question in zip(done.requests[1:], ["what now?", "and now?"], strict=True):
        asked = request["messages"][-1]["content"]
        assert f"action {done.action.id} is rejected" in asked and asked.endswith(question), \
            asked


def _asked_once_while_rejected(settings: Settings, store: IncidentStore, *reject: str
                               ) -> tuple[int, subprocess.CompletedProcess[str]]:
    """`approve discuss N -m QUESTION` of a new action, which another terminal rejects (with
    ``reject``'s options) while the model writes its answer: the action and the run."""
    here = short_hostname()
    action = asyncio.run(Executor(settings, store, {here: LocalTransport(here)}).propose(
        here, "vacuum_journal", {"max_size": "500M"}))

    def rejected_meanwhile(_: JSON) -> Step:
        assert finish(start("reject", str(action.id), *reject))[0][0] == 0
        return say("It is waiting for your approval.")

    with ScriptedModel([rejected_meanwhile]) as model:
        done = subprocess.run(
            [str(BIN), "approve", "discuss", str(action.id), "-m", "is it still waiting?"],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, **MODEL_ENV, "AI_SYSADMIN_LLM__URL": model.url})
    return action.id, done


def test_one_question_about_an_action_rejected_while_the_model_answered_says_so(
        settings: Settings, store: IncidentStore) -> None:
    action_id, done = _asked_once_while_rejected(settings, store)
    assert done.returncode == 0, done.stderr
    assert "It is waiting for your approval." in done.stdout
    rejected = ActionStore(store.db).get(action_id)
    assert " ".join(done.stderr.split()).endswith(
        f"note: meanwhile action {action_id} is rejected: rejected by {rejected.decided_by} "
        f"at {at(rejected.decided_at)}; the answer above is about it as it was"), done.stderr


#: a reject's reason as another operator typed it: a window title and a cleared screen pasted
#: with it, and a password
TYPED_REASON = "\x1b]0;PWNED\x07\x1b[2Jdisk is fine, password=hunter2 db"


def test_a_reject_reason_from_another_terminal_reaches_the_discussion_masked(
        settings: Settings, store: IncidentStore) -> None:
    """`approve show` masks a decision's reason; the discussion's note of it showed it raw:
    the other operator's escapes obeyed by this terminal, their password on this screen."""
    done = _discuss_while_rejected(
        settings, store, [say("It frees journal space."), say("It was rejected.")],
        "and now?\n", TYPED_REASON)
    assert done.code == 0, done.err
    note = next(line for line in done.out.splitlines() if "since the last answer" in line)
    assert note.endswith("(disk is fine, password=[redacted] db)"), note
    assert "hunter2" not in done.out + done.err and "\x1b" not in done.out + done.err
    # the model is told the same, masked
    assert "hunter2" not in json.dumps(done.requests[-1])


def test_a_reject_reason_given_while_the_model_answered_one_question_is_masked(
        settings: Settings, store: IncidentStore) -> None:
    _, done = _asked_once_while_rejected(settings, store, "--reason", TYPED_REASON)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())
    assert "(disk is fine, password=[redacted] db); the answer above is about it as it was" \
        in said, done.stderr
    assert "hunter2" not in done.stdout + done.stderr
    assert "\x1b" not in done.stdout + done.stderr


#: the daemon's run of an action the policy approved, as a process of its own: its fixes'
#: journalctl is the test's
RUNNER = """
import asyncio, sys
from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.store import Database, IncidentStore
state, journalctl, action = sys.argv[1:]
settings = Settings(ai_name="hal", state_dir=state, autonomy_level="auto-safe",
                    programs={"journalctl": journalctl},
                    safety={"verify_settle_seconds": 0, "verify_timeout": 1})
here = short_hostname()
executor = Executor(settings, IncidentStore(Database(settings.db_path)),
                    {here: LocalTransport(here)})
print(asyncio.run(executor.run(int(action))).state)
"""

#: journalctl on the test's host: a vacuum says it started and runs until ``hold`` is gone
JOURNALCTL = """#!/bin/sh
: > "{here}/vacuuming"
n=0
while [ -e "{here}/hold" ]; do n=$((n+1)); [ "$n" -gt 2400 ] && exit 3; sleep 0.05; done
"""


def test_a_reject_while_the_daemon_runs_what_the_policy_approved_says_so(
        settings: Settings, store: IncidentStore, tmp_path: Path) -> None:
    journalctl = tmp_path / "journalctl"
    journalctl.write_text(JOURNALCTL.format(here=tmp_path))
    journalctl.chmod(0o755)
    (tmp_path / "hold").write_text("")
    here = short_hostname()
    policy = settings.model_copy(update={"autonomy_level": "auto-safe"})
    action = asyncio.run(Executor(policy, store, {here: LocalTransport(here)}).propose(
        here, "vacuum_journal", {"max_size": "500M"}))
    assert action.state == "approved" and action.decided_by is None
    running = subprocess.Popen([sys.executable, "-c", RUNNER, str(settings.state_dir),
                                str(journalctl), str(action.id)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        poll_until((tmp_path / "vacuuming").exists, what="the fix to start")
        code, _, err = finish(start("reject", str(action.id)))[0]
    finally:
        (tmp_path / "hold").unlink()
        finish(running)
    ran = ActionStore(store.db).get(action.id)
    assert code == 1 and " ".join(err.split()) == (
        f"error: action {action.id} is executing, too late to reject: approved by the policy "
        f"at {at(ran.created_at)}, running since {at(ran.started_at)}"), err
