"""What a checker that starts (a restarted daemon, a fresh `check`) takes up from the store:
what the checks before it found, so that it judges as they would have."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from ai_sysadmin.config import Settings, Thresholds
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.findings import Severity
from ai_sysadmin.monitor.snapshot import Snapshot
from ai_sysadmin.orchestrator.checker import CheckReport, HostChecker
from ai_sysadmin.orchestrator.rises import RESTARTS
from ai_sysadmin.store import Database, IncidentStore, Rises
from tests.support.polling import poll_until

#: df of one 1 GB file system at /srv, as full as the file ``used`` says (in percent), or
#: failing where it says ``fail`` (a hung mount, say)
DF = """#!/bin/sh
used=$(cat {used})
[ "$used" = fail ] && exit 1
echo "Filesystem Type 1B-blocks Used Avail Inodes IUsed Mounted on"
echo "/dev/vdb ext4 1000000000 $((used * 10000000)) $(((100 - used) * 10000000)) 1000 10 /srv"
"""


def disk_host(tmp_path: Path) -> tuple[Path, Settings, IncidentStore]:
    """This machine with /srv as its one disk (see :data:`DF`): the file that says how
    full, the settings that run that df, and the store."""
    used, df = tmp_path / "used", tmp_path / "df"
    df.write_text(DF.format(used=used))
    df.chmod(0o755)
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", programs={"df": str(df)})
    return used, settings, IncidentStore(Database(settings.db_path))


class Killing(LocalTransport):
    """This machine, whose services' memory cgroups are one: worker.service's, with the
    ``oom_kill`` counter the file ``kills`` holds (a test makes the kernel's OOM killer
    kill by writing it)."""

    def __init__(self, kills: Path) -> None:
        super().__init__("web1")
        self.kills = kills

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        script = argv[2] if len(argv) > 2 else ""
        if "oom_kill" not in script:
            return argv
        # the kernel's counters, of which this machine's are worker's OOM kills alone
        return ("sh", "-c", 'echo "/sys/fs/cgroup/system.slice/worker.service/memory.events:'
                'oom_kill $(cat "$0")"', str(self.kills))


def test_a_disk_that_warned_keeps_its_margin_across_a_restart_of_the_daemon(
        tmp_path: Path) -> None:
    """/srv warned at 86 % (the level is 85, the margin 2): at 84 % the daemon keeps the
    incident, and so does a daemon started again, instead of resolving it, to reopen it at
    the next 85 %."""
    used, settings, store = disk_host(tmp_path)
    assert (settings.thresholds.disk_warn_percent,
            settings.thresholds.clear_margin_percent) == (85, 2)

    def state() -> str:
        (incident,) = [i for i in store.incidents(None) if i.rule == "disk_space"]
        return incident.state

    def check(checker: HostChecker, percent: int) -> None:
        used.write_text(f"{percent}\n")
        report = asyncio.run(checker.check("interval"))
        assert "mounts" not in report.errors and "disk_space" in report.judged_rules

    before = HostChecker(LocalTransport("web1"), settings, store)
    check(before, 86)
    assert state() == "open"
    check(before, 84)
    assert state() == "open"
    restarted = HostChecker(LocalTransport("web1"), settings, store)
    check(restarted, 84)
    assert state() == "open"
    check(restarted, 82)
    assert state() == "resolved"


def test_a_host_added_again_after_its_remove_takes_up_no_restart_rises_of_before(
        cli: Callable[..., tuple[int, str, str]], settings: Settings) -> None:
    """web8 and web9 each had a service whose restart count rose (the daemon's checks kept
    it); web9 is removed and, another machine of that name, added again. After a restart
    the daemon's first check of web8 still knows its rise (a slow loop stays one incident);
    web9's knows none: a loop of the machine removed is not this one's."""
    for host in ("web8", "web9"):
        assert cli("systems", "add", "--no-probe", host)[0] == 0
    store = IncidentStore(Database(settings.db_path))
    rose = time.time() - 60
    for host in ("web8", "web9"):
        store.record_check(host, [], set(), rises={RESTARTS: Rises(
            {"slow.service": rose}, rose - settings.thresholds.crash_loop_window_seconds)})
    assert cli("systems", "remove", "web9")[0] == 0
    assert cli("systems", "add", "--no-probe", "web9")[0] == 0

    restarted = IncidentStore(Database(settings.db_path))
    rises = {}
    for host in ("web8", "web9"):
        report = asyncio.run(HostChecker(LocalTransport(host), settings, restarted).check())
        assert report.context is not None
        rises[host] = report.context.restarts_rose_after
    assert rises == {"web8": {"slow.service": rose}, "web9": {}}
    assert restarted.rises("web9", RESTARTS, 0.0) == {}


def test_an_oom_kill_incident_resolves_a_window_after_the_kill_across_a_restart_of_the_daemon(
        tmp_path: Path) -> None:
    """The OOM killer killed a process of worker.service; the daemon found it and, restarted
    halfway through the window (6 s here), the daemon started again still finds it while
    the kill is within the window and resolves it a window after the kill, not a window
    after its own start (which waited a whole window more for a kill it forgot)."""
    window = 6.0
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                        thresholds=Thresholds(oom_kill_window_seconds=window))
    kills = tmp_path / "kills"
    kills.write_text("0\n")
    host = Killing(kills)
    store = IncidentStore(Database(settings.db_path))

    def state() -> str:
        (incident,) = [i for i in store.incidents(None) if i.rule == "oom_kill"]
        return incident.state

    before = HostChecker(host, settings, store)
    killed_after = asyncio.run(before.check()).snapshot.taken_at
    kills.write_text("1\n")
    assert [f.subject for f in asyncio.run(before.check()).findings
            if f.rule == "oom_kill"] == ["worker.service"]
    def checked_to_half_the_window() -> bool:
        asyncio.run(before.check())
        return time.time() > killed_after + window / 2

    # the daemon checks on until it is restarted, halfway through the window
    poll_until(checked_to_half_the_window, what="half the window", interval=0.25)
    assert state() == "open"

    restarted_at = time.time()
    restarted = HostChecker(host, settings, IncidentStore(Database(settings.db_path)))
    reports = []

    def resolved() -> bool:
        reports.append(asyncio.run(restarted.check()))
        return state() == "resolved"

    poll_until(resolved, what="the incident resolved", interval=0.25)
    *kept, resolving = [r for r in reports if "oom_kill" in r.judged_rules]
    assert kept, "no check of the daemon started again judged within the window"
    assert all("oom_kill" in {f.rule for f in r.findings} for r in kept)
    assert killed_after + window < resolving.snapshot.taken_at < restarted_at + window


def test_a_checker_that_carries_on_from_another_keeps_rises_for_its_own_window(
        tmp_path: Path) -> None:
    """A fresh checker that looks at the host as another has (the lab's final check, after
    the daemon's) knows the rises that one saw, and keeps them for as long as its own
    settings say: a kill its window of an hour holds is not forgotten with the other's
    window of a second."""
    kills = tmp_path / "kills"
    kills.write_text("0\n")
    host = Killing(kills)

    def checker(window: float) -> HostChecker:
        return HostChecker(host, Settings(ai_name="hal", state_dir=tmp_path / "state",
                                          thresholds=Thresholds(oom_kill_window_seconds=window)),
                           None)

    def killed(report: CheckReport) -> list[str]:
        assert "oom_kill" in report.judged_rules
        return [f.subject for f in report.findings if f.rule == "oom_kill"]

    giving = checker(1.0)
    killed_after = asyncio.run(giving.check()).snapshot.taken_at
    kills.write_text("1\n")
    assert killed(asyncio.run(giving.check())) == ["worker.service"]
    receiving = checker(3600.0)
    receiving.carry_on(giving)

    def found_past_the_givers_window() -> bool:
        report = asyncio.run(receiving.check())
        assert killed(report) == ["worker.service"]
        return report.snapshot.taken_at > killed_after + 1.0

    poll_until(found_past_the_givers_window, timeout=30, interval=0.25,
               what="a check of the receiving checker past the giving one's window")


class Erring(LocalTransport):
    """This machine, whose one file system counting errors is an ext4 ``vdz`` mounted where
    the first mount of its mount table is, with the count the file ``errors`` holds."""

    def __init__(self, errors: Path) -> None:
        super().__init__("web1")
        self.errors = errors
        with open("/proc/self/mountinfo") as table:
            fields = table.readline().split(" ")
        self.number, self.point = fields[2], fields[4]

    def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        script = argv[2] if len(argv) > 2 else ""
        if "errors_count" not in script:
            return argv
        return ("sh", "-c", 'echo "/sys/fs/ext4/vdz/errors_count:$(cat "$0")"; '
                f'echo "/sys/class/block/vdz/dev:{self.number}"', str(self.errors))


def test_a_file_system_error_count_that_rose_stays_critical_across_checks_and_a_restart(
        tmp_path: Path) -> None:
    """An ext4 count (no last error time: as btrfs, which keeps none) rose: critical at the
    checks within the hour after, not critical for one check and then a warning (a change
    of the incident at each), and so for the daemon started again."""
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state")
    errors = tmp_path / "errors"
    host = Erring(errors)
    store = IncidentStore(Database(settings.db_path))

    def severity(checker: HostChecker, count: int) -> Severity:
        errors.write_text(f"{count}\n")
        report = asyncio.run(checker.check())
        assert "fs_errors" not in report.errors, report.errors
        (found,) = [f for f in report.findings if f.rule == "filesystem_errors"]
        assert found.subject == host.point
        return found.severity

    before = HostChecker(host, settings, store)
    assert severity(before, 1) is Severity.WARNING  # a first look: standing, for all it knows
    assert severity(before, 2) is Severity.CRITICAL
    assert severity(before, 2) is Severity.CRITICAL  # it rose within the hour
    restarted = HostChecker(host, settings, IncidentStore(Database(settings.db_path)))
    assert severity(restarted, 2) is Severity.CRITICAL
    assert store.rises("web1", "fs_errors", 0.0).keys() == {host.point}


def test_a_disk_that_hovers_at_the_critical_level_changes_severity_once_across_a_restart(
        tmp_path: Path) -> None:
    """/srv warned at 90 %, then went 96, 94, 96, 94 % (the critical level is 95, the
    margin 2): the incident turned critical once and stays so, with one severity change in
    its history and one "worse" notification, not one a check; a daemon started again
    takes up that it was critical, and keeps it so at 94 %. At 92 % it warns again."""
    used, settings, store = disk_host(tmp_path)
    assert (settings.thresholds.disk_critical_percent,
            settings.thresholds.clear_margin_percent) == (95, 2)

    def check(checker: HostChecker, percent: int) -> None:
        used.write_text(f"{percent}\n")
        report = asyncio.run(checker.check("interval"))
        assert "mounts" not in report.errors and "disk_space" in report.judged_rules

    def incident() -> tuple[str, list[str], list[str]]:
        """Its severity, its history's severity changes, the notifications of it."""
        (listed,) = [i for i in store.incidents(None) if i.rule == "disk_space"]
        whole = store.get(listed.id, history=None)
        told = [row[0] for row in store.db.conn.execute(
            "SELECT kind FROM notify_events WHERE fingerprint=? ORDER BY id",
            (whole.fingerprint,))]
        return (whole.severity, [e.detail.split(":")[0] for e in whole.events
                                 if e.kind == "changed"], told)

    checker = HostChecker(LocalTransport("web1"), settings, store)
    for percent in (90, 96, 94, 96, 94):
        check(checker, percent)
    assert incident() == ("critical", ["severity warning -> critical"], ["opened", "worse"])
    restarted = HostChecker(LocalTransport("web1"), settings, store)
    check(restarted, 94)
    assert incident() == ("critical", ["severity warning -> critical"], ["opened", "worse"])
    check(restarted, 92)
    assert incident() == ("warning", ["severity warning -> critical",
                                      "severity critical -> warning"], ["opened", "worse"])


def test_a_look_that_could_not_read_the_disks_keeps_the_margins(tmp_path: Path) -> None:
    """df failed at one check (a hung NFS mount, say) between two that read it: the disk
    that was critical at 96 % is still critical at 94 % after, and one that warned at 86 %
    still warns at 84 %: the failed look judged nothing, so it forgot nothing, and no
    second "worse" or "opened" is sent."""
    used, settings, store = disk_host(tmp_path)
    checker = HostChecker(LocalTransport("web1"), settings, store)

    def check(percent: int | str) -> CheckReport:
        used.write_text(f"{percent}\n")
        return asyncio.run(checker.check("interval"))

    def told() -> list[tuple[str, str]]:
        return [(row[0], row[1]) for row in store.db.conn.execute(
            "SELECT kind, severity FROM notify_events WHERE fingerprint LIKE '%disk_space%' "
            "ORDER BY id")]

    for percent in (90, 96):
        check(percent)
    assert "disk_space" not in check("fail").judged_rules
    assert [f.severity for f in check(94).findings if f.rule == "disk_space"] == [
        Severity.CRITICAL]
    assert told() == [("opened", "warning"), ("worse", "critical")]
    for percent in (92, 86, "fail", 84):  # warning again, then at 84 % after a gap
        check(percent)
    (incident,) = [i for i in store.incidents(None) if i.rule == "disk_space"]
    assert (incident.state, incident.severity) == ("open", "warning")
    assert told() == [("opened", "warning"), ("worse", "critical")]


def test_a_restart_count_systemd_started_again_from_0_has_risen(tmp_path: Path) -> None:
    """A person started a looping unit by hand (systemd counts from 0 again) and it crashed
    4 times by the next check: its count rose, as a slow loop's memory keeps it; a count
    gone to 0 has not."""
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state")
    checker = HostChecker(LocalTransport("web1"), settings, None)
    looked = time.time() - 300
    checker.previous = Snapshot("web1", looked, restarts={"app.service": 7, "db.service": 2})
    now = Snapshot("web1", looked + 300, restarts={"app.service": 4, "db.service": 0})
    assert checker._restarts_rose(now) == {"app.service": looked}


def test_a_fixs_verification_looks_are_no_new_sightings(tmp_path: Path) -> None:
    """A verification looks every few seconds for up to a minute: an incident that lived 95 s
    was "seen 65 times". Its looks still judge (a reopening is a sighting), but what they see
    again counts once, by the checks that look at intervals."""
    used, settings, store = disk_host(tmp_path)
    used.write_text("97\n")
    checker = HostChecker(LocalTransport("web1"), settings, store)

    def seen() -> int:
        (incident,) = [i for i in store.incidents(None) if i.rule == "disk_space"]
        return incident.occurrences

    for reason in ("interval", "interval", "verify", "verify", "verify"):
        asyncio.run(checker.check(reason))
    assert seen() == 2
    asyncio.run(checker.check("interval"))
    assert seen() == 3
