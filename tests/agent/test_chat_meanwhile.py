"""``chat``, ``ask`` and ``approve discuss`` when things change or fail around them: a turn
that failed, hosts removed and added while a chat stays open, a queue busy with the daemon's
work, a host the action discussed is no longer on, a closed stderr. Against the scripted
model over real HTTP, as a user runs them."""

from __future__ import annotations

import asyncio
import os
import pty
import signal
import subprocess
from pathlib import Path

from tests.conftest import BIN
from tests.support.polling import poll_until
from tests.support.scripted_model import (
    JSON,
    Calls,
    Say,
    ScriptedModel,
    call,
    calls,
    delay,
    http_error,
    say,
    tool_results,
)
from tests.support.terminal import Screen


def run(argv: list[str], env: dict[str, str], stdin: str | None = None):
    return subprocess.run([str(BIN), *argv], input=stdin, capture_output=True, text=True,
                          env=env, timeout=60)


def _restart() -> Calls:
    return call("propose_action", kind="restart_unit", parameters={"unit": "nginx.service"},
                rationale="nginx failed")


def test_a_failed_turns_proposal_is_not_one_the_person_has(env) -> None:
    """The turn proposed a fix, then the server failed (HTTP 500): the turn, its question and
    its answer, left the conversation, but the proposal stayed, and the same fix asked for
    on the next question was refused as "already proposed; the person has it already":
    advice nobody saw."""
    with ScriptedModel([_restart(), http_error(500, '{"error": "boom"}'), _restart(),
                        say("proposed")]) as model:
        env["AI_SYSADMIN_LLM__URL"] = model.url
        done = run(["chat"], env, stdin="restart nginx?\nplease, restart nginx?\n")
        sent = model.requests
    assert done.returncode == 2, done.stderr  # the first question got no answer
    assert "HTTP 500" in done.stderr
    assert len(sent) == 4
    again = tool_results(sent[3])[-1]
    assert "status=ok" in again and "recorded" in again, again
    assert [m["content"] for m in sent[3]["messages"] if m["role"] == "user"] == [
        "please, restart nginx?"]


def _systems(env: dict[str, str], *argv: str) -> None:
    done = run(["systems", *argv], env)
    assert done.returncode == 0, done.stderr


def test_a_chat_reaches_the_hosts_managed_now_not_those_at_its_start(env) -> None:
    """A chat stays open for hours: while it was, a host removed was still reached, one
    re-added at another address was reached at its old one (the old machine read under the
    new one's name), and one added was "unknown". Nothing listens on port 1 or 2: each
    connection is refused, naming the address it tried."""
    _systems(env, "add", "--no-probe", "--name", "gone", "root@127.0.0.1:1")
    _systems(env, "add", "--no-probe", "--name", "web1", "root@127.0.0.3:1")

    def meanwhile(request: JSON) -> Say:
        # between the chat's two questions, from another terminal
        _systems(env, "remove", "gone")
        _systems(env, "remove", "web1")
        _systems(env, "add", "--no-probe", "--name", "web1", "root@127.0.0.2:2")
        _systems(env, "add", "--no-probe", "--name", "new", "root@127.0.0.1:2")
        return say("done")

    reads = calls([call("run_readonly", host=host, argv=["uname", "-r"])
                   for host in ("gone", "web1", "new")])
    with ScriptedModel([meanwhile, reads, say("read")]) as model:
        env["AI_SYSADMIN_LLM__URL"] = model.url
        # the model's first answer waits on four `systems` commands: on a loaded suite they
        # took longer than the chat's 10 s for an answer
        env["AI_SYSADMIN_LLM__TIMEOUT"] = "60"
        done = run(["chat"], env, stdin="hello\nwhat kernels?\n")
        sent = model.requests
    assert done.returncode == 0, done.stderr
    gone, web1, new = tool_results(sent[2])[-3:]
    assert "unknown host 'gone'" in gone and "new, vm, web1" in gone, gone
    assert "root@127.0.0.2:2" in web1 and "127.0.0.3" not in web1, web1
    assert "root@127.0.0.1:2" in new and "unknown host" not in new, new


def test_a_removed_hosts_connection_is_let_go_and_a_readded_one_is_fresh(tmp_path) -> None:
    """What a chat's tools hold of a removed host connects no more (a login nobody would
    close); added again, the host gets a transport of its own."""
    from ai_sysadmin.config import Settings
    from ai_sysadmin.orchestrator.runtime import Runtime
    from ai_sysadmin.store import Database, HostStore, IncidentStore

    settings = Settings(ai_name="hal", state_dir=tmp_path / "state")
    store = IncidentStore(Database(settings.db_path))
    hosts = HostStore(store.db)
    hosts.add("web1", target="root@127.0.0.1:1", source="cli")
    runtime = Runtime(settings, store, consumer="cli", actor="test")
    old = runtime.transports["web1"]

    async def turns() -> tuple[dict, dict]:
        hosts.remove("web1")
        removed = await runtime.hosts_now()
        hosts.add("web1", target="root@127.0.0.2:2", source="cli")
        return removed, await runtime.hosts_now()

    removed, readded = asyncio.run(turns())
    assert "web1" not in removed and old._let_go  # type: ignore[attr-defined]
    assert readded["web1"] is not old and readded["web1"].target.port == 2  # type: ignore[attr-defined]


