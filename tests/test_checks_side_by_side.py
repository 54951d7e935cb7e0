"""A person's ``check`` and the daemon's own check of the same host at the same moment: real
processes on one state directory. The daemon's check looks first but is stored last (a slow
host, a busy disk); what it saw is older than what the person's check stored, and does not
undo it: an incident the fresher look resolved is not reopened, nor told again, and one it
saw failing still is not resolved."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from ai_sysadmin.config import short_hostname
from ai_sysadmin.store import Database, IncidentStore
from tests.conftest import BIN
from tests.support.polling import poll_until

#: systemctl on this machine as the test has it: ``list-units`` lists ``units``; in a process
#: started with HOLD_AT set it reads them, says so, and waits for the test's ``go`` before
#: printing them (a deadline, not a pause); other questions get an empty answer
SYSTEMCTL = """#!/bin/sh
here={here}
case "$1" in
list-units)
  listed=$(cat "$here/units")
  if [ -n "$HOLD_AT" ]; then
    : > "$here/arrived"
    n=0
    until [ -e "$here/go" ]; do n=$((n+1)); [ "$n" -gt 2400 ] && exit 3; sleep 0.05; done
  fi
  printf '%s\\n' "$listed";;
list-unit-files) echo '[]';;
esac
"""


def units(active: str) -> str:
    return json.dumps([{"unit": "app.service", "load": "loaded", "active": active,
                        "sub": "failed" if active == "failed" else "running",
                        "description": "the app"}])


@pytest.mark.parametrize(("daemon_saw", "person_saw", "expected"), [
    # restarted by hand meanwhile: the daemon's failed look does not reopen it
    ("failed", "active", "resolved"),
    # failed again meanwhile: the daemon's healthy look does not resolve it
    ("active", "failed", "open")])
def test_a_daemon_check_stored_after_a_fresher_check_does_not_undo_what_that_one_stored(
        tmp_path: Path, daemon_saw: str, person_saw: str, expected: str) -> None:
    here = tmp_path / "host"
    here.mkdir()
    systemctl = here / "systemctl"
    systemctl.write_text(SYSTEMCTL.format(here=here))
    systemctl.chmod(0o755)
    (here / "units").write_text(units("failed"))
    config = tmp_path / "config.toml"
    config.write_text(f'ai_name = "hal"\ncheck_interval = 3600\njournal_follow = false\n'
                      f'[agent]\ninvestigate = false\n[programs]\nsystemctl = "{systemctl}"\n')
    state = tmp_path / "state"
    env = {**os.environ, "AI_SYSADMIN_CONFIG": str(config), "AI_SYSADMIN_STATE_DIR": str(state)}
    store = IncidentStore(Database(state / "state.db"))

    def check() -> None:
        done = subprocess.run([str(BIN), "check"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode in (0, 1), done.stderr  # 1: it found something

    check()  # app.service failed: an incident
    [incident] = [i for i in store.incidents(None) if i.subject == "app.service"]
    assert incident.state == "open"

    (here / "units").write_text(units(daemon_saw))
    daemon = subprocess.Popen([str(BIN), "run"], env={**env, "HOLD_AT": "1"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the daemon's first check has read the units (app.service failed) and waits
        poll_until((here / "arrived").exists, what="the daemon's check to read the units")
        (here / "units").write_text(units(person_saw))
        check()
        assert store.get(incident.id).state == expected
        checked = store.hosts()[0]["last_check"]
        (here / "go").write_text("")  # the daemon's check goes on, and is stored last
        poll_until(lambda: store.hosts()[0]["last_check"] > checked,
                   what="the daemon's check to be stored")
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    assert daemon.returncode == 0, err
    assert store.get(incident.id).state == expected
    told = [e["kind"] for e in store.db.conn.execute(
        "SELECT kind FROM notify_events WHERE fingerprint=? ORDER BY id",
        (incident.fingerprint,))]
    # a person is told once (the reopening told them again); a resolution, the all-clear of
    # that page where the daemon had sent it by then
    assert told[0] == "opened" and set(told[1:]) <= ({"resolved"} if expected == "resolved"
                                                     else set()), told
    assert [h["name"] for h in store.hosts()] == [short_hostname()]
