"""The chat's line history: each person's own file, never one the daemon's user can plant."""

from __future__ import annotations

import os
import pty
import re
import readline
import select
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ai_sysadmin.cli import talk
from ai_sysadmin.config import Settings
from tests.conftest import BIN
from tests.support.needs_root import needs_root
from tests.support.polling import poll_until
from tests.support.scripted_model import ScriptedModel, say
from tests.support.terminal import chat_env

#: what a person pasted into a question
QUESTION_SECRET = "hunter2hunter2"


def test_the_history_lives_with_the_person_not_in_the_state_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state-home"))
    settings = Settings(ai_name="hal", state_dir=tmp_path / "var")
    path = talk._history_file(settings)
    assert path == tmp_path / "state-home" / "ai-sysadmin" / "hal-chat-history"
    assert settings.state_dir not in path.parents
    monkeypatch.delenv("XDG_STATE_HOME")
    assert talk._history_file(settings) == (
        Path.home() / ".local" / "state" / "ai-sysadmin" / "hal-chat-history")


def test_a_history_that_is_a_link_is_neither_read_nor_written(tmp_path: Path) -> None:
    # as the daemon's user could leave it for a chat run with sudo
    target = tmp_path / "authorized_keys"
    target.write_text("kept\n")
    link = tmp_path / "hal-chat-history"
    link.symlink_to(target)
    readline.clear_history()
    readline.add_history("ssh-ed25519 AAAA planted")
    talk._save_history(readline, link, 0)
    assert target.read_text() == "kept\n"
    assert not talk._own_file(link)
    # a plain file of one's own is written, for that person only
    own = tmp_path / "own-history"
    talk._save_history(readline, own, 0)
    assert "planted" in own.read_text() and (own.stat().st_mode & 0o777) == 0o600
    assert talk._own_file(own)


def test_a_history_owned_by_someone_else_is_not_used(tmp_path: Path) -> None:
    needs_root("giving a file away")
    other = tmp_path / "hal-chat-history"
    other.write_text("planted\n")
    os.chown(other, 65534, 65534)
    assert not talk._own_file(other)


class _Terminal:
    """A chat on a pseudo-terminal of its own, typed at as a person types: readline keeps
    what is typed only on a terminal."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.child = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        self.said = ""
        # poll, not select: a worker that has run a thousand tests may hold descriptors
        # past select()'s 1024
        self.ready = select.poll()
        self.ready.register(self.master, select.POLLIN)

    def wait_for(self, text: str) -> None:
        def seen() -> bool:
            while self.ready.poll(0):
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                self.said += re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", chunk.decode(errors="replace"))
            return text in self.said
        poll_until(seen, what=f"{text!r} on the chat's terminal")

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")


def test_the_history_kept_on_disk_holds_a_typed_password_masked(tmp_path: Path) -> None:
    path = tmp_path / "state-home" / "ai-sysadmin" / "hal-chat-history"
    # one an older version wrote, with a password in clear
    path.parent.mkdir(parents=True)
    path.write_text(f"mysql -u root -p{QUESTION_SECRET} says access denied\n")
    with ScriptedModel([say("rotate it")]) as model:
        chat = _Terminal([str(BIN), "chat"], chat_env(tmp_path, model.url))
        try:
            chat.wait_for("hal> ")
            chat.type(f"db_password={QUESTION_SECRET} is refused, why?")
            chat.wait_for("rotate it")
            chat.type("/exit")
            assert chat.child.wait(timeout=60) == 0, chat.said
        finally:
            if chat.child.poll() is None:
                chat.child.kill()
                chat.child.wait()
            os.close(chat.master)
    kept = path.read_text()
    assert QUESTION_SECRET not in kept
    assert "db_password=[redacted] is refused, why?" in kept
    assert "mysql -u root -p[redacted] says access denied" in kept
    assert (path.stat().st_mode & 0o777) == 0o600


def test_two_chats_at_once_each_keep_their_lines_in_the_history(tmp_path: Path) -> None:
    """Two terminals, one person: the chat that ended last wrote its history over the
    file, and the first one's lines were lost. The file still keeps its last 1000 lines."""
    path = tmp_path / "state-home" / "ai-sysadmin" / "hal-chat-history"
    path.parent.mkdir(parents=True)
    path.write_text("".join(f"an old question {n}\n" for n in range(1000)))
    with ScriptedModel(then=say("ok")) as model:
        env = chat_env(tmp_path, model.url)
        chats = [_Terminal([str(BIN), "chat"], env) for _ in range(2)]
        try:
            for chat in chats:
                chat.wait_for("hal> ")
            for chat, where in zip(chats, "AB", strict=True):
                chat.type(f"typed in terminal {where}")
                chat.wait_for("ok")
            for chat in chats:  # A ends first, then B: B read the file before A wrote it
                chat.type("/exit")
                assert chat.child.wait(timeout=60) == 0, chat.said
        finally:
            for chat in chats:
                if chat.child.poll() is None:
                    chat.child.kill()
                    chat.child.wait()
                os.close(chat.master)
    kept = path.read_text().splitlines()
    assert kept[-4:] == ["typed in terminal A", "/exit", "typed in terminal B", "/exit"]
    assert len(kept) == 1000 and kept[0] == "an old question 4"
    assert (path.stat().st_mode & 0o777) == 0o600


