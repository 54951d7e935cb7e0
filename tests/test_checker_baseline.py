"""Rates are measured from the last interval check: a check that verifies a fix (or answers an
approval) between two interval checks does not change what the runaway rule sees."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.rules import RULES_BY_NAME
from ai_sysadmin.orchestrator.checker import CheckReport, HostChecker
from ai_sysadmin.store import Database, IncidentStore
from tests.support.polling import until

#: ps for one long-lived (started 200,000 s before the test), mostly idle process (0.5% over
#: its life) that spins on four cores from the second written in SPIN on; its columns are the
#: collector's (parsers.PS_CGROUP_COLUMNS)
PS = """\
#!/bin/sh
cpu=1000
if [ -r {spin} ]; then cpu=$((1000 + 4 * ($(date +%s) - $(cat {spin})))); fi
echo "4242 1 S alice 0.5 0.1 20000 $(($(date +%s) - {started})) $cpu - /usr/bin/node server.js"
"""
SUSTAINED = 2.0


def runaway(report: CheckReport) -> list[str]:
    return [f.summary for f in report.findings if f.rule == "runaway_process"]


async def clock_past(moment: float) -> None:
    """Wait until the wall clock passes ``moment``: a rate needs time to pass, nothing else."""
    deadline = time.monotonic() + moment - time.time() + 5
    while time.time() < moment:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


def _spinning(tmp_path: Path, stored: bool) -> tuple[Path, HostChecker]:
    """A checker of this machine whose ps lists a node up for days that starts to spin at
    the moment written to the file returned (the checker's store: ``stored``)."""
    spin, ps = tmp_path / "spin-since", tmp_path / "ps"
    ps.write_text(PS.format(spin=spin, started=int(time.time()) - 200_000))
    ps.chmod(0o755)
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", programs={"ps": str(ps)},
                        thresholds={"runaway_min_seconds": SUSTAINED})
    store = IncidentStore(Database(settings.db_path)) if stored else None
    return spin, HostChecker(LocalTransport("here"), settings, store)


@pytest.mark.parametrize("between", ["verify", "approval"])
def test_a_check_between_two_interval_checks_leaves_the_rate_to_the_interval(
    tmp_path: Path, between: str
) -> None:
    spin, checker = _spinning(tmp_path, stored=False)

    async def checks() -> list[CheckReport]:
        first = await checker.check("interval")
        spin.write_text(f"{int(first.snapshot.taken_at)}\n")  # it starts spinning now
        await clock_past(first.snapshot.taken_at + SUSTAINED + 0.2)
        middle = await checker.check(between)
        second = await checker.check("interval")
        third = await checker.check("interval")  # at once: too soon to measure a rate
        return [first, middle, second, third]

    first, middle, second, third = asyncio.run(checks())
    assert runaway(first) == []
    span = second.snapshot.taken_at - first.snapshot.taken_at
    assert span >= SUSTAINED
    [summary] = runaway(second)
    # measured over the whole interval, not over the moment since the check in between
    assert summary.startswith("node (pid 4242) has used ")
    assert summary.endswith(f"% CPU for {span:.0f} s")
    assert runaway(middle) != []  # the check in between saw it too, from the same baseline
    # an interval check does move the baseline: the next one, a moment later, measures from
    # the one before it (the newest runaway_min_seconds back), not by the process's lifetime
    # share, which is low
    [again] = runaway(third)
    assert again.endswith(f"% CPU for {third.snapshot.taken_at - first.snapshot.taken_at:.0f} s")


def _counting_systemctl(tmp_path: Path, unit_files: str) -> tuple[Path, Path]:
    """A systemctl that notes each call's verb and lists ``unit_files`` (JSON) as the unit
    files; returns it and the file of calls."""
    calls = tmp_path / "calls"
    systemctl = tmp_path / "systemctl"
    (tmp_path / "unit-files.json").write_text(unit_files)
    systemctl.write_text(
        f'#!/bin/sh\necho "$1" >> {calls}\n'
        f'if [ "$1" = list-unit-files ]; then cat {tmp_path / "unit-files.json"}; '
        'else echo "[]"; fi\n')
    systemctl.chmod(0o755)
    return systemctl, calls