def test_a_question_behind_the_daemons_work_says_it_waits_and_what_is_ahead(env) -> None:
    """The only worker answers another request (an investigation, here another `ask`): a
    chat question waited in silence up to queue.wait_timeout (300 s), then said it had
    "0 request(s) ahead of it". At a terminal it says, after a moment, that it waits and
    that Ctrl-C withdraws it; the timeout counts the request being answered."""
    with ScriptedModel([delay(120, say("slow answer"))], then=say("chat answer")) as model:
        env["AI_SYSADMIN_LLM__URL"] = model.url
        worker = subprocess.Popen([str(BIN), "worker"], env={**env, "AI_SYSADMIN_LLM__TIMEOUT":
                                                              "120"},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        blocker = None
        try:
            poll_until(lambda: run(["queue"], env).stdout.count(": ready") > 0
                       or worker.poll() is not None, 30, "the worker to serve the queue")
            blocker = subprocess.Popen([str(BIN), "ask", "slow one"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            poll_until(lambda: len(model.requests) == 1, 30, "the worker to take the first")
            master, slave = pty.openpty()
            chat = subprocess.Popen(
                [str(BIN), "chat"], env=env, stdin=slave, stdout=slave, stderr=slave,
                start_new_session=True,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
            os.close(slave)
            terminal = Screen(master)
            try:
                terminal.until(b"hal> ")
                os.write(master, b"is the disk full?\n")
                terminal.until(b"waits for the LLM, which is answering 1 other request(s)")
                terminal.until(b"Ctrl-C withdraws it")
                chat.send_signal(signal.SIGINT)
                terminal.until(b"that question was withdrawn")
                terminal.until(b"hal> ")
                os.write(master, b"/exit\n")
                assert chat.wait(timeout=30) == 0, bytes(terminal.seen)
            finally:
                if chat.poll() is None:
                    chat.kill()
                    chat.wait()
                os.close(master)
            timed_out = run(["ask", "and now?"], {**env, "AI_SYSADMIN_QUEUE__WAIT_TIMEOUT": "1"})
        finally:
            model.close()  # the slow answer comes at once
            for process in (blocker, worker):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(timeout=30)
    said = " ".join(timed_out.stderr.split())
    assert timed_out.returncode == 2, said
    assert "still queued with 1 request(s) ahead of it (1 being answered)" in said, said
    # a question piped in (no person watching a terminal) is told nothing of the wait
    assert "waits for the LLM" not in said
    assert len(model.requests) == 1  # neither question reached the model


def test_a_chat_with_stderr_closed_is_refused_on_stdout(env) -> None:
    """`chat 2>&-`: the prompt is written to stderr, and input() failed ("lost sys.stderr"):
    exit 1, with nothing said anywhere."""
    with ScriptedModel([say("unused")]) as model:
        env["AI_SYSADMIN_LLM__URL"] = model.url
        done = subprocess.run(["sh", "-c", f"exec '{BIN}' chat 2>&-"], input="hello\n",
                              capture_output=True, text=True, env=env, timeout=60)
        asked = len(model.requests)
    assert done.returncode == 2, done
    assert "standard error is closed" in done.stdout and "2>/dev/null" in done.stdout
    assert asked == 0


def _action(tmp_path: Path, host: str) -> int:
    from ai_sysadmin.config import Settings
    from ai_sysadmin.executor import Executor
    from ai_sysadmin.hosts.transport import LocalTransport
    from ai_sysadmin.store import Database, IncidentStore

    settings = Settings(ai_name="hal", state_dir=tmp_path / "state")
    store = IncidentStore(Database(settings.db_path))
    action = asyncio.run(Executor(settings, store, {host: LocalTransport(host)}).propose(
        host, "restart_unit", {"unit": "nginx.service"}))
    return action.id


def test_discuss_m_says_an_llm_failure_as_ask_does(env, tmp_path: Path) -> None:
    """`approve discuss -m` printed the server's bare words: no server for an unusable
    answer, no `llm status` hint for one that is down, where `ask` gives both."""
    action = _action(tmp_path, "h")
    with ScriptedModel([say(""), say(""), say(""), say("")]) as model:
        env["AI_SYSADMIN_LLM__URL"] = model.url
        discussed = run(["approve", "discuss", str(action), "-m", "is it safe?"], env)
        asked = run(["ask", "is it safe?"], env)
    error = next(line for line in discussed.stderr.splitlines() if line.startswith("error:"))
    assert discussed.returncode == asked.returncode == 2
    assert error == asked.stderr.strip(), (error, asked.stderr)
    assert f"the LLM at {model.url}" in error
    env["AI_SYSADMIN_LLM__URL"] = model.url  # closed now: nothing listens
    down = run(["approve", "discuss", str(action), "-m", "is it safe?"], env)
    assert down.returncode == 2 and "`ai-sysadmin llm status` checks it" in down.stderr, down


def test_discussing_an_action_on_a_host_no_longer_managed_says_so(env, tmp_path) -> None:
    """The action's host was removed: each tool call said "unknown host ''", and nothing
    told the person or the model why."""
    action = _action(tmp_path, "h")
    with ScriptedModel([call("run_readonly", argv=["uname", "-r"]), say("it is gone")]) as model:
        env["AI_SYSADMIN_LLM__URL"] = model.url
        done = run(["approve", "discuss", str(action), "-m", "is it safe?"], env)
        sent = model.requests
    assert done.returncode == 0, done.stderr
    assert "note: host h is no longer managed here" in done.stderr
    opening = " ".join(m["content"] for m in sent[0]["messages"] if m["role"] == "user")
    assert "host h is no longer managed here" in opening
    result = tool_results(sent[1])[-1]
    assert "host 'h', the one this conversation is about, is no longer managed" in result
    assert "unknown host ''" not in result
