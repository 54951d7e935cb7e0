"""A daemon whose state database's disk fills while it runs: each of its loops says once, in
the store's one line, that the store refuses it, stays quiet while the disk is full (no
traceback each pass, which on a disk shared with the logs became a flood of "Logging
error"), and says once when it works again. The daemon as a user runs it, a real process on
a real tmpfs that fills, in a mount namespace of its own; its logs on a tmpfs of their own,
so what it says can be read."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.config import short_hostname
from tests.conftest import BIN
from tests.lab.daemon_runner import QUIET_HOST_WIDE
from tests.notify.conftest import TOKEN, secret_file
from tests.notify.servers import GotifyServer, Request
from tests.support.needs_root import needs_root
from tests.support.polling import poll_until

#: each lets a full disk last seconds under a daemon process
pytestmark = pytest.mark.slow

#: $1 the state directory, $2 one to copy onto it (or ''), then the command: the database's
#: disk 4 MiB, the logs' another
MOUNTS = ('state=$1 seed=$2; shift 2; mkdir -p "$state" '
          '&& mount -t tmpfs -o size=4m tmpfs "$state" '
          '&& { [ -z "$seed" ] || cp -a "$seed/." "$state/"; } '
          '&& mkdir -p "$state/logs" && mount -t tmpfs -o size=16m tmpfs "$state/logs" '
          '&& exec "$@"')
#: how long the disk stays full: several passes of each loop (checks and the outbox every
#: second), each of which logged a traceback before
FULL_SECONDS = 4.0


def _records(root: Path, log: str = "service") -> list[dict[str, Any]]:
    path = root / "logs" / f"{log}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _loops(records: list[dict[str, Any]], event: str) -> list[str]:
    """The loops that said ``event``, by what they do ("check of web1")."""
    said = " failed: " if event == "store_refused" else " works again"
    return sorted(r["msg"].split(said)[0] for r in records if r.get("event") == event)


def _fill(disk: Path) -> None:
    # unbuffered: what a buffered file held when the disk ran full was flushed again at its
    # close, which raised ENOSPC out of the `with` whenever the free space was no multiple
    # of the block written (one page more in the state database)
    with (disk / "filler").open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc


@contextlib.contextmanager
def _running(tmp_path: Path, check_interval: int, gotify_url: str | None = None,
             config: str | None = None, seed: Path | None = None, checked: bool = True,
             env: dict[str, str] | None = None,
             ) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """``run`` on a state directory of its own tmpfs, once it has checked this machine
    (``checked``); the directory as the daemon sees it. Killed after, if a test did not stop
    it. ``config``: the configuration, in place of one that investigates nothing; ``seed``:
    a state directory the daemon starts from; ``env``: what its environment has in place
    of this one's."""
    needs_root("a mount of its own")
    told = "" if gotify_url is None else (
        f'gotify_url = "{gotify_url}"\n'
        f'gotify_token_file = "{secret_file(tmp_path / "gotify.token", TOKEN)}"\n')
    (tmp_path / "config.toml").write_text(config or (
        f'ai_name = "hal"\ncheck_interval = {check_interval}\njournal_follow = false\n{told}'
        "[agent]\ninvestigate = false\n[knowledge]\nenabled = false\n"
        # this machine's own load is no part of it: a busy CI machine's load incident would
        # take the message the tests send (and fill the disk with it)
        "[thresholds]\n" + "".join(f"{key} = {value!r}\n"
                                   for key, value in QUIET_HOST_WIDE.items())))
    state = tmp_path / "state"
    env = {**os.environ, **(env or {}), "AI_SYSADMIN_CONFIG": str(tmp_path / "config.toml"),
           "AI_SYSADMIN_STATE_DIR": str(state)}
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", MOUNTS, "sh",
         str(state), str(seed or ""), str(BIN), "run"], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    root = Path(f"/proc/{proc.pid}/root{state}")
    try:
        if checked:
            poll_until(lambda: '"checked ' in _text(root / "logs" / "orchestrator.jsonl"),
                       what="the daemon's first check")
        yield proc, root
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _stopped(proc: subprocess.Popen[str]) -> str:
    """The daemon stopped as systemd stops it, cleanly; what it said on stderr."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


def _inside(proc: subprocess.Popen[str], code: str, state_db: Path) -> str:
    """``code`` run in the daemon's mount namespace (SQLite resolves /proc/PID/root to the
    path outside it), here and with this checkout, the state database as STATE; what it
    printed."""
    prelude = ("from ai_sysadmin.store import Database, IncidentStore\n"
               "from ai_sysadmin.store.outbox import Outbox\n"
               "from tests.notify.conftest import failed\n"
               f"STATE = {str(state_db)!r}\n")
    done = subprocess.run(["nsenter", f"--mount=/proc/{proc.pid}/ns/mnt",
                           f"--wd={os.getcwd()}", "--", sys.executable, "-c", prelude + code],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class FillingGotify(GotifyServer):
    """Gotify, whose first message accepted fills the daemon's disk as it comes (another
    program's log grew meanwhile): the daemon sent it, and cannot record that it did."""

    disk: Path | None = None
    filled = False

    def check(self, request: Request) -> tuple[int, dict[str, Any]] | None:
        refused = super().check(request)
        if refused is None and self.disk is not None and not self.filled:
            self.filled = True
            _fill(self.disk)
        return refused


