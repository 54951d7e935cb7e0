"""A chat on a terminal, stopped: ``kill`` (SIGTERM) or a terminal that closed (SIGHUP) ends it
at once, by that signal, where a person's Ctrl-C only lets go of what they waited on. The
real program on a pseudo-terminal, a scripted model over real HTTP that holds its answer."""

from __future__ import annotations

import os
import pty
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import BIN
from tests.support.polling import poll_until
from tests.support.scripted_model import ScriptedModel, delay, say
from tests.support.terminal import Screen


class _Chat:
    """``chat`` as a person runs it: its stdin and stdout a pseudo-terminal, its stderr a
    file (read once it ended: a terminal that hung up shows nothing more)."""

    def __init__(self, env: dict[str, str], stderr: Path) -> None:
        self.master, slave = pty.openpty()
        with stderr.open("wb") as errors:
            # as a terminal starts it: a test run in the background ignores SIGINT, and a
            # child inherits that
            self.proc = subprocess.Popen(
                [str(BIN), "chat"], env=env, stdin=slave, stdout=slave, stderr=errors,
                start_new_session=True,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        os.close(slave)
        self.screen, self.open = Screen(self.master), True
        self.until = self.screen.until

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def waiting_for_keys(self) -> None:
        """Until the chat sleeps at its prompt: a signal that came while readline printed
        the prompt, before it waited, is seen only at the next key."""
        self.until(b"hal> ")

        def asleep() -> bool:
            with open(f"/proc/{self.proc.pid}/stat") as stat:
                return stat.read().rpartition(")")[2].split()[0] == "S"
        poll_until(asleep, 30, "the chat to wait at its prompt")

    def hang_up(self) -> None:
        os.close(self.master)
        self.open = False

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.open:
            self.hang_up()


def _requests(env: dict[str, str]) -> list[str]:
    with sqlite3.connect(Path(env["AI_SYSADMIN_STATE_DIR"]) / "queue.db") as db:
        return [state for (state,) in db.execute("SELECT state FROM requests")]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("when", ["at the prompt", "during a question"])
def test_a_stop_ends_a_chat_at_once_where_ctrl_c_would_let_it_go_on(
        env, tmp_path: Path, stop: signal.Signals, when: str) -> None:
    """``kill <pid>`` was taken for a person's Ctrl-C: the question withdrawn, a new prompt,
    the chat running on; with the terminal closed it then failed writing its prompt
    ("error: Input/output error", exit 2)."""
    stderr = tmp_path / "stderr"
    with ScriptedModel([delay(60, say("far too late"))]) as model:
        env["AI_SYSADMIN_LLM__URL"] = model.url
        chat = _Chat(env, stderr)
        try:
            if when == "at the prompt":
                chat.waiting_for_keys()
            else:
                chat.until(b"hal> ")
                chat.type("is nginx ok?")
                poll_until(lambda: model.requests, 60, "the question to reach the model")
            # the terminal window closed: during a question, before its signal came (the
            # chat then failed writing its prompt); at the prompt, after it, as readline
            # reads a hung-up terminal's end as Ctrl-D's (/exit), and a SIGHUP after that
            # ends the chat silently (by SIGHUP all the same)
            if stop == signal.SIGHUP and when == "during a question":
                chat.hang_up()
            chat.proc.send_signal(stop)
            if stop == signal.SIGHUP and when == "at the prompt":
                chat.hang_up()
            stopped = time.monotonic()
            poll_until(lambda: chat.proc.poll() is not None, 30, "the chat to end")
            took = time.monotonic() - stopped
        finally:
            chat.close()
    said = stderr.read_text()
    # ended by the signal itself, as without a handler: a shell says 143 or 129
    assert chat.proc.returncode == -stop, said
    assert took < 5, f"the chat took {took:.1f} s to end"
    assert said.splitlines()[-1] == f"stopped by {stop.name}", said
    assert "withdrawn" not in said and "error" not in said and "Traceback" not in said
    if when == "during a question":
        assert _requests(env) == ["cancelled"]  # not left to be answered for nobody
        # what was typed is kept, as a chat that ended otherwise keeps it
        history = tmp_path / "state-home" / "ai-sysadmin" / "hal-chat-history"
        assert history.read_text() == "is nginx ok?\n"


class _SlowToList(ScriptedModel):
    """A server that, after its first listing of models (the chat's check at its start),
    takes long to list them (busy loading a model): ``/debug`` waits on it."""

    listings = 0

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes):
        if path.startswith("/v1/models"):
            self.listings += 1
            if self.listings > 1:
                self._closing.wait(60)
        return super().handle(method, path, headers, body)


def test_ctrl_c_during_debug_lets_it_go_and_the_conversation_goes_on(env, tmp_path) -> None:
    """``/debug`` waited on a slow server; Ctrl-C then ended the whole chat (130) and lost
    the conversation, where Ctrl-C during a question only withdraws it."""
    with _SlowToList([say("first answer")]) as model:
        env["AI_SYSADMIN_LLM__URL"] = model.url
        chat = _Chat(env, tmp_path / "stderr")
        try:
            chat.until(b"hal> ")
            chat.type("hello")
            chat.until(b"first answer")
            chat.until(b"hal> ")
            chat.type("/debug")
            poll_until(lambda: model.listings > 1, 60, "/debug to ask the server for its models")
            chat.proc.send_signal(signal.SIGINT)
            chat.until(b"hal> ")
            chat.type("/history")
            chat.until(b"1  hello")
            chat.type("/exit")
            assert chat.proc.wait(timeout=30) == 0, bytes(chat.seen)
        finally:
            chat.close()
    said = (tmp_path / "stderr").read_text()
    assert said.splitlines()[-1:] == ["interrupted"], said
