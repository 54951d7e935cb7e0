"""``approve approve N`` stopped while it waits for a host that never answers: by SIGTERM or
SIGHUP as by Ctrl-C (nothing ran: approvable again, and its history says so), and when killed
outright, the next ``approve`` command gives back what the dead process held. Stopped while
its fix runs, the action failed: nobody knows how far it got, and it never runs again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.store import Action, ActionStore, IncidentStore
from tests.conftest import BIN


@pytest.fixture
def hung(cli, config_file, tmp_path) -> Iterator[socket.socket]:  # type: ignore[no-untyped-def]
    """A managed host ``hung`` whose port takes connections and never says a word (what
    it accepted stays open: closed, the client would see a lost connection)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    # long enough that only the signal ends the wait
    config_file(f'ai_name = "hal"\n[ssh]\nconnect_timeout = 120\n'
                f'known_hosts = "{tmp_path / "known_hosts"}"\n')
    assert cli("systems", "add", f"root@127.0.0.1:{port}", "--name", "hung",
               "--no-probe")[0] == 0
    with listener:
        yield listener


def _waiting(settings: Settings, store: IncidentStore) -> Action:
    return asyncio.run(Executor(settings, store, {}).propose(
        "hung", "vacuum_journal", {"max_size": "500M"}))


@contextlib.contextmanager
def _approve_until_it_waits(listener: socket.socket, action: Action,
                            sigint: signal.Handlers = signal.SIG_DFL
                            ) -> Iterator[subprocess.Popen[str]]:
    """``approve approve`` in its own process, once it is connecting to the host (its policy
    re-check done, the action approved and held by it). ``sigint``: as the process inherits
    it (ignored: started in the background by a script)."""
    approving = subprocess.Popen([str(BIN), "approve", "approve", str(action.id)],
                                 env=dict(os.environ), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True,
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, sigint))
    try:
        listener.settimeout(60)
        connection, _ = listener.accept()  # it is connected: now it waits for a banner
        with connection:
            yield approving
    finally:
        if approving.poll() is None:
            approving.kill()
        approving.communicate()


def _said(store: IncidentStore, action_id: int) -> list[str]:
    return [e["detail"] for e in store.audit_log(200) if e["subject"] == f"action:{action_id}"]


@pytest.mark.parametrize(("stop", "sigint"), [
    (signal.SIGTERM, signal.SIG_DFL), (signal.SIGHUP, signal.SIG_DFL),
    (signal.SIGTERM, signal.SIG_IGN), (signal.SIGHUP, signal.SIG_IGN)])
def test_an_approve_stopped_by_a_signal_gives_the_action_back_as_ctrl_c_does(
        cli: Callable[..., tuple[int, str, str]], settings: Settings, store: IncidentStore,
        hung: socket.socket, stop: signal.Signals, sigint: signal.Handlers) -> None:
    action = _waiting(settings, store)
    with _approve_until_it_waits(hung, action, sigint) as approving:
        assert ActionStore(store.db).get(action.id).state == "approved"
        approving.send_signal(stop)
        _, err = approving.communicate(timeout=60)
    # ended by the signal itself once the action is given back, as a shell or systemd expects
    assert approving.returncode == -stop, err
    assert err.splitlines()[-1] == f"stopped by {stop.name}", err
    again = ActionStore(store.db).get(action.id)
    assert again.state == "pending" and again.owner is None and again.started_at is None
    assert "the approval by root was cut off (cancelled) before anything ran; it can be " \
        "approved again" in _said(store, action.id)[-1]
    code, out, _ = cli("approve", "list", "--json")
    assert code == 0 and [a["id"] for a in json.loads(out)] == [action.id]


def test_an_approval_whose_process_was_killed_is_given_back_by_the_next_approve_command(
        cli: Callable[..., tuple[int, str, str]], settings: Settings, store: IncidentStore,
        hung: socket.socket) -> None:
    action = _waiting(settings, store)
    with _approve_until_it_waits(hung, action) as approving:
        approving.kill()  # nothing of it runs again: only its pid and start time remain
        approving.communicate(timeout=60)
    assert ActionStore(store.db).get(action.id).state == "approved"
    hung.close()  # the host is down now: what approve would do says so at once

    code, out, _ = cli("approve", "approve", str(action.id), "--dry-run")
    assert code == 2 and "would not run: approve would run nothing: hung: connection " \
        "refused" in out
    code, out, _ = cli("approve", "list", "--json")
    [listed] = json.loads(out)
    assert code == 0 and listed["id"] == action.id and listed["state"] == "pending"
    assert "the approval by root ended before anything ran; it can be approved again" \
        in _said(store, action.id)[-1]
    code, _, err = cli("approve", "approve", str(action.id))
    assert code == 2 and "waits for approval again" in err and "connection refused" in err


def test_an_approve_stopped_while_its_fix_runs_ends_it_failed_never_to_run_again(
        cli: Callable[..., tuple[int, str, str]], config_file, settings: Settings,
        store: IncidentStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # the fix is a real program here that says it started, then takes its time
    started = tmp_path / "started"
    journalctl = tmp_path / "journalctl"
    journalctl.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {started}\nexec sleep 120\n')
    journalctl.chmod(0o755)
    config_file(f'ai_name = "hal"\n[programs]\njournalctl = "{journalctl}"\n')
    host = short_hostname()
    action = asyncio.run(Executor(settings, store, {host: LocalTransport(host)}).propose(
        host, "vacuum_journal", {"max_size": "500M"}))
    approving = subprocess.Popen([str(BIN), "approve", "approve", str(action.id)],
                                 env=dict(os.environ), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert time.monotonic() < deadline and approving.poll() is None, "it never ran"
            time.sleep(0.05)
        approving.send_signal(signal.SIGTERM)
        _, err = approving.communicate(timeout=60)
    finally:
        if approving.poll() is None:
            approving.kill()
            approving.communicate()
    assert approving.returncode == -signal.SIGTERM, err
    ended = ActionStore(store.db).get(action.id)
    assert ended.state == "failed" and "cut off while running" in (ended.result or {})["error"]
    assert any("escalated" in e["action"] for e in store.audit_log(50)
               if e["subject"] == f"action:{action.id}")
    # whoever looks next finds it ended, and nothing runs it again
    assert json.loads(cli("approve", "list", "--json")[1]) == []
    code, _, err = cli("approve", "approve", str(action.id))
    assert code == 1 and f"action {action.id} is failed, not pending" in err
    assert started.read_text() == "--vacuum-size=500M\n"
