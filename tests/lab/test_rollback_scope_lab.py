"""A NixOS generation rollback undoes everything the current generation brought. It runs
without a person (medium risk, ``auto-full``) only where that generation was made shortly
before the incident's trouble began, so that it may be its cause; one made long before, or
after the trouble began, waits for a person, and with no earlier generation there is nothing to
roll back to. Judged in the lab from the system profile's generation links there (their own
times, as ``find -printf`` reads them: no lock that only root may take, whatever the host's
time zone)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.executor import Executor
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import Action, Database, IncidentStore

pytestmark = pytest.mark.lab
HOST = "nixlab"
PROFILES = "/nix/var/nix/profiles"


@pytest.fixture(scope="module")
def lab() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        sb.write_file("/etc/os-release", 'NAME=NixOS\nID=nixos\nVERSION_ID="25.05"\n')
        # a zone far from UTC: the listing's local times must not move the generations
        sb.write_file("/etc/timezone", "Pacific/Kiritimati\n")
        sb.exec(["ln", "-sfn", "/usr/share/zoneinfo/Pacific/Kiritimati", "/etc/localtime"],
                check=True)
        yield sb


def generations(lab: Sandbox, made: dict[int, float], current: int) -> None:
    """The system profile's generation links (their store paths need not exist), each
    made at its time."""
    lab.exec(["sh", "-c", f"mkdir -p {PROFILES} && rm -f {PROFILES}/system*"], check=True)
    for number, at in made.items():
        link = f"{PROFILES}/system-{number}-link"
        lab.exec(["ln", "-s", f"/nix/store/{'a' * 32}-nixos-system-{number}", link], check=True)
        lab.exec(["touch", "-h", "-d", f"@{at:.0f}", link], check=True)
    lab.exec(["ln", "-sfn", f"system-{current}-link", f"{PROFILES}/system"], check=True)


@pytest.fixture
def executor(lab: Sandbox, tmp_path: Path) -> Executor:
    settings = Settings(ai_name="labtest", state_dir=tmp_path / "state",
                        autonomy_level="auto-full")
    return Executor(settings, IncidentStore(Database(settings.db_path)),
                    {HOST: SandboxTransport(lab)})


def opened(executor: Executor, rule: str, subject: str) -> int:
    finding = Finding(HOST, rule, subject, Severity.CRITICAL, f"{rule} of {subject}")
    executor.store.record_check(HOST, [finding], {rule})
    return next(i.id for i in executor.store.incidents() if (i.rule, i.subject) == (rule,
                                                                                       subject))


def rollback(executor: Executor, incident: int | None) -> Action:
    return asyncio.run(executor.propose(HOST, "nix_rollback_generation", {},
                                        incident_id=incident))


def test_a_rollback_of_the_generation_made_just_before_the_trouble_runs(executor, lab) -> None:
    now = time.time()
    generations(lab, {41: now - 40 * 86400, 42: now - 2 * 3600}, current=42)
    action = rollback(executor, opened(executor, "failed_unit", "web.service"))
    assert (action.state, action.risk) == ("approved", "medium"), action
    assert "switch from generation 42 back to 41" in action.reason


def test_a_rollback_of_a_generation_from_long_before_waits_for_a_person(executor, lab) -> None:
    now = int(time.time())  # whole seconds, as the links are touched: no minute rounded up
    generations(lab, {7: now - 90 * 86400, 8: now - 30 * 86400}, current=8)
    action = rollback(executor, opened(executor, "disk_space", "/"))
    # old: medium for any incident, run on its own at auto-full
    assert (action.state, action.risk) == ("pending", "high"), action
    assert "generation 8 has been the system since " in action.reason
    assert "30 days before this trouble began" in action.reason
    made = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(now - 30 * 86400))
    assert made in action.reason  # the host's own zone (UTC+14) did not move it


def test_a_generation_made_after_the_trouble_began_is_not_its_cause(executor, lab) -> None:
    incident = opened(executor, "failed_unit", "web.service")
    now = time.time()
    generations(lab, {3: now - 20 * 86400, 4: now + 3600}, current=4)
    action = rollback(executor, incident)
    assert (action.state, action.risk) == ("pending", "high"), action
    assert "after this trouble began" in action.reason


def test_with_no_earlier_generation_there_is_nothing_to_roll_back_to(executor, lab) -> None:
    generations(lab, {1: time.time() - 3600}, current=1)
    action = rollback(executor, opened(executor, "failed_unit", "web.service"))
    assert action.state == "refused", action
    assert "generation 1 is the system's oldest" in action.reason


def test_a_rollback_no_incident_asks_for_or_unreadable_waits_for_a_person(executor,
                                                                          lab) -> None:
    now = time.time()
    generations(lab, {41: now - 40 * 86400, 42: now - 2 * 3600}, current=42)
    alone = rollback(executor, None)
    assert (alone.state, alone.risk) == ("pending", "high") and \
        "no incident is about it" in alone.reason, alone
    lab.exec(["rm", "-rf", PROFILES], check=True)
    unread = rollback(executor, opened(executor, "failed_unit", "web.service"))
    assert (unread.state, unread.risk) == ("pending", "high"), unread
    assert ("which generation is current could not be read (the generations in "
            "/nix/var/nix/profiles could not be read") in unread.reason, unread.reason
