"""Root running a command on a daemon's state (``sudo hal-issues``) works as the daemon's user:
what it writes there stays the daemon's to write again."""

from __future__ import annotations

import json
import os
import pty
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN
from tests.support.needs_root import needs_root
from tests.support.scripted_model import ScriptedModel, say
from tests.support.terminal import Screen

NOBODY = 65534


@pytest.fixture
def daemons_state() -> Iterator[Path]:
    """A state directory as setup makes it: the daemon's user owns it (here nobody), under a
    directory any user may enter."""
    needs_root("a command run as root")
    top = Path(tempfile.mkdtemp(prefix="ai-sysadmin-owner-"))
    top.chmod(0o755)
    state = top / "state"
    state.mkdir(mode=0o750)
    os.chown(state, NOBODY, NOBODY)
    try:
        yield state
    finally:
        shutil.rmtree(top)


def run(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AI_SYSADMIN_STATE_DIR": str(state), "HOME": "/root"}
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_command_root_runs_on_the_daemons_state_writes_as_the_daemons_user(
        daemons_state: Path, tmp_path: Path) -> None:
    done = run(daemons_state, "issues", "list", "--json")
    assert done.returncode == 0, done.stderr
    made = {p.name: p.stat().st_uid for p in daemons_state.iterdir()}
    assert "state.db" in made and set(made.values()) == {NOBODY}, made
    # and again, as the daemon would open it after (a root-owned journal file stopped it);
    # with /root closed to the daemon's user as it is, but for the interpreter, which the
    # daemon's user reads wherever it is installed (a check that ran is 0 or 1; a check
    # that could not run, 2)
    again = _root_closed(tmp_path, Path("/etc/passwd"),
                         {**os.environ, "AI_SYSADMIN_STATE_DIR": str(daemons_state),
                          "HOME": "/root"}, "check", "--json")
    assert again.returncode in (0, 1), again.stderr
    assert {p.stat().st_uid for p in daemons_state.rglob("*")} == {NOBODY}



def _closed_port() -> int:
    """A loopback port nothing listens on: a connection there is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: in a mount namespace of its own: the daemon's account, its home the state directory (as
#: setup makes it), then /root as a directory any user may enter but that holds no ssh config
#: (the interpreter may live under /root, as pyenv's does: the switched command must still
#: load its modules), then the command
_AS_SUDO = ('passwd=$1 fake=$2 keep=$3; shift 3; mount --bind "$passwd" /etc/passwd && '
            '{ [ -z "$keep" ] || mount --bind "/root/$keep" "$fake/$keep"; } && '
            'mount --rbind "$fake" /root && exec "$@"')


def _root_closed(tmp_path: Path, passwd: Path, env: dict[str, str], *args: str
                 ) -> subprocess.CompletedProcess[str]:
    """The command as root runs it under sudo, in a mount namespace of its own: ``passwd``
    as /etc/passwd, /root a directory the daemon's user may enter but not read, with only
    the interpreter in it where that lives under /root (pyenv's)."""
    return subprocess.run(_as_sudo(tmp_path, passwd, *args), capture_output=True, text=True,
                          env=env, timeout=120)


def _as_sudo(tmp_path: Path, passwd: Path, *args: str) -> list[str]:
    """:func:`_root_closed`'s command line."""
    fake_root = tmp_path / "fake-root"
    fake_root.mkdir(mode=0o711, exist_ok=True)
    prefix = Path(sys.base_prefix).resolve()
    keep = prefix.relative_to("/root").parts[0] if prefix.is_relative_to("/root") else ""
    if keep:
        (fake_root / keep).mkdir(exist_ok=True)
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _AS_SUDO,
            "sh", str(passwd), str(fake_root), keep, str(BIN), *args]


def _daemons_passwd(tmp_path: Path, state: Path) -> Path:
    """/etc/passwd with the daemon's account (nobody) at home in its state directory, as
    setup makes it."""
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(
        f"nobody:x:{NOBODY}:{NOBODY}:nobody:{state}:/usr/sbin/nologin\n"
        if line.startswith("nobody:") else line + "\n"
        for line in Path("/etc/passwd").read_text().splitlines()))
    return passwd


