"""The collection table: the per-command path reads nothing the one-round-trip script lacks, and
every row can be collected in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import TransportError
from ai_sysadmin.hosts.transport import CommandResult, LocalTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.sections import (
    SECTIONS,
    SECTIONS_BY_NAME,
    SINCE_PREFIX,
    JournalQuery,
    Plan,
    Section,
    Source,
    _journal,
    check_table,
)
from ai_sysadmin.monitor.snapshot import CpuTimes, Snapshot

QUERIES = [JournalQuery(), JournalQuery(after_cursor="s=abc;i=1f")]


class Recorded(LocalTransport):
    """This machine, noting every command and file a check reads."""

    def __init__(self, runs_as_root: bool) -> None:
        super().__init__("here")
        self.runs_as_root = runs_as_root
        self.read: list[tuple[str, ...]] = []

    async def run(self, argv: Sequence[str], timeout: float = 20.0) -> CommandResult:
        self.read.append(tuple(argv))
        return await super().run(argv, timeout)

    async def read_file(self, path: str, timeout: float = 20.0) -> str | None:
        self.read.append(("cat", "--", path))
        return await super().read_file(path, timeout)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(ai_name="hal", state_dir=tmp_path / "state")


@pytest.mark.parametrize("query", QUERIES, ids=["first-check", "with-cursor"])
@pytest.mark.parametrize("root", [True, False], ids=["root", "user"])
def test_the_per_command_path_reads_only_what_the_script_would(
    settings: Settings, query: JournalQuery, root: bool
) -> None:
    transport = Recorded(root)
    collector = Collector(transport, settings)
    snapshot = asyncio.run(collector.collect(query))
    assert snapshot.cpu is not None and snapshot.processes
    script = {source.argv for source in collector.sources(query)}
    assert transport.read and set(transport.read) <= script


@pytest.mark.parametrize("query", QUERIES, ids=["first-check", "with-cursor"])
@pytest.mark.parametrize("root", [True, False, None], ids=["root", "user", "unknown"])
def test_every_row_can_be_answered_as_the_script_answers(
    settings: Settings, query: JournalQuery, root: bool | None
) -> None:
    plan = Plan(settings, query, root)
    for section in SECTIONS:
        sources = section.sources(plan)
        fallbacks = [s.fallback for s in sources]
        assert fallbacks == sorted(fallbacks), f"{section.name}: fallbacks come last"
        if section.when is not None:
            # a row the per-command path may skip answers each command as its guard does
            assert all(s.guard is not None for s in sources), section.name
            assert all(s.unasked.stderr == s.guard.absent for s in sources)  # type: ignore[union-attr]


def test_a_table_that_cannot_be_collected_in_order_is_refused() -> None:
    cpu = Section("cpu", lambda plan: (Source.file("/proc/stat"),), str)
    later = Section("load", lambda plan: (Source.file("/proc/loadavg"),), str, after=("cpu",))
    assert check_table((cpu, later)).keys() == {"cpu", "load"}
    with pytest.raises(ValueError, match="comes after \\['cpu'\\], listed later"):
        check_table((later, cpu))
    with pytest.raises(ValueError, match="two collection sections are named 'cpu'"):
        check_table((cpu, cpu))
    with pytest.raises(ValueError, match="needs a parse or an apply"):
        check_table((Section("cpu", lambda plan: (), None),))


LISTING = " 52  1 R root 99.0 0.0 1744 600 590 0::/system.slice/spin.service sh -c spin\n"


def test_processes_are_named_with_their_unit(settings: Settings) -> None:
    snap = Snapshot("h", 1.0)
    SECTIONS_BY_NAME["processes"].take([CommandResult(("ps",), 0, LISTING, "", 0.1)], snap,
                                       Plan(settings, JournalQuery(), runs_as_root=True))
    assert [(p.pid, p.unit, p.command) for p in snap.processes or []] == [
        (52, "spin.service", "sh -c spin")]


#: what BusyBox 1.35's ps (Alpine's) writes for the check's options: the error, then usage
BUSYBOX_PS = ("ps: unrecognized option '--cols=300'\n"
              "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary.\n\n"
              "Usage: ps [-o COL1,COL2=HEADER] [-T]\n\nShow list of processes\n\n"
              "\t-o COL1,COL2=HEADER\tSelect columns for display\n\t-T\t\t\tShow threads\n")


def test_a_busybox_ps_is_named_with_what_the_host_needs(settings: Settings) -> None:
    # the last line of its usage was quoted: "ps exited 1: -T Show threads"
    snap = Snapshot("alpine", 1.0)
    with pytest.raises(TransportError) as raised:
        SECTIONS_BY_NAME["processes"].take(
            [CommandResult(("ps",), 1, "", BUSYBOX_PS, 0.1)], snap,
            Plan(settings, JournalQuery(), runs_as_root=True))
    assert str(raised.value) == (
        "ps exited 1: ps: unrecognized option '--cols=300' (ps is BusyBox's, which lacks the "
        "options the check uses: the host needs procps-ng's ps and GNU coreutils, e.g. "
        "`apk add procps coreutils`)")


def test_a_ps_that_fails_is_a_section_error(settings: Settings) -> None:
    snap = Snapshot("h", 1.0)
    with pytest.raises(TransportError, match="ps exited 1: ps: cannot read /proc"):
        SECTIONS_BY_NAME["processes"].take(
            [CommandResult(("ps",), 1, "", "ps: cannot read /proc", 0.1)], snap,
            Plan(settings, JournalQuery(), runs_as_root=True))



INIT = " 1  0 S root 0.0 0.1 9000 86400 12 0::/init.scope /sbin/init\n"
MINE = (" 700  690 S alice 0.0 0.1 3000 60 0 0::/user.slice/user-3101.slice/session-4.scope "
        "sh -s\n 701  700 Z alice 0.0 0.0 0 5 0 0::/user.slice/user-3101.slice/session-4.scope "
        "[true] <defunct>\n")
HIDING = "22 1 0:21 / /proc rw,nosuid - proc proc rw,gid=27,hidepid=invisible\n"


def _take_ps(settings: Settings, listing: str, mountinfo: CommandResult,
             root: bool | None = None) -> Snapshot:
    snap = Snapshot("h", 1.0)
    ps = CommandResult(("ps",), 0, listing, "", 0.1)
    for name in ("processes", "zombies"):
        SECTIONS_BY_NAME[name].take([ps, mountinfo], snap, Plan(settings, JournalQuery(), root))
    return snap


def test_a_process_table_without_pid_1_is_not_collected_in_full(settings: Settings) -> None:
    mountinfo = CommandResult(("cat", "--", "/proc/self/mountinfo"), 0, HIDING, "", 0.0)
    snap = _take_ps(settings, MINE, mountinfo)
    why = ("/proc is mounted hidepid=invisible: as alice the process table holds only "
           "alice's processes; check as root or as a member of the gid=27 group")
    assert snap.errors == {"processes": why, "zombies": why}
    # what alice sees stays: her own processes, her own zombie's parent
    assert {p.user for p in snap.processes or []} == {"alice"}
    assert [z.pid for z in snap.zombies or []] == [700]
    # where the mount table cannot be read, the missing PID 1 alone says it
    unread = CommandResult(mountinfo.argv, 1, "", "", 0.0)
    assert _take_ps(settings, MINE, unread).errors["processes"] == (
        "ps lists no PID 1: as alice the process table holds only alice's processes; "
        "check as root")
    # a member of the gid= group sees PID 1: the table is whole; root is shown every process
    assert _take_ps(settings, INIT + MINE, mountinfo).errors == {}
    assert _take_ps(settings, MINE, mountinfo, root=True).errors == {}


@pytest.mark.parametrize("uptime_mounted", [True, False])
def test_a_quiet_journal_after_a_time_is_judged_ahead_only_on_the_hosts_own_clock(
        uptime_mounted: bool) -> None:
    """A container whose /proc/uptime lxcfs mounts over gives no clock of its own: a
    since: position from its first check, stamped on its clock minutes ahead of this
    machine's, was said to be "ahead of the host's clock" and moved back at the next quiet
    check. Where the host's clock is read, one ahead of it still is."""
    now = time.time()
    position = f"{SINCE_PREFIX}{now + 240:.6f}"
    snap = Snapshot(host="ct1", taken_at=now)
    snap.systemd_running = True
    snap.uptime_seconds = 1000.0
    snap.cpu = CpuTimes(1, 2, 1, boot_time=int(now) - 1000)
    snap.proc_mounted = frozenset({"/proc/uptime"} if uptime_mounted else ())
    quiet = CommandResult(("journalctl",), 0, "", "", 0.1)  # nothing logged since
    _journal([quiet], snap, Plan(Settings(), JournalQuery(after_cursor=position), True))
    if uptime_mounted:
        assert "journal" not in snap.errors and snap.journal_cursor == position
    else:
        assert "ahead of the host's clock" in snap.errors["journal"]
        assert snap.journal_cursor != position
