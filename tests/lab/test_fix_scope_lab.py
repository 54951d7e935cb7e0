"""A fix whose parameters go past what its incident needs waits for a person, at every level:
a journal vacuum that keeps almost nothing (a prompt-injected model could erase the very lines
that carried the injection), a kill of a process the incident is not about, a clean of a
directory on another file system than the full one. Ordinary fixes keep their risk. Judged in
the lab by what its systemd, journald and df report, at ``auto-full`` (the level that runs the
most on its own)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.executor import Executor
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import Action, Database, IncidentStore

pytestmark = pytest.mark.lab
HOST = "scopelab"
SLEEPER = "[Service]\nExecStart=/bin/sleep infinity\n"


@pytest.fixture(scope="module")
def lab() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        for name in ("hog.service", "bystander.service"):
            apply(sb, "install_unit", {"name": name, "text": SLEEPER})
            apply(sb, "start_unit", {"name": name})
        sb.exec(["mkdir", "-p", "/var/cache/scope-lab"], check=True)
        yield sb


@pytest.fixture
def executor(lab: Sandbox, tmp_path: Path) -> Executor:
    # the state directory the in-process CLI reads too (tests/conftest.py)
    settings = Settings(ai_name="labtest", state_dir=tmp_path / "state",
                        autonomy_level="auto-full", safety={"clean_paths": ["/var/cache"]})
    return Executor(settings, IncidentStore(Database(settings.db_path)),
                    {HOST: SandboxTransport(lab)})


def opened(executor: Executor, rule: str, subject: str) -> int:
    finding = Finding(HOST, rule, subject, Severity.CRITICAL, f"{rule} of {subject}")
    executor.store.record_check(HOST, [finding], {rule})
    return next(i.id for i in executor.store.incidents() if (i.rule, i.subject) == (rule,
                                                                                       subject))


def propose(executor: Executor, kind: str, incident: int | None = None, **params: object
            ) -> Action:
    return asyncio.run(executor.propose(HOST, kind, params, incident_id=incident))


def main_pid(lab: Sandbox, unit: str) -> int:
    return int(lab.exec(["systemctl", "show", "-p", "MainPID", "--value", unit],
                        check=True).stdout)


def journal_bytes(lab: Sandbox) -> int:
    shown = lab.exec(["du", "-sb", "--", "/var/log/journal", "/run/log/journal"]).stdout
    return sum(int(line.split()[0]) for line in shown.splitlines())


def mount_of(lab: Sandbox, path: str) -> str:
    return lab.exec(["df", "--output=target", "--", path], check=True).stdout.split("\n")[1]


def test_a_vacuum_that_keeps_almost_no_journal_waits_for_a_person(executor, lab, cli) -> None:
    lab.exec(["logger", "-t", "scope-lab", "a line the journal now holds"], check=True)
    assert journal_bytes(lab) > 1024
    full = opened(executor, "disk_space", mount_of(lab, "/var/log"))
    wiped = propose(executor, "vacuum_journal", full, max_size="1K")
    # old: medium, and at auto-full it ran on its own
    assert (wiped.state, wiped.risk) == ("pending", "high"), wiped
    assert "it keeps 1K of the journal (it holds " in wiped.reason
    assert "less than 100.0M: the logs incidents are read from would go" in wiped.reason
    # a person reads why, in the list of what waits for them
    code, out, _ = cli("approve", "list", "--json")
    assert code == 0 and [a["reason"] for a in json.loads(out)] == [wiped.reason]
    # the ordinary fix of a full /var keeps its risk and runs
    ordinary = propose(executor, "vacuum_journal", full, max_size="500M")
    assert (ordinary.state, ordinary.risk) == ("approved", "low"), ordinary


def test_the_person_reads_how_big_the_journal_is(executor, lab) -> None:
    # the lab's journal is a few MiB: keeping 90M deletes nothing, but a size read too small
    # (by a reader outside the journal's groups) never lets a vacuum run on its own
    assert journal_bytes(lab) < 90 * 1024 * 1024
    kept = propose(executor, "vacuum_journal", max_size="90M")
    assert (kept.state, kept.risk) == ("pending", "high"), kept
    held = kept.reason.split("(it holds ")[1].split(" now)")[0]
    assert held[-1] in "BKM" and 0 < float(held[:-1]) < 90, kept.reason


def test_a_kill_of_a_process_the_incident_is_not_about_waits_for_a_person(executor,
                                                                         lab) -> None:
    runaway = opened(executor, "runaway_process", "hog.service")
    other = propose(executor, "kill_process", runaway, pid=main_pid(lab, "bystander.service"))
    # old: medium, killed on its own at auto-full
    assert (other.state, other.risk) == ("pending", "high"), other
    assert ("the incident is about runaway_process of hog.service, not bystander.service"
            in other.reason)
    alone = propose(executor, "kill_process", pid=main_pid(lab, "bystander.service"))
    assert (alone.state, alone.risk) == ("pending", "high")
    assert "no incident is about it, not bystander.service" in alone.reason
    own = propose(executor, "kill_process", runaway, pid=main_pid(lab, "hog.service"))
    assert (own.state, own.risk) == ("approved", "medium"), own


def test_a_clean_on_another_file_system_than_the_full_one_waits_for_a_person(executor,
                                                                           lab) -> None:
    mount = mount_of(lab, "/var/cache/scope-lab")
    elsewhere = opened(executor, "disk_space", f"{mount.rstrip('/')}/elsewhere")
    other = propose(executor, "clean_directory", elsewhere, path="/var/cache/scope-lab")
    # old: medium, deleted on its own at auto-full
    assert (other.state, other.risk) == ("pending", "high"), other
    assert f"not the space on {mount} (/var/cache/scope-lab is there)" in other.reason
    unit = opened(executor, "failed_unit", "hog.service")
    assert propose(executor, "clean_directory", unit, path="/var/cache/scope-lab").risk == "high"
    missing = propose(executor, "clean_directory", elsewhere, path="/var/cache/not-there")
    assert missing.risk == "high" and "could not be read" in missing.reason
    full = opened(executor, "disk_space", mount)
    ordinary = propose(executor, "clean_directory", full, path="/var/cache/scope-lab")
    assert (ordinary.state, ordinary.risk) == ("approved", "medium"), ordinary