def _slow_listing(tmp_path: Path, verb: str = "list-unit-files"
                  ) -> tuple[Settings, Path, Path]:
    """Settings whose counting systemctl lists one clean unit file, and takes a second for
    ``verb`` while the file returned (the third) exists; and the file of calls."""
    systemctl, calls = _counting_systemctl(
        tmp_path, '[{"unit_file": "a.service", "state": "enabled"}]')
    slow = tmp_path / "slow"
    systemctl.write_text(systemctl.read_text().replace(
        "\nif ", f'\n[ "$1" = {verb} ] && [ -e {slow} ] && sleep 1\nif ', 1))
    return (Settings(ai_name="hal", state_dir=tmp_path / "state",
                     programs={"systemctl": str(systemctl)}, unit_files_every=3600),
            calls, slow)


def _checks(tmp_path: Path, systemctl: Path,
            reasons: tuple[str | tuple[str, tuple[str, ...]], ...]) -> list[CheckReport]:
    """The checks of ``reasons``, each a reason or (reason, the sections it reads afresh)."""
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                        programs={"systemctl": str(systemctl)}, unit_files_every=3600)
    checker = HostChecker(LocalTransport("here"), settings, store=None)

    async def checks() -> list[CheckReport]:
        return [await (checker.check(reason) if isinstance(reason, str)
                       else checker.check(*reason)) for reason in reasons]

    reports = asyncio.run(checks())
    for report in reports:
        assert "unit_files" not in report.errors and "unit_load_error" in report.judged_rules
    return reports


def test_the_daemons_checks_keep_the_unit_files_and_a_fix_or_a_person_reads_them(
    tmp_path: Path,
) -> None:
    """The unit files (systemd works out every file's state: ~2 ms of its CPU a file) are
    read by the daemon's checks, interval and journal, at most every unit_files_every; a
    check made for one incident (a fix's verification, an approval) reads them anew where
    its rule judges from them, and a person's `check` always."""
    systemctl, calls = _counting_systemctl(
        tmp_path, '[{"unit_file": "a.service", "state": "enabled"}]')
    failed, load_error = (RULES_BY_NAME[rule].requires for rule in ("failed_unit",
                                                                     "unit_load_error"))
    reasons = ("interval", "journal", "interval", ("verify", failed), "verify", "journal",
               ("verify", load_error), "interval", ("approval", failed),
               ("approval", load_error), "cli")
    reports = _checks(tmp_path, systemctl, reasons)
    listed = calls.read_text().split()
    # the first interval check, the verification and approval of a unit file's incident,
    # a check for no incident (verify) and cli read them; the rest kept the reading
    assert listed.count("list-units") == len(reasons)
    assert listed.count("list-unit-files") == 5
    assert all(r.snapshot.unit_files == {"a.service": "enabled"} for r in reports)


def test_a_listing_that_shows_a_broken_unit_file_serves_no_later_check(tmp_path: Path) -> None:
    """While a unit file cannot be parsed, every check reads the unit files again: the
    incident ends with the check that first sees the file mended, not an hour later."""
    systemctl, calls = _counting_systemctl(
        tmp_path, '[{"unit_file": "broken.service", "state": "bad"}]')
    reports = _checks(tmp_path, systemctl, ("interval", "journal", "interval"))
    assert calls.read_text().split().count("list-unit-files") == 3
    for report in reports:
        [broken] = [f for f in report.findings if f.rule == "unit_load_error"]
        assert "broken.service" in broken.summary