def test_a_message_sent_while_the_disk_filled_is_sent_once_not_every_second(
        tmp_path: Path) -> None:
    with FillingGotify(TOKEN) as gotify, _running(tmp_path, 3600, gotify.url) as (proc, root):
        sent = len(gotify.accepted)
        gotify.disk = root
        # an incident another process opens (a person's `check`): told by the daemon
        _inside(proc, "IncidentStore(Database(STATE)).record_check('web1', [failed("
                "'web1', 'nginx.service')], {'failed_unit'})", tmp_path / "state" / "state.db")
        poll_until(lambda: (root / "filler").exists() and [
            r for r in _records(root) if "deliveries to" in r["msg"]
            and r["level"] in ("warning", "error")], what="the delivery not recorded")
        full_since = time.monotonic()
        poll_until(lambda: time.monotonic() - full_since > FULL_SECONDS, what="the outage")
        (root / "filler").unlink()
        poll_until(lambda: _inside(proc, "print(len(Outbox(Database(STATE)).deliveries("
                                         "('pending',))))",
                                   tmp_path / "state" / "state.db") == "0",
                   what="the delivery recorded once the disk has room")
        _stopped(proc)
    told = [m["title"] for m in gotify.accepted[sent:]]
    assert told == ["[hal] web1: nginx.service has failed"]  # once, not once a second


