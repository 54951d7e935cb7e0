"""What the daemon's checker counts as found before is the store's, as of each check: a person's
``issues resolve`` or ``close`` (another process, the same state database) is not undone by
the daemon's memory of its last check, and what a person's ``check`` opened keeps its margin
in the daemon's next checks. A real store; df and systemctl are stand-in programs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.orchestrator.checker import CheckReport, HostChecker
from ai_sysadmin.store import ActionStore, Database, IncidentStore

#: df of one 1 GB file system at /srv, as full as the file ``used`` says (in percent)
DF = """#!/bin/sh
used=$(cat {used})
echo "Filesystem Type 1B-blocks Used Avail Inodes IUsed Mounted on"
echo "/dev/vdb ext4 1000000000 $((used * 10000000)) $(((100 - used) * 10000000)) 1000 10 /srv"
"""

#: systemctl of one unit, app.service, restarted on failure as often as the file ``count`` says
SYSTEMCTL = """#!/bin/sh
case "$1" in
list-units) echo '[{{"unit":"app.service","load":"loaded","active":"active","sub":"running",\
"description":"app"}}]';;
show) printf 'Id=app.service\\nNRestarts=%s\\nResult=success\\nExecMainCode=1\\n\
ExecMainStatus=1\\nExecMainPID=42\\nRestart=on-failure\\nNeedDaemonReload=no\\n' "$(cat {count})";;
*) echo '[]';;
esac
"""


def _program(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def _told(store: IncidentStore, rule: str) -> list[tuple[str, int]]:
    """What was told of ``rule``'s incidents (this machine's own load, say, is not the
    test's)."""
    return [(row[0], row[1]) for row in store.db.conn.execute(
        "SELECT kind, incident_id FROM notify_events WHERE fingerprint LIKE ? ORDER BY id",
        (f"%|{rule}|%",))]


def _opened(report: CheckReport, rule: str) -> int:
    """The one incident of ``rule`` ``report`` opened."""
    assert report.outcome is not None
    (incident_id,) = [i for i in report.outcome.opened
                      if f"|{rule}|" in report.outcome.fingerprints[i]]
    return incident_id


class Host:
    """This machine as ``web1``, its state database, the daemon's checker of it, and a person
    beside it: their own store (another process's connection) and their own ``check``."""

    def __init__(self, tmp_path: Path, settings: Settings) -> None:
        self.settings = settings
        self.store = IncidentStore(Database(settings.db_path))
        self.daemon = HostChecker(LocalTransport("web1"), settings, self.store)
        self.person = IncidentStore(Database(settings.db_path))

    def daemon_checks(self, reason: str = "interval") -> CheckReport:
        return asyncio.run(self.daemon.check(reason))

    def person_checks(self) -> CheckReport:
        return asyncio.run(HostChecker(LocalTransport("web1"), self.settings, self.person,
                                       consumer="check").check("manual"))

    def state(self, incident_id: int) -> str:
        return self.store.get(incident_id, history=0).state


def _disk(tmp_path: Path) -> tuple[Path, Host]:
    used = tmp_path / "used"
    df = _program(tmp_path, "df", DF.format(used=used))
    return used, Host(tmp_path, Settings(ai_name="hal", state_dir=tmp_path / "state",
                                         programs={"df": df}))


def _disk_found(report: CheckReport) -> list[str]:
    return [f.severity.label for f in report.findings if f.rule == "disk_space"]


@pytest.mark.parametrize("how", ["resolved", "closed"])
def test_a_crash_loop_a_person_resolved_is_not_found_again_by_the_daemons_next_check(
        tmp_path: Path, how: str) -> None:
    """app.service looped (its restart count rose from 5 to 9) and the daemon opened an
    incident; a person mended its config and resolved (or closed) it. The unit has not
    restarted since: the daemon's next check, within the crash loop window, neither
    reopens it nor opens another, and nobody is told again."""
    count = tmp_path / "count"
    count.write_text("5\n")
    systemctl = _program(tmp_path, "systemctl", SYSTEMCTL.format(count=count))
    host = Host(tmp_path, Settings(ai_name="hal", state_dir=tmp_path / "state",
                                   programs={"systemctl": systemctl}))
    host.daemon_checks()
    count.write_text("9\n")
    incident_id = _opened(host.daemon_checks(), "crash_loop")
    host.person.transition(incident_id, how, "alice", "fixed its config")

    report = host.daemon_checks()

    assert [f for f in report.findings if f.rule == "crash_loop"] == []
    assert host.state(incident_id) == how
    assert [i.id for i in host.store.incidents(None) if i.rule == "crash_loop"] == [incident_id]
    assert _told(host.store, "crash_loop") == [("opened", incident_id)]


def test_a_disk_a_person_resolved_within_the_margin_is_not_reopened(tmp_path: Path) -> None:
    """/srv warned at 86 % (the level is 85, the margin 2); a person freed space to 84 % and
    resolved the incident. The margin held the daemon's incident, not a resolved one: its
    next check at 84 % finds nothing, as a restarted daemon's would."""
    used, host = _disk(tmp_path)
    used.write_text("86\n")
    incident_id = _opened(host.daemon_checks(), "disk_space")
    used.write_text("84\n")
    host.person.transition(incident_id, "resolved", "alice", "freed space")

    assert _disk_found(host.daemon_checks()) == []
    assert host.state(incident_id) == "resolved"
    used.write_text("86\n")  # over the level again: an incident again
    assert _disk_found(host.daemon_checks()) == ["warning"]
    assert host.state(incident_id) == "reopened"


def test_a_disk_a_persons_check_found_keeps_its_margin_in_the_daemons_checks(
        tmp_path: Path) -> None:
    """The daemon saw /srv at 84 %; a person's `check` saw it at 86 % and opened an incident.
    The daemon's next checks, at 84 % and 85 %, keep it (the margin of what was found, by
    whichever check), instead of resolving it and reopening it: one incident, told once."""
    used, host = _disk(tmp_path)
    used.write_text("84\n")
    assert _disk_found(host.daemon_checks()) == []
    used.write_text("86\n")
    incident_id = _opened(host.person_checks(), "disk_space")

    for percent in (84, 85, 84):
        used.write_text(f"{percent}\n")
        assert _disk_found(host.daemon_checks()) == ["warning"]
    assert host.state(incident_id) == "open"
    assert _told(host.store, "disk_space") == [("opened", incident_id)]


def test_a_fixs_verification_that_saw_the_disk_well_holds_it_by_no_margin(
        tmp_path: Path) -> None:
    """A fix of /srv (at 90 %) runs; its verification's looks do not resolve the incident,
    which stays live in the store. One that saw 82 % judged the disk well: the next, at 84 %,
    does not find it again by the margin (the store's live incident is not a look that found
    it); once verified, a check at 84 % resolves it."""
    used, host = _disk(tmp_path)
    used.write_text("90\n")
    incident_id = _opened(host.daemon_checks(), "disk_space")
    actions = ActionStore(host.store.db)
    action = actions.create(incident_id=incident_id, proposal_id=None, host="web1",
                            kind="run_command", params={}, subject="/srv", risk="low", plan={},
                            outcome="approved", reason="clean up", state="approved")
    assert actions.claim(action.id, "executor") is not None
    actions.ran(action.id, [], at=time.time())

    for percent in (82, 84):
        used.write_text(f"{percent}\n")
        assert _disk_found(host.daemon_checks("verify")) == []
        assert host.state(incident_id) == "open"  # its verification's to end
    actions.verified(action.id, "the disk is below its level")
    host.daemon_checks()
    assert host.state(incident_id) == "resolved"