@pytest.mark.parametrize("between", ["verify", "approval", "journal"])
def test_a_check_soon_after_an_interval_check_keeps_a_long_lived_runaway_found(
    tmp_path: Path, between: str
) -> None:
    """Seconds after the interval check that found it, a check (a fix's verification, an
    approval, one the journal woke) cannot measure a rate over runaway_min_seconds from it:
    it measures from the interval check before, and the incident stays open; it does not
    fall back to the lifetime share of a process idle for days, which would resolve it."""
    spin, checker = _spinning(tmp_path, stored=True)
    store = checker.store
    assert store is not None

    async def checks() -> list[CheckReport]:
        first = await checker.check("interval")
        spin.write_text(f"{int(first.snapshot.taken_at)}\n")  # it starts spinning now
        await clock_past(first.snapshot.taken_at + SUSTAINED + 0.2)
        found = await checker.check("interval")
        return [first, found, await checker.check(between), await checker.check(between)]

    first, found, *soon = asyncio.run(checks())
    assert runaway(first) == []
    [incident] = [i for i in store.incidents(None) if i.rule == "runaway_process"]
    for report in soon:
        [summary] = runaway(report)
        span = report.snapshot.taken_at - first.snapshot.taken_at
        assert summary.endswith(f"% CPU for {span:.0f} s")  # measured from the first
    assert store.get(incident.id, history=0).state == "open"
    states = [e.to_state for e in store.get(incident.id, history=None).events if e.to_state]
    assert "resolved" not in states


def test_a_runaway_is_found_again_soon_after_the_clock_is_set_back_a_year(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's clock ran a year ahead (this process's, stepped as libfaketime would)
    while a process spun; NTP sets it right. The runaway rule judges nothing until it has
    measured runaway_min_seconds on the clock as it is now (its incident stays open), then
    finds the process again, where it judged nothing until the clock caught up: no earlier
    look was ever old enough."""
    spin, checker = _spinning(tmp_path, stored=False)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 365 * 86400)

    async def checks() -> list[CheckReport]:
        first = await checker.check("interval")
        spin.write_text(f"{int(real())}\n")  # it starts spinning now (ps reads the host's date)
        await clock_past(first.snapshot.taken_at + SUSTAINED + 0.2)
        ahead = await checker.check("interval")
        monkeypatch.setattr(time, "time", real)  # NTP sets the clock right
        stepped = await checker.check("interval")
        # the checks come more often than runaway_min_seconds, as the daemon's do (a minute
        # apart, five minutes): a rate is measured from an earlier one old enough
        last = stepped
        while last.snapshot.taken_at < stepped.snapshot.taken_at + SUSTAINED + 0.2:
            await clock_past(last.snapshot.taken_at + SUSTAINED / 4)
            last = await checker.check("interval")
        return [ahead, stepped, last]

    ahead, stepped, after = asyncio.run(checks())
    assert runaway(ahead) != []
    assert "runaway_process" not in stepped.judged_rules
    [summary] = runaway(after)
    assert summary.startswith("node (pid 4242) has used ")


def test_a_runaway_stays_open_when_the_machine_resumes_from_an_hours_sleep(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A VM resumed after an hour asleep (or NTP stepping a slow clock forward): the wall
    clock jumps an hour, the monotonic one does not. The check after it measures no share
    over that hour, in which the hog did not run (a share near nothing resolved its
    incident, and the next minutes opened it again); it measures afresh and finds it again."""
    spin, checker = _spinning(tmp_path, stored=True)
    store = checker.store
    assert store is not None
    real = time.time

    async def checks() -> CheckReport:
        first = await checker.check("interval")
        spin.write_text(f"{int(first.snapshot.taken_at)}\n")  # it starts spinning now
        await clock_past(first.snapshot.taken_at + SUSTAINED + 0.2)
        assert runaway(await checker.check("interval")) != []
        monkeypatch.setattr(time, "time", lambda: real() + 3600)  # an hour asleep
        resumed = await checker.check("interval")
        assert "runaway_process" not in resumed.judged_rules
        last = resumed
        while last.snapshot.taken_at < resumed.snapshot.taken_at + SUSTAINED + 0.2:
            await clock_past(last.snapshot.taken_at + SUSTAINED / 4)
            last = await checker.check("interval")
        return last

    assert runaway(asyncio.run(checks())) != []
    [incident] = [i for i in store.incidents(None) if i.rule == "runaway_process"]
    states = [e.to_state for e in store.get(incident.id, history=None).events if e.to_state]
    assert states == ["open"]