def test_a_full_disk_under_the_running_daemon_is_said_once_and_once_when_mended(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    with _running(tmp_path, 1) as (proc, root):
        orchestrator = root / "logs" / "orchestrator.jsonl"
        _fill(root)
        poll_until(lambda: [r for r in _records(root) if r["level"] in ("warning", "error")],
                   what="the daemon saying its store refuses")
        full_since = time.monotonic()
        poll_until(lambda: time.monotonic() - full_since > FULL_SECONDS, what="the outage")
        (root / "filler").unlink()
        checked = orchestrator.read_text().count('"checked ')
        poll_until(lambda: orchestrator.read_text().count('"checked ') > checked,
                   what="a check that works again")
        poll_until(lambda: _loops(_records(root), "store_works_again") ==
                   _loops(_records(root), "store_refused"),
                   what="each loop saying its store works again")
        records = _records(root)
        err = _stopped(proc)
    # no traceback a pass: the log's disk is often the store's, then each said "Logging error"
    assert [r["msg"] for r in records if r.get("exc")] == []
    refused = [r for r in records if r.get("event") == "store_refused"]
    state_db = state / "state.db"
    # the check of this machine, once: the store's line, not a traceback
    (check,) = [r for r in refused if r["msg"].startswith("check of ")]
    assert check["level"] == "warning" and "exc" not in check
    assert check["msg"].endswith(
        f" failed: the state database {state_db} cannot be written: the disk is full "
        "(database or disk is full); nothing of this change was stored; said again once it "
        "works")
    # each loop that met it said it once, and once that it works again (which loops meet it
    # besides the checks depends on this machine: a notification of its own to dispatch, ...)
    assert len(set(_loops(records, "store_refused"))) == len(refused) >= 1
    assert _loops(records, "store_works_again") == _loops(records, "store_refused")
    assert all(r["level"] == "warning" for r in records
               if r.get("event") == "store_works_again")
    assert "Traceback" not in err and "Logging error" not in err


def test_a_full_disk_under_the_state_database_is_told_once_around_it_and_once_mended(
        tmp_path: Path) -> None:
    """The outbox is in the database the full disk refuses: the one message a person gets
    goes straight to Gotify, once however many checks are refused; "works again" goes
    through the outbox once a check is stored."""
    state = tmp_path / "state"
    with GotifyServer(TOKEN) as gotify, _running(tmp_path, 1, gotify.url) as (proc, root):
        sent = len(gotify.accepted)
        _fill(root)
        poll_until(lambda: any("cannot record" in t for t in gotify.titles()[sent:]),
                   what="a message around the refusing store")
        # several refused checks later, still the one message
        full_since = time.monotonic()
        poll_until(lambda: time.monotonic() - full_since > FULL_SECONDS, what="the outage")
        during = gotify.accepted[sent:]
        (root / "filler").unlink()
        poll_until(lambda: len(gotify.accepted) > sent + len(during),
                   what="the message that the store works again")
        _stopped(proc)
    (down,) = during
    assert down["title"] == ("[hal] cannot record anything: its state database cannot be "
                             "written: the disk is full; hal is not watching until it is mended")
    assert down["priority"] == 8
    lines = down["message"].splitlines()
    assert lines[0] == (f"the state database {state / 'state.db'} cannot be written: the disk "
                        "is full (database or disk is full); nothing of this change was stored")
    # this machine's last check saw the disk, though it could not be stored
    assert lines[2].startswith(f"> {state} (tmpfs on tmpfs) was 100% full at the last check: ")
    assert lines[2].endswith(" of 4.0 MiB used, 0 B free")
    assert lines[-1] == f"Next: df -h {state}"
    (back,) = gotify.accepted[sent + 1:]
    assert back["title"] == "[hal] records again: its state database can be written"
    assert back["priority"] == 2


#: journalctl, but a vacuum (the fix) is counted in $RAN and fills the disk under $STATE as it
#: runs (a log that grew), and vacuums nothing; every other use reads the real journal
JOURNALCTL = """#!/bin/sh
case "$*" in
*--vacuum-size=*) printf '%s\\n' "$*" >> {ran}; head -c 64M /dev/zero > {state}/filler 2>/dev/null
                  exit 0 ;;
esac
exec /usr/bin/journalctl "$@"
"""

#: a policy's decision to run the fix, by a daemon that has ended since (its owner gone)
APPROVED = """
import asyncio
from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.store import Database, IncidentStore
settings = Settings(ai_name="hal", state_dir={seed!r}, autonomy_level="auto-safe",
                    programs={{"journalctl": {journalctl!r}}})
host = short_hostname()
action = asyncio.run(Executor(settings, IncidentStore(Database(settings.db_path)),
                              {{host: LocalTransport(host)}}).propose(
    host, "vacuum_journal", {{"max_size": "500M"}}))
print(action.id, action.state)
"""


def test_a_fix_the_daemon_ran_as_its_disk_filled_ends_once_the_disk_has_room(
        tmp_path: Path) -> None:
    """The daemon runs a fix; as it runs, the state database's disk fills, so its end cannot
    be recorded. It showed executing until the daemon restarted; now the daemon keeps the
    end and records it once the disk has room, verified, without running the fix again."""
    state, ran, seed = tmp_path / "state", tmp_path / "ran", tmp_path / "seed"
    journalctl = tmp_path / "journalctl"
    journalctl.write_text(JOURNALCTL.format(ran=ran, state=state))
    journalctl.chmod(0o755)
    done = subprocess.run([sys.executable, "-c", APPROVED.format(
        seed=str(seed), journalctl=str(journalctl))], capture_output=True, text=True,
        timeout=60)
    assert done.returncode == 0, done.stderr
    action_id, decided = done.stdout.split()
    assert decided == "approved"
    config = (f'ai_name = "hal"\ncheck_interval = 1\njournal_follow = false\n'
              f'autonomy_level = "auto-safe"\n[programs]\njournalctl = "{journalctl}"\n'
              '[safety]\nverify_settle_seconds = 0\n'
              '[llm]\nurl = "http://127.0.0.1:9"\n[knowledge]\nenabled = false\n')
    show = ("from ai_sysadmin.store import ActionStore\n"
            f"a = ActionStore(Database(STATE)).get({action_id})\nprint(a.state, a.reason)")
    # the daemon runs what the policy decided at its start, maybe before its first check is
    # stored; the disk fills as it runs
    with _running(tmp_path, 1, config=config, seed=seed, checked=False) as (proc, root):
        poll_until(lambda: [r for r in _records(root, "actions")
                            if r.get("event") == "outcome_not_recorded"],
                   what="the daemon saying the fix's end is not recorded")
        assert _inside(proc, show, state / "state.db").startswith("executing ")
        (root / "filler").unlink()
        shown = poll_until(lambda: (now := _inside(proc, show, state / "state.db")
                                    ).split()[0] != "executing" and now,
                           what="the fix's end recorded once the disk has room")
        records = _records(root, "actions")
        _stopped(proc)
    assert shown.startswith("succeeded finding gone")
    assert ran.read_text() == "--vacuum-size=500M\n"  # it ran once, and only once
    (kept,) = [r for r in records if r.get("event") == "outcome_not_recorded"]
    assert kept["msg"].startswith(f"action {action_id} on ")
    assert "its commands ran, but its end is not recorded yet: the state database " in kept["msg"]
    assert kept["msg"].endswith("it shows executing until the state database takes writes "
                                "again, then its end is recorded (it does not run again)")
    (late,) = [r for r in records if r.get("event") == "outcome_recorded_late"]
    assert f"action {action_id} on " in late["msg"] and ": succeeded (finding gone" in late["msg"]


#: `true`, which the daemon runs to know the host answers before it starts a fix: at its
#: first run the disk under $STATE fills meanwhile (a log that grew)
TRUE_FILLS = """#!/bin/sh
[ -e {probed} ] || {{ : > {probed}; head -c 64M /dev/zero > {state}/filler 2>/dev/null; }}
exit 0
"""

#: journalctl, but a vacuum (the fix) is counted in $RAN and vacuums nothing; every other use
#: reads the real journal
JOURNALCTL_COUNTS = """#!/bin/sh
case "$*" in
*--vacuum-size=*) printf '%s\\n' "$*" >> {ran}; exit 0 ;;
esac
exec /usr/bin/journalctl "$@"
"""

#: what the daemon finds of this machine: every file system with anything on it is "full"
#: (no margin: a level 0.001 % leaves none to come back by)
FOUND_FULL = {"disk_warn_percent": 0.001, "disk_critical_percent": 100,
              "clear_margin_percent": 0}

#: an investigation that proposed to vacuum the journal for the disk_space incident of / and
#: ended, its daemon ending before it decided the proposal: the next daemon decides it (one
#: cut off before its end proposes afresh instead: its proposal is abandoned)
PROPOSED = """
import asyncio, json
from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.orchestrator.checker import HostChecker
from ai_sysadmin.store import Database, IncidentStore
settings = Settings(ai_name="hal", state_dir={seed!r}, programs={{"journalctl": {journalctl!r}}},
                    thresholds={thresholds!r})
store = IncidentStore(Database(settings.db_path))
host = short_hostname()
asyncio.run(HostChecker(LocalTransport(host), settings, store).check("seed"))
(incident,) = [i for i in store.incidents() if i.rule == "disk_space" and i.subject == "/"]
store.transition(incident.id, "investigating", "agent", "investigated")
store.add_proposal(incident.id, host, "vacuum_journal", json.dumps({{"max_size": "500M"}}),
                   "the journal takes the disk")
store.record_investigation(incident.id, "the journal takes the disk", None)
print(incident.id)
"""


def test_a_fix_the_daemon_decided_as_its_disk_filled_starts_once_the_disk_has_room(
        tmp_path: Path) -> None:
    """The daemon decides a fix; as it asks the host before it starts it, the state
    database's disk fills, so its start cannot be recorded. It stayed approved, this living
    daemon's, which nothing took until a restart ran it, hours later maybe; now the daemon
    tries it again once the disk has room, judged afresh, and it runs once."""
    state, ran, seed = tmp_path / "state", tmp_path / "ran", tmp_path / "seed"
    journalctl, true = tmp_path / "journalctl", tmp_path / "bin" / "true"
    journalctl.write_text(JOURNALCTL_COUNTS.format(ran=ran))
    true.parent.mkdir()
    true.write_text(TRUE_FILLS.format(probed=tmp_path / "probed", state=state))
    for program in (journalctl, true):
        program.chmod(0o755)
    done = subprocess.run([sys.executable, "-c", PROPOSED.format(
        seed=str(seed), journalctl=str(journalctl), thresholds=FOUND_FULL)],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    incident_id = int(done.stdout)
    config = (f'ai_name = "hal"\ncheck_interval = 1\njournal_follow = false\n'
              f'autonomy_level = "auto-safe"\n[programs]\njournalctl = "{journalctl}"\n'
              '[safety]\nverify_settle_seconds = 0\nverify_timeout = 2\n'
              '[llm]\nurl = "http://127.0.0.1:9"\n[knowledge]\nenabled = false\n'
              "[thresholds]\n" + "".join(f"{key} = {value!r}\n" for key, value in
                                         {**QUIET_HOST_WIDE, **FOUND_FULL}.items()))
    show = ("from ai_sysadmin.store import ActionStore\n"
            f"db = Database(STATE)\n(a,) = [a for a in ActionStore(db).find() "
            f"if a.incident_id == {incident_id}]\n"
            "print(a.id, a.state)\n"
            "print(*[r['detail'] for r in db.conn.execute("
            "\"SELECT detail FROM audit WHERE subject=? ORDER BY id\", (f'action:{a.id}',))], "
            "sep='\\n')")
    path = {"PATH": f"{true.parent}:{os.environ['PATH']}"}
    with _running(tmp_path, 1, config=config, seed=seed, checked=False, env=path) as (
            proc, root):
        poll_until(lambda: [r for r in _records(root, "actions") if r.get("event") in (
            "start_not_recorded", "outcome_not_recorded")],
            what="the daemon saying the fix's start is not recorded")
        action_id, decided = _inside(proc, show, state / "state.db").split()[:2]
        assert decided == "approved"
        (root / "filler").unlink()
        poll_until(lambda: ran.exists(), what="the fix run once the disk has room")
        shown = poll_until(lambda: (now := _inside(proc, show, state / "state.db")
                                    ).split()[1] in ("succeeded", "failed") and now,
                           what="the fix's end recorded")
        records = _records(root, "actions")
        _stopped(proc)
    assert ran.read_text() == "--vacuum-size=500M\n"  # it ran once, and only once
    (refused,) = [r for r in records if r.get("event") == "start_not_recorded"]
    assert refused["msg"] == (
        f"action {action_id} on {short_hostname()} (vacuum_journal journal): nothing of it "
        "ran; its start is not recorded: the state database "
        f"{state / 'state.db'} cannot be written: the disk is full (database or disk is "
        "full); nothing of this change was stored; it shows approved and is tried again, "
        "judged afresh, once the state database takes writes again (it runs at most once)")
    (late,) = [r for r in records if r.get("event") == "start_recorded_late"]
    assert late["msg"].startswith(f"action {action_id} on {short_hostname()}: started now "
                                  "that the state database takes writes again, ")
    assert late["msg"].endswith(" s after the state database refused its start")
    # its history says when it started, and why then
    started = [line for line in shown.splitlines() if line.startswith("execution started")]
    assert len(started) == 1 and started[0].endswith(
        " s after the state database refused its start"), shown


#: $1 the state directory: its disk and its logs' mounted as for ``_running``, kept until
#: stdin closes, for daemons started in that mount namespace one after another
HELD_MOUNTS = ('state=$1; mkdir -p "$state" && mount -t tmpfs -o size=4m tmpfs "$state" '
               '&& mkdir "$state/logs" && mount -t tmpfs -o size=16m tmpfs "$state/logs" '
               '&& exec cat')


@dataclass
class _Held:
    """A state disk (and its logs') held by a mount namespace of its own, for daemons and
    workers started there one after another."""

    env: dict[str, str]
    state: Path
    root: Path
    #: the prefix that runs a command in that mount namespace
    inside: list[str]
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    def start(self, *argv: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([*self.inside, *argv], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.started.append(proc)
        return proc

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.inside, *argv], env=self.env, capture_output=True,
                              text=True, timeout=60)


@contextlib.contextmanager
def _held_disk(tmp_path: Path, config: str) -> Iterator[_Held]:
    """``config`` as the configuration, the state directory on a 4 MiB disk of its own,
    mounted once the context begins; what was started there is killed at its end."""
    needs_root("a mount of its own")
    (tmp_path / "config.toml").write_text(config)
    state = tmp_path / "state"
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(tmp_path / "config.toml"),
           "AI_SYSADMIN_STATE_DIR": str(state)}
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "--", "sh",
                               "-c", HELD_MOUNTS, "sh", str(state)], stdin=subprocess.PIPE)
    held = _Held(env, state, Path(f"/proc/{holder.pid}/root{state}"),
                 ["nsenter", f"--mount=/proc/{holder.pid}/ns/mnt", f"--wd={os.getcwd()}", "--"])
    try:
        poll_until(lambda: (held.root / "logs").is_dir()
                   and os.path.ismount(held.root / "logs"), what="the state disk mounted")
        yield held
    finally:
        for proc in held.started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        holder.stdin.close()  # type: ignore[union-attr]
        holder.wait(30)