def test_sudo_reaches_a_managed_host_with_the_daemons_ssh_config_not_roots(
        daemons_state: Path, tmp_path: Path) -> None:
    """``sudo hal-check web1`` with root's home closed to the daemon's user (0700, as /root
    is): the command reaches web1 as the daemon would, through the daemon's ~/.ssh/config,
    where it stopped at 'error: /root/.ssh/config: Permission denied'."""
    roots, daemons = _closed_port(), _closed_port()
    root_home = tmp_path / "root-home"  # root's home under sudo: its user alone may enter
    (root_home / ".ssh").mkdir(parents=True)
    root_home.chmod(0o700)
    (root_home / ".ssh" / "config").write_text(f"Host web1\n  Port {roots}\n")
    ssh_dir = daemons_state / ".ssh"
    ssh_dir.mkdir()
    (ssh_dir / "config").write_text(f"Host web1\n  HostName 127.0.0.1\n  Port {daemons}\n")
    for path in (ssh_dir, ssh_dir / "config"):
        os.chown(path, NOBODY, NOBODY)
    passwd = _daemons_passwd(tmp_path, daemons_state)
    config = tmp_path / "config.toml"
    config.write_text('ai_name = "hal"\nremote_systems = ["web1"]\n')
    config.chmod(0o644)
    env = {**os.environ, "AI_SYSADMIN_STATE_DIR": str(daemons_state),
           "AI_SYSADMIN_CONFIG": str(config), "HOME": str(root_home)}
    done = _root_closed(tmp_path, passwd, env, "check", "web1", "--json")
    assert done.returncode == 1, done.stderr  # an unreachable host is a finding
    report = json.loads(done.stdout)
    assert report["host"] == "web1" and report["reachable"] is False
    assert f"127.0.0.1:{daemons}" in json.dumps(report["errors"]), report["errors"]
    assert "Permission denied" not in done.stderr + done.stdout


def test_a_decision_root_makes_on_the_daemons_state_is_roots(daemons_state: Path) -> None:
    """The command runs as the daemon's user once it has read its config: the person who
    decided is still who ran it (root, or sudo's caller as sudo says), never that account."""
    from ai_sysadmin.monitor.findings import Finding, Severity
    from ai_sysadmin.store import Database, IncidentStore

    store = IncidentStore(Database(daemons_state / "state.db"))
    found = [Finding("web1", "disk_space", f"/v{n}", Severity.CRITICAL, "full") for n in (1, 2)]
    first, second = store.record_check("web1", found, {"disk_space"}).opened
    store.db.close()
    for path in daemons_state.iterdir():
        os.chown(path, NOBODY, NOBODY)
    assert run(daemons_state, "issues", "close", str(first)).returncode == 0
    env = {**os.environ, "AI_SYSADMIN_STATE_DIR": str(daemons_state), "HOME": "/root",
           "SUDO_USER": "bob", "SUDO_UID": "1000"}
    by_sudo = subprocess.run([str(BIN), "issues", "close", str(second)], capture_output=True,
                             text=True, env=env, timeout=120)
    assert by_sudo.returncode == 0, by_sudo.stderr
    shown = json.loads(run(daemons_state, "issues", "show", str(second), "--json").stdout)
    closers = {e["actor"] for e in shown["events"] if e.get("to_state") == "closed"}
    assert closers == {"root (sudo from bob uid 1000, as SUDO_USER says)"}
    shown = json.loads(run(daemons_state, "issues", "show", str(first), "--json").stdout)
    assert {e["actor"] for e in shown["events"] if e.get("to_state") == "closed"} == {"root"}


def test_a_chat_root_runs_on_the_daemons_state_keeps_no_history_there(
        daemons_state: Path, tmp_path: Path) -> None:
    """``sudo hal-chat``: the chat runs as the daemon's account, whose home is the state
    directory every operator shares. What the person typed was kept there, in a file of the
    daemon's account, for the next operator's up-arrow to show; root's own home is closed to
    that account. The chat keeps none, and says so."""
    root_home = tmp_path / "root-home"
    root_home.mkdir(mode=0o700)
    config = tmp_path / "config.toml"
    config.write_text('ai_name = "hal"\n')
    config.chmod(0o644)
    with ScriptedModel(then=say("an answer")) as model:
        env = {**{k: v for k, v in os.environ.items() if k != "XDG_STATE_HOME"},
               "AI_SYSADMIN_STATE_DIR": str(daemons_state), "AI_SYSADMIN_CONFIG": str(config),
               "HOME": str(root_home), "SUDO_USER": "alice", "SUDO_UID": "1000",
               "AI_SYSADMIN_LLM__URL": model.url, "AI_SYSADMIN_LLM__BACKEND": "openai",
               "AI_SYSADMIN_LLM__MODEL": "scripted"}
        master, slave = pty.openpty()
        chat = subprocess.Popen(
            _as_sudo(tmp_path, _daemons_passwd(tmp_path, daemons_state), "chat"), env=env,
            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        terminal = Screen(master)
        try:
            terminal.until(b"hal> ")
            os.write(master, b"my private question about the db host\r")
            terminal.until(b"an answer")
            terminal.until(b"hal> ")
            os.write(master, b"/exit\r")
            assert chat.wait(timeout=60) == 0, bytes(terminal.seen)
        finally:
            if chat.poll() is None:
                chat.kill()
                chat.wait()
            os.close(master)
    kept = [p for p in tmp_path.rglob("*") if p.is_file()
            and b"private question" in p.read_bytes()]
    assert kept == [], kept
    assert not list(daemons_state.rglob("*chat-history*"))
    assert b"note: no line history is kept" in terminal.seen
