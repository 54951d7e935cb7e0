"""A daemon restarted on its full state disk (or a machine rebooted with /var full) cannot open
its state database: it exits for its unit to start it again every few seconds, and was silent
all along, the disk_space incident of that very disk included. Now it tells a person around
the store, once an outage: what was told is kept in the unit's runtime directory, which its
restarts keep (``$RUNTIME_DIRECTORY``, here a directory of the test's), and once the
database opens and a check is stored, "records again" goes the usual way. A real daemon, a
real 4 MiB tmpfs, a stand-in Gotify on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import BIN
from tests.lab.daemon_runner import QUIET_HOST_WIDE
from tests.notify.conftest import TOKEN, secret_file
from tests.notify.servers import GotifyServer
from tests.orchestrator.test_store_refused_loops import _fill, _held_disk, _stopped, _text
from tests.support.polling import poll_until

DOWN = ("[hal] cannot start: the state database cannot be opened: the disk is full; hal is not "
        "watching until it is mended")
BACK = "[hal] records again: its state database can be written"


def _config(tmp_path: Path, gotify: GotifyServer) -> str:
    return (f'ai_name = "hal"\ncheck_interval = 1\njournal_follow = false\n'
            f'gotify_url = "{gotify.url}"\n'
            f'gotify_token_file = "{secret_file(tmp_path / "gotify.token", TOKEN)}"\n'
            "[agent]\ninvestigate = false\n[knowledge]\nenabled = false\n"
            # this machine's load is no part of it: a busy machine's incident would be told too
            "[thresholds]\n" + "".join(f"{k} = {v!r}\n" for k, v in QUIET_HOST_WIDE.items()))


def test_a_daemon_that_cannot_open_its_full_state_disk_tells_a_person_once(
        tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    with GotifyServer(TOKEN) as gotify, _held_disk(tmp_path, _config(tmp_path, gotify)) as held:
        held.env["RUNTIME_DIRECTORY"] = str(runtime)

        def checks() -> int:
            return _text(held.root / "logs" / "orchestrator.jsonl").count('"checked ')

        first = held.start(str(BIN), "run")
        poll_until(checks, what="the first daemon's check")
        _stopped(first)
        _fill(held.root)
        # its unit starts it again every 5 s: three starts, one message
        starts = [held.run(str(BIN), "run") for _ in range(3)]
        told = [t for t in gotify.titles() if t.startswith("[hal] cannot")]
        kept = (runtime / "store-down.json").exists()
        (held.root / "filler").unlink()
        again = held.start(str(BIN), "run")
        poll_until(lambda: BACK in gotify.titles(), what="'records again' told")
        _stopped(again)
    state = held.state
    assert [s.returncode for s in starts] == [75, 75, 75], starts[0].stderr
    opening = (f"error: cannot open the state database {state / 'state.db'}: the disk is full "
               "(disk I/O error); exit 75: started again by its unit, it watches once the "
               "state database opens; ")
    assert starts[0].stderr == opening + "a person is told (gotify)\n"
    assert all(s.stderr.startswith(opening + "a person was told at ") for s in starts[1:])
    assert told == [DOWN] and kept
    (message,) = [m for m in gotify.accepted if m["title"] == DOWN]
    assert message["priority"] == 8
    lines = message["message"].splitlines()
    assert lines[0].startswith(f"cannot open the state database {state / 'state.db'}: ")
    assert lines[2].startswith(f"> {state} is 100% full: ") and lines[2].endswith(" 0 B free")
    assert lines[-1] == f"Next: df -h {state}"
    # said once more, when it is over, and the record is gone with the outage
    assert [t for t in gotify.titles() if t in (DOWN, BACK)] == [DOWN, BACK]
    assert not (runtime / "store-down.json").exists()


def test_a_daemon_started_by_hand_on_a_full_state_disk_says_nobody_is_told(
        tmp_path: Path) -> None:
    # no runtime directory keeps it once: a supervisor restarting it would tell it each time
    with GotifyServer(TOKEN) as gotify, _held_disk(tmp_path, _config(tmp_path, gotify)) as held:
        held.env.pop("RUNTIME_DIRECTORY", None)
        first = held.start(str(BIN), "run")
        poll_until(lambda: '"checked ' in _text(held.root / "logs" / "orchestrator.jsonl"),
                   what="the first daemon's check")
        _stopped(first)
        _fill(held.root)
        started = held.run(str(BIN), "run")
    assert started.returncode == 75, started.stderr
    assert started.stderr.endswith("; nobody is told (started by hand: no runtime directory "
                                   "keeps it once)\n"), started.stderr
    assert not [t for t in gotify.titles() if t.startswith("[hal] cannot")]