def test_a_daemon_restarted_on_a_full_state_disk_exits_to_be_started_again(
        tmp_path: Path) -> None:
    """`systemctl restart` while the state disk is full: the daemon stopped cleanly took its
    WAL's files with it, and the new one cannot make them. It exited 2, an error a person
    must mend in ai-sysadmin, which its unit never restarts: it stayed stopped after the
    disk had room. Now it exits 75, which the unit restarts, until the database opens."""
    with _held_disk(tmp_path, 'ai_name = "hal"\ncheck_interval = 1\njournal_follow = false\n'
                    "[agent]\ninvestigate = false\n[knowledge]\nenabled = false\n") as held:
        def checks() -> int:
            return _text(held.root / "logs" / "orchestrator.jsonl").count('"checked ')

        first = held.start(str(BIN), "run")
        poll_until(checks, what="the first daemon's check")
        _stopped(first)
        _fill(held.root)
        restarted = held.run(str(BIN), "run")
        (held.root / "filler").unlink()
        checked = checks()
        again = held.start(str(BIN), "run")  # as its unit does, 5 s later
        poll_until(lambda: checks() > checked, what="a check of the daemon started again")
        _stopped(again)
    state = held.state
    assert (restarted.returncode, restarted.stderr) == (
        75, f"error: cannot open the state database {state / 'state.db'}: the disk is full "
        "(disk I/O error); exit 75: started again by its unit, it watches once the state "
        "database opens; nobody to tell: no notification channel is configured\n")
    # which its unit restarts (5 s later), as it does not an exit 2
    unit = Path(__file__).resolve().parents[2] / "packaging" / "systemd" / "ai.service.in"
    lines = unit.read_text().splitlines()
    assert "Restart=on-failure" in lines and "RestartPreventExitStatus=2" in lines