def test_a_listing_whose_second_step_failed_leaves_no_older_reading_to_keep(
    tmp_path: Path,
) -> None:
    """A person's check lists a file systemd cannot parse, and asking systemd where it leads
    fails: the daemon's next check must not judge from the clean listing it kept before
    (it resolved the incident that check had just opened)."""
    systemctl, calls = _counting_systemctl(
        tmp_path, '[{"unit_file": "a.service", "state": "enabled"}]')
    text = systemctl.read_text()
    systemctl.write_text(text.replace("\nif ", '\n[ "$1" = show ] && exit 1\nif ', 1))
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                        programs={"systemctl": str(systemctl)}, unit_files_every=3600)
    checker = HostChecker(LocalTransport("here"), settings, store=None)

    async def checks() -> list[CheckReport]:
        first = await checker.check("interval")
        (tmp_path / "unit-files.json").write_text(
            '[{"unit_file": "broken.service", "state": "bad"}]')
        return [first, await checker.check("cli"), await checker.check("interval")]

    first, person, daemon = asyncio.run(checks())
    assert "unit_file_loads" in person.errors
    assert calls.read_text().split().count("list-unit-files") == 3
    assert daemon.snapshot.unit_files == {"broken.service": "bad"}
    assert [f.subject for f in daemon.findings if f.rule == "unit_load_error"] == \
        [f.subject for f in person.findings if f.rule == "unit_load_error"] != []


def test_the_daemons_kept_listing_does_not_resolve_what_a_persons_check_found_since(
    tmp_path: Path,
) -> None:
    """The daemon keeps a clean unit-file listing; a unit file breaks and a person's `check`
    (another process: a checker of its own) opens the incident. The daemon's next checks must
    not resolve it from the listing kept from before (it was resolved, then opened again up
    to an hour later): they read the unit files again and find the file broken too."""
    systemctl, calls = _counting_systemctl(
        tmp_path, '[{"unit_file": "a.service", "state": "enabled"}]')
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                        programs={"systemctl": str(systemctl)}, unit_files_every=3600)
    store = IncidentStore(Database(settings.db_path))
    daemon = HostChecker(LocalTransport("here"), settings, store)
    person = HostChecker(LocalTransport("here"), settings, store, consumer="check")

    async def checks() -> list[CheckReport]:
        reports = [await daemon.check("interval")]
        (tmp_path / "unit-files.json").write_text(
            '[{"unit_file": "broken.service", "state": "bad"}]')
        reports.append(await person.check("cli"))
        for _ in range(3):
            reports.append(await daemon.check("interval"))
        return reports

    first, seen, *later = asyncio.run(checks())
    assert [f.subject for f in seen.findings if f.rule == "unit_load_error"] == \
        ["broken.service"]
    [incident] = [i for i in store.incidents(None) if i.rule == "unit_load_error"]
    states = [e.to_state for e in store.get(incident.id, history=None).events if e.to_state]
    assert states == ["open"]
    # the daemon read the listing again at its next check (a listing that shows trouble is
    # read at each check while it does) and judges from it from then on
    assert calls.read_text().split().count("list-unit-files") == 1 + 1 + 2
    assert [f.subject for f in later[-1].findings if f.rule == "unit_load_error"] == \
        ["broken.service"]