def test_a_password_in_a_question_is_neither_sent_nor_stored(tmp_path: Path) -> None:
    """The conversation is stored with each request in the LLM queue (state_dir/queue.db,
    kept for days): a question reaches the model and the queue masked, as the host's text
    does."""
    with ScriptedModel([say("rotate it"), say("done")]) as model:
        env = chat_env(tmp_path, model.url)
        chat = subprocess.run(
            [str(BIN), "chat"], input=f"db_password={QUESTION_SECRET} is refused, why?\n",
            capture_output=True, text=True, env=env, timeout=60)
        ask = subprocess.run([str(BIN), "ask", f"is mysql -p{QUESTION_SECRET} right?"],
                             capture_output=True, text=True, env=env, timeout=60)
        asked = [m["content"] for r in model.requests for m in r["messages"]
                 if m["role"] == "user"]
    assert chat.returncode == 0 and ask.returncode == 0, chat.stderr + ask.stderr
    assert asked == ["db_password=[redacted] is refused, why?", "is mysql -p[redacted] right?"]
    stored = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert any(p.name == "queue.db" for p in stored)
    for path in stored:
        assert QUESTION_SECRET.encode() not in path.read_bytes(), path


#: the command as an unlisted uid runs it (a container's arbitrary uid): /root a directory
#: that uid may enter but not read, with only the interpreter in it where that lives under
#: /root (pyenv's)
_AS_UNLISTED = ('fake=$1 keep=$2; shift 2; '
                '{ [ -z "$keep" ] || mount --bind "/root/$keep" "$fake/$keep"; } && '
                'mount --rbind "$fake" /root && '
                'exec setpriv --reuid=4242 --regid=4242 --clear-groups -- "$@"')


def test_a_chat_of_a_user_with_no_home_answers_and_keeps_no_history(tmp_path: Path) -> None:
    """HOME unset, and a uid with no account to read a home from: the chat stopped at its
    start with 'RuntimeError: Could not determine home directory.'"""
    needs_root("a uid with no account")
    top = Path(tempfile.mkdtemp(prefix="ai-sysadmin-homeless-"))
    try:
        top.chmod(0o755)
        state = top / "state"
        state.mkdir()
        os.chown(state, 4242, 4242)
        fake_root = top / "fake-root"
        fake_root.mkdir(mode=0o711)
        prefix = Path(sys.base_prefix).resolve()
        keep = prefix.relative_to("/root").parts[0] if prefix.is_relative_to("/root") else ""
        if keep:
            (fake_root / keep).mkdir()
        with ScriptedModel(then=say("an answer")) as model:
            env = chat_env(top, model.url)
            (top / "config.toml").chmod(0o644)
            del env["HOME"], env["XDG_STATE_HOME"]
            done = subprocess.run(
                ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                 _AS_UNLISTED, "sh", str(fake_root), keep, str(BIN), "chat"],
                input="is the disk full?\n", capture_output=True, text=True, env=env,
                timeout=120)
        assert done.returncode == 0, done.stderr
        assert "an answer" in done.stdout and done.stderr == "", done.stderr
        assert not list(top.rglob("*chat-history*"))
    finally:
        shutil.rmtree(top)