def test_a_worker_restarted_on_a_full_state_disk_exits_to_be_started_again(
        tmp_path: Path) -> None:
    """The LLM worker's unit is restarted with the daemon's (PartOf=), and its queue lives in
    the state directory: restarted while that disk is full, it cannot make its WAL's files.
    It exited 2, which its unit never restarts, so the daemon, back once the disk had room,
    had no worker for its investigations for good. Now it exits 75, as the daemon does."""
    with _held_disk(tmp_path, 'ai_name = "hal"\n[knowledge]\nenabled = false\n') as held:
        def serving() -> bool:
            return "workers serving it: 1" in held.run(str(BIN), "queue").stdout

        first = held.start(str(BIN), "worker")
        poll_until(serving, what="the first worker serving the queue")
        _stopped(first)
        _fill(held.root)
        restarted = held.run(str(BIN), "worker")
        (held.root / "filler").unlink()
        again = held.start(str(BIN), "worker")  # as its unit does, 5 s later
        poll_until(serving, what="the worker started again serving the queue")
        _stopped(again)
    assert restarted.returncode == 75, restarted.stderr
    assert restarted.stderr.endswith(
        "the disk is full (disk I/O error); exit 75: started again by its unit, it serves the "
        "queue once it opens\n"), restarted.stderr
    unit = Path(__file__).resolve().parents[2] / "packaging" / "systemd" / "llm-worker.service.in"
    lines = unit.read_text().splitlines()
    assert "Restart=on-failure" in lines and "RestartPreventExitStatus=2" in lines