def test_what_the_daemon_saw_itself_beside_a_kept_listing_resolves_from_a_fresh_one(
    tmp_path: Path,
) -> None:
    """A unit that fails to load shows in the unit list, read at every check: the daemon saw
    it itself, beside the unit-file listing it keeps. The first check that no longer shows
    it judged in part from the kept listing, which resolves nothing: it reads the listing
    again, and the check after resolves the incident."""
    systemctl, calls = _counting_systemctl(
        tmp_path, '[{"unit_file": "a.service", "state": "enabled"}]')
    units = tmp_path / "units.json"
    units.write_text("[]")
    systemctl.write_text(systemctl.read_text().replace(
        'else echo "[]"', f'elif [ "$1" = list-units ]; then cat {units}; else echo "[]"'))
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                        programs={"systemctl": str(systemctl)}, unit_files_every=3600)
    store = IncidentStore(Database(settings.db_path))
    daemon = HostChecker(LocalTransport("here"), settings, store)

    async def checks() -> list[CheckReport]:
        reports = [await daemon.check("interval")]
        units.write_text('[{"unit": "b.service", "load": "error", "active": "inactive", '
                         '"sub": "dead"}]')
        reports.append(await daemon.check("interval"))
        units.write_text("[]")
        reports.append(await daemon.check("interval"))
        reports.append(await daemon.check("interval"))
        return reports

    first, seen, gone, fresh = asyncio.run(checks())
    assert seen.snapshot.kept == {"unit_files"}
    [opened] = seen.outcome.opened
    assert store.get(opened, history=0).rule == "unit_load_error"
    assert gone.outcome.resolved == [] and gone.outcome.left_to_fresh == [opened]
    assert fresh.snapshot.kept == frozenset() and fresh.outcome.resolved == [opened]
    assert calls.read_text().split().count("list-unit-files") == 2


def test_a_persons_check_stored_after_the_daemons_next_one_is_not_undone_by_a_kept_listing(
    tmp_path: Path,
) -> None:
    """A person's check begins a moment before the daemon's, which keeps the unit-file
    listing and so ends first; the person's, which reads the listing (slow), opens the
    incident afterwards. The daemon's check after that judges from the same kept listing:
    it must not resolve what the person's look saw."""
    settings, calls, slow = _slow_listing(tmp_path)
    store = IncidentStore(Database(settings.db_path))
    daemon = HostChecker(LocalTransport("here"), settings, store)
    person = HostChecker(LocalTransport("here"), settings, store, consumer="check")

    async def checks() -> tuple[CheckReport, CheckReport, CheckReport]:
        await daemon.check("interval")
        (tmp_path / "unit-files.json").write_text(
            '[{"unit_file": "broken.service", "state": "bad"}]')
        slow.touch()
        persons = asyncio.ensure_future(person.check("cli"))
        await until(lambda: calls.read_text().split().count("list-unit-files") == 2,
                    what="the person's check listing the unit files")
        between = await daemon.check("interval")
        assert not persons.done()
        seen = await persons
        slow.unlink()
        return between, seen, await daemon.check("interval")

    between, seen, after = asyncio.run(checks())
    assert between.snapshot.kept == {"unit_files"} and between.outcome.opened == []
    [opened] = seen.outcome.opened
    assert after.outcome.resolved == [] and after.outcome.left_to_fresh == [opened]
    [incident] = [i for i in store.incidents(None) if i.rule == "unit_load_error"]
    assert incident.state == "open"


@pytest.mark.parametrize(("kept", "slowed"), [(True, "list-units"),
                                              (False, "list-unit-files")])
def test_a_check_in_flight_when_a_fixs_commands_ran_keeps_nothing_it_read(
    tmp_path: Path, kept: bool, slowed: str,
) -> None:
    """A fix's commands run while a daemon check is collecting (the executor does not wait
    for the host's checks): one that keeps the unit-file listing still ends, from the
    reading it began with (it raised KeyError); one that is reading the listing keeps
    nothing it read, which may be from before the fix. The next check reads the listing."""
    settings, calls, slow = _slow_listing(tmp_path, slowed)
    checker = HostChecker(LocalTransport("here"), settings, store=None)

    def asked() -> int:
        return calls.read_text().split().count(slowed) if calls.exists() else 0

    async def checks() -> tuple[CheckReport, CheckReport]:
        if kept:
            await checker.check("interval")
        before = asked()
        slow.touch()
        inflight = asyncio.ensure_future(checker.check("journal"))
        await until(lambda: asked() > before, what=f"the check in flight asking {slowed}")
        checker.commands_ran()
        during = await inflight
        slow.unlink()
        return during, await checker.check("interval")

    during, after = asyncio.run(checks())
    assert "unit_files" not in during.errors
    assert during.snapshot.kept == ({"unit_files"} if kept else frozenset())
    assert during.snapshot.unit_files == {"a.service": "enabled"}
    assert after.snapshot.kept == frozenset()
    assert calls.read_text().split().count("list-unit-files") == 2