def test_a_daemon_whose_queue_cannot_open_on_a_full_disk_exits_to_be_started_again(
        tmp_path: Path) -> None:
    """The state database still opens (a backup or `ai-sysadmin issues` holds it open, its
    WAL's files stay), the investigations' queue beside it does not: the daemon exited 2,
    which its unit never restarts, as it did where the state database would not open."""
    with _held_disk(tmp_path, 'ai_name = "hal"\ncheck_interval = 1\njournal_follow = false\n'
                    "[knowledge]\nenabled = false\n") as held:
        first = held.start(str(BIN), "run")
        poll_until(lambda: '"checked ' in _text(held.root / "logs" / "orchestrator.jsonl")
                   and (held.root / "queue.db").exists(), what="the first daemon's check")
        # a reader of the state database (a backup, a person's `issues`) keeps its WAL open
        reader = subprocess.Popen(
            [*held.inside, sys.executable, "-c",
             "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
             "c.execute('SELECT COUNT(*) FROM sqlite_master').fetchone(); "
             "print('open', flush=True); sys.stdin.read()", str(held.state / "state.db")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert reader.stdout is not None and reader.stdout.readline() == "open\n"
            _stopped(first)
            _fill(held.root)
            restarted = held.run(str(BIN), "run")
        finally:
            reader.stdin.close()  # type: ignore[union-attr]
            reader.wait(30)
    assert restarted.returncode == 75, restarted.stderr
    assert restarted.stderr.endswith(
        "the disk is full (disk I/O error); exit 75: started again by its unit, it watches "
        "once its queue opens; nobody to tell: no notification channel is configured\n"), \
        restarted.stderr


def test_a_fix_whose_end_a_stop_on_the_full_disk_lost_is_told_and_not_called_a_crash(
        tmp_path: Path) -> None:
    """The daemon runs a fix whose end the full disk refuses, and is stopped (systemctl
    stop) before the disk has room: what it knew is lost with it. The stop said nothing of
    it and the next start called it 'interrupted by a crash'; now the stop's log says which
    fix ran and that its end is lost, and the next start's record says the process ended
    without recording it, not that it crashed; the fix never runs again."""
    ran = tmp_path / "ran"
    journalctl = tmp_path / "journalctl"
    config = (f'ai_name = "hal"\ncheck_interval = 1\njournal_follow = false\n'
              f'autonomy_level = "auto-safe"\n[programs]\njournalctl = "{journalctl}"\n'
              '[safety]\nverify_settle_seconds = 0\n'
              '[llm]\nurl = "http://127.0.0.1:9"\n[knowledge]\nenabled = false\n')
    with _held_disk(tmp_path, config) as held:
        journalctl.write_text(JOURNALCTL.format(ran=ran, state=held.state))
        journalctl.chmod(0o755)
        # decided by a daemon that ended since: the next one runs it at its start
        done = held.run(sys.executable, "-c", APPROVED.format(seed=str(held.state),
                                                              journalctl=str(journalctl)))
        assert done.returncode == 0, done.stderr
        action_id = int(done.stdout.split()[0])
        first = held.start(str(BIN), "run")
        poll_until(lambda: [r for r in _records(held.root, "actions")
                            if r.get("event") == "outcome_not_recorded"],
                   what="the daemon saying the fix's end is not recorded")
        _stopped(first)
        told = _records(held.root, "actions")
        (held.root / "filler").unlink()
        again = held.start(str(BIN), "run")
        show = ("import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\n"
                "print(c.execute('SELECT state FROM actions WHERE id=?', (int(sys.argv[2]),))"
                ".fetchone()[0])\nprint(*[r[0] for r in c.execute(\"SELECT detail FROM audit "
                "WHERE subject=? AND action='action.failed'\", (f'action:{sys.argv[2]}',))], "
                "sep='\\n')")
        settled = poll_until(lambda: (out := held.run(
            sys.executable, "-c", show, str(held.state / "state.db"), str(action_id)).stdout
            ).startswith("failed") and out, what="the next start settling the fix")
        _stopped(again)
    host = short_hostname()
    assert ran.read_text() == "--vacuum-size=500M\n"  # it ran once, and only once
    (lost,) = [r for r in told if r.get("event") == "outcome_lost"]
    assert lost["msg"] == (
        f"action {action_id} on {host} (vacuum_journal journal): its commands ran, each to "
        "exit 0; whether it fixed it was not verified; its end is not recorded (the state "
        "database refused it) and this stop loses it: the next start ends it as failed, its "
        "process having ended without recording its end (it does not run again); a person "
        f"must check {host}")
    assert settled.splitlines()[1:] == [
        "interrupted: the process that ran it ended without recording its end (it crashed, "
        "or stopped while the state database refused writes); not retried"]


def test_a_fix_whose_start_a_stop_on_the_full_disk_left_is_told_and_runs_once_after(
        tmp_path: Path) -> None:
    """The daemon decides a fix whose start the full disk refuses, and is stopped before
    the disk has room: its stop says the fix stays approved, nothing of it ran, for the next
    start to judge afresh; the next start runs it, once."""
    ran = tmp_path / "ran"
    journalctl, true = tmp_path / "journalctl", tmp_path / "bin" / "true"
    config = (f'ai_name = "hal"\ncheck_interval = 1\njournal_follow = false\n'
              f'autonomy_level = "auto-safe"\n[programs]\njournalctl = "{journalctl}"\n'
              '[safety]\nverify_settle_seconds = 0\nverify_timeout = 2\n'
              '[llm]\nurl = "http://127.0.0.1:9"\n[knowledge]\nenabled = false\n'
              "[thresholds]\n" + "".join(f"{key} = {value!r}\n" for key, value in
                                         {**QUIET_HOST_WIDE, **FOUND_FULL}.items()))
    with _held_disk(tmp_path, config) as held:
        journalctl.write_text(JOURNALCTL_COUNTS.format(ran=ran))
        true.parent.mkdir()
        true.write_text(TRUE_FILLS.format(probed=tmp_path / "probed", state=held.state))
        for program in (journalctl, true):
            program.chmod(0o755)
        done = held.run(sys.executable, "-c", PROPOSED.format(
            seed=str(held.state), journalctl=str(journalctl), thresholds=FOUND_FULL))
        assert done.returncode == 0, done.stderr
        held.env["PATH"] = f"{true.parent}:{os.environ['PATH']}"
        first = held.start(str(BIN), "run")
        poll_until(lambda: [r for r in _records(held.root, "actions")
                            if r.get("event") == "start_not_recorded"],
                   what="the daemon saying the fix's start is not recorded")
        _stopped(first)
        told = _records(held.root, "actions")
        (held.root / "filler").unlink()
        again = held.start(str(BIN), "run")
        poll_until(lambda: ran.exists(), what="the next start running the fix")
        _stopped(again)
    (refused,) = [r for r in told if r.get("event") == "start_not_recorded"]
    action_id = refused["msg"].split()[1]
    (lost,) = [r for r in told if r.get("event") == "start_lost"]
    assert lost["msg"] == (
        f"action {action_id} on {short_hostname()} (vacuum_journal journal): nothing of it "
        "ran; its start is not recorded (the state database refused it); it stays approved: "
        "the next start judges it afresh and runs it, at most once")
    assert ran.read_text() == "--vacuum-size=500M\n"  # once
