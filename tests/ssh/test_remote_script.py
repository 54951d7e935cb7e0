"""The one-round-trip script on this machine's own sh: framing, timeouts, missing programs.

No sshd needed: a LocalTransport that asks for one round trip runs the same script here.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from ai_sysadmin.config import Programs, Settings
from ai_sysadmin.errors import ProgramMissing, TransportError
from ai_sysadmin.hosts.transport import CommandResult, LocalTransport, Transport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.remote_script import (
    Guard,
    ReplayTransport,
    RoundTrip,
    run_round_trip,
)
from ai_sysadmin.monitor.snapshot import Snapshot


async def round_trip(transport: Transport, commands: Sequence[Sequence[str]],
                     command_timeout: float, guards: Mapping[tuple[str, ...], Guard] | None = None,
                     careful: bool = True) -> ReplayTransport:
    """``commands`` in one script, as a collector plans and runs them."""
    trip = RoundTrip.plan(commands, command_timeout, guards, careful)
    return await run_round_trip(transport, trip)


class OneTrip(LocalTransport):
    """This machine, collected the way an SSH host is: one ``sh -c`` for the whole check."""

    one_round_trip = True
    calls = 0
    #: the marker of the last script it ran
    marker = ""

    async def run(self, argv: Sequence[str], timeout: float = 20.0) -> CommandResult:
        self.calls += 1
        self.marker = next(iter(re.findall(r"^M=(\S+)", argv[-1], re.M)), "")
        return await super().run(argv, timeout)


class Down(LocalTransport):
    one_round_trip = True

    async def run(self, argv: Sequence[str], timeout: float = 20.0) -> CommandResult:
        raise TransportError(f"{self.host}: no SSH connection to root@10.0.0.1:22 within 1 s")


def collect(transport: Transport, settings: Settings) -> Snapshot:
    return asyncio.run(Collector(transport, settings).collect())


def script(path: Path, body: str) -> str:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_each_output_comes_back_exactly(tmp_path: Path) -> None:
    commands = [
        ["printf", "no newline at the end"],
        ["printf", ""],
        ["sh", "-c", "printf 'out\\n\\n'; printf 'err\\nmore' >&2; exit 4"],
        ["printf", "%s\\n", "start 0 end 1 2", "it's $HOME"],
        ["cat", "--", str(tmp_path / "missing")],
    ]

    async def go() -> list[CommandResult | str]:
        replay = await round_trip(LocalTransport(), commands, 5.0)
        results: list[CommandResult | str] = []
        for argv in [*commands, ["never", "planned"]]:
            try:
                results.append(await replay.run(argv))
            except TransportError as exc:
                results.append(str(exc))
        return results

    got = asyncio.run(go())
    assert [(r.returncode, r.stdout, r.stderr) for r in got[:4]] == [  # type: ignore[union-attr]
        (0, "no newline at the end", ""),
        (0, "", ""),
        (4, "out\n\n", "err\nmore"),
        (0, "start 0 end 1 2\nit's $HOME\n", ""),
    ]
    assert got[4].returncode == 1 and "No such file" in got[4].stderr  # type: ignore[union-attr]
    assert "'never planned': not gathered" in got[5]  # type: ignore[operator]


def test_the_snapshot_is_the_one_of_the_per_command_path(settings: Settings) -> None:
    one = OneTrip("here")
    ours, theirs = collect(one, settings), collect(LocalTransport("here"), settings)
    assert one.calls == 1
    assert ours.errors == theirs.errors
    for name in ("os", "systemd_running", "units", "nixos_generation", "journal"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert [m.target for m in ours.mounts or []] == [m.target for m in theirs.mounts or []]
    # the script's own shell is left out (its timeouts, careful: test_own_processes); a
    # script of a test beside this one is another program's, and stays
    assert one.marker.startswith("@@ai-sysadmin-")
    assert not [p.command for p in ours.processes or [] if one.marker in p.command]


def test_a_hung_command_costs_its_section_only(tmp_path: Path) -> None:
    settings = Settings(
        ai_name="hal", state_dir=tmp_path / "state", command_timeout=0.5,
        programs=Programs(df=script(tmp_path / "df", "sleep 30"), ps="/nonexistent/ps",
                          systemctl="/nonexistent/systemctl"),
    )
    started = time.monotonic()
    snapshot = collect(OneTrip("here"), settings)
    assert time.monotonic() - started < 4
    assert "timed out after 0.5 s" in snapshot.errors["mounts"]
    assert "cannot start '/nonexistent/ps'" in snapshot.errors["processes"]
    # no systemctl at all is a fact about the host, not an error
    assert snapshot.systemd_running is False and snapshot.units == []
    assert snapshot.cpu is not None and snapshot.memory is not None and snapshot.os is not None


def test_an_unreachable_host_fails_every_section_with_the_reason(settings: Settings) -> None:
    snapshot = collect(Down("gone"), settings)
    assert snapshot.cpu is None and snapshot.units is None and snapshot.processes is None
    assert "no SSH connection to root@10.0.0.1:22" in snapshot.errors["units"]
    assert set(snapshot.errors) >= {"cpu", "memory", "swap", "load", "mounts", "units",
                                    "processes", "os"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(ai_name="hal", state_dir=tmp_path / "state")


def test_a_guarded_command_runs_only_where_its_path_exists(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    tool = script(tmp_path / "tool", f'echo "$1" >> {ran}; echo "answer $1"')
    there, absent = tmp_path / "there", tmp_path / "absent"
    there.mkdir()
    commands = [[tool, "a"], [tool, "b"]]
    guards = {(tool, "a"): Guard("-d", str(there), "a: nothing to ask"),
              (tool, "b"): Guard("-d", str(absent), "b: nothing to ask")}

    async def go() -> list[CommandResult]:
        replay = await round_trip(LocalTransport(), commands, 5.0, guards=guards)
        return [await replay.run(argv) for argv in commands]

    a, b = asyncio.run(go())
    assert (a.returncode, a.stdout) == (0, "answer a\n")
    assert (b.returncode, b.stdout, b.stderr) == (1, "", "b: nothing to ask")
    assert ran.read_text() == "a\n"  # b never started a process


def test_a_command_guarded_by_several_paths_runs_where_any_exists(tmp_path: Path) -> None:
    """The file system error counts: read where the ext4 or the btrfs driver is, and
    nowhere else (a host with neither starts no process)."""
    ran = tmp_path / "ran"
    tool = script(tmp_path / "tool", f'echo "$1" >> {ran}; echo "answer $1"')
    there, absent, gone = tmp_path / "there", tmp_path / "absent", tmp_path / "gone"
    there.mkdir()
    commands = [[tool, "either"], [tool, "neither"]]
    guards = {(tool, "either"): Guard("-d", str(absent), "nothing", also=(str(there),)),
              (tool, "neither"): Guard("-d", str(absent), "neither: none", also=(str(gone),))}

    async def go() -> list[CommandResult]:
        replay = await round_trip(LocalTransport(), commands, 5.0, guards=guards)
        return [await replay.run(argv) for argv in commands]

    either, neither = asyncio.run(go())
    assert (either.returncode, either.stdout) == (0, "answer either\n")
    assert (neither.returncode, neither.stderr) == (1, "neither: none")
    assert ran.read_text() == "either\n"


def test_kernel_files_are_read_by_one_tail_and_come_back_each_exactly() -> None:
    paths = ["/proc/sys/kernel/ostype", "/proc/nonexistent-file", "/proc/version",
             "/proc/sys/kernel/osrelease"]
    commands = [["cat", "--", p] for p in paths]

    async def go() -> list[CommandResult]:
        replay = await round_trip(LocalTransport(), commands, 5.0, careful=False)
        return [await replay.run(argv) for argv in commands]

    ostype, missing, version, release = asyncio.run(go())
    assert (ostype.returncode, ostype.stdout) == (0, Path(paths[0]).read_text())
    assert (version.stdout, release.stdout) == (Path(paths[2]).read_text(),
                                                Path(paths[3]).read_text())
    assert missing.returncode == 1 and "No such file" in missing.stderr


class ScriptIn(LocalTransport):
    """This machine with its scripts run by one shell: dash (Debian's sh) or bash in POSIX
    mode (the sh of NixOS, Fedora, Arch)."""

    def __init__(self, shell: str) -> None:
        super().__init__("here")
        self.shell = shell

    async def run_script(self, script: str, done: str, timeout: float,
                         answer_within: float | None = None) -> CommandResult:
        return await self.run([*self.shell.split(), "-c", script], timeout)


@pytest.mark.parametrize("shell", ["dash", "bash --posix"])
def test_every_shell_gives_each_output_back_exactly(tmp_path: Path, shell: str) -> None:
    if shutil.which(shell.split()[0]) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{shell} is needed here")
        pytest.skip(f"no {shell} here")
    os_release = tmp_path / "os-release"
    os_release.write_text("NAME=Test\n\nID=test\nlast line without newline")
    other = tmp_path / "other"  # a second file of no kernel's: read by the shell's builtins
    other.write_text("==> /proc/sys/kernel/ostype <==\nno header of tail's")
    commands = [
        ["sh", "-c", "printf 'out\\n\\n'; printf 'err\\nmore' >&2; exit 4"],
        ["cat", "--", str(os_release)],
        ["cat", "--", str(other)],
        ["cat", "--", str(tmp_path / "missing")],
        ["cat", "--", "/proc/sys/kernel/ostype"],
        ["printf", "%s", "guarded, runs"],
        ["printf", "%s", "guarded, never runs"],
        ["printf", "%s", "guarded too, never runs"],
        ["/nonexistent/program"],
    ]
    absent = Guard("-d", str(tmp_path / "absent"), "nothing to ask")
    guards = {("printf", "%s", "guarded, runs"): Guard("-d", str(tmp_path), "unused"),
              ("printf", "%s", "guarded, never runs"): absent,
              ("printf", "%s", "guarded too, never runs"): absent}

    async def go() -> list[tuple[int, str, str] | str]:
        got: list[tuple[int, str, str] | str] = []
        for careful in (False, True):
            replay = await round_trip(ScriptIn(shell), commands, 5.0, guards=guards,
                                      careful=careful)
            for argv in commands:
                try:
                    done = await replay.run(argv)
                    got.append((done.returncode, done.stdout, done.stderr))
                except TransportError as exc:
                    got.append(str(exc))
        return got

    got = asyncio.run(go())
    fast, careful = got[:9], got[9:]
    assert fast[:8] == careful[:8] == [
        (4, "out\n\n", "err\nmore"),
        # one tail reads the /proc files and, last, this one: exactly
        (0, "NAME=Test\n\nID=test\nlast line without newline", ""),
        # the builtins end a last line
        (0, "==> /proc/sys/kernel/ostype <==\nno header of tail's\n", ""),
        (1, "", f"cat: {tmp_path / 'missing'}: No such file or directory\n"),
        (0, Path("/proc/sys/kernel/ostype").read_text(), ""),
        (0, "guarded, runs", ""),
        (1, "", "nothing to ask"),
        (1, "", "nothing to ask"),
    ]
    for missing_program in (fast[8], careful[8]):
        assert "cannot start '/nonexistent/program'" in missing_program  # type: ignore[operator]


def test_a_program_not_there_is_told_from_one_that_may_not_be_run(tmp_path: Path) -> None:
    """Exit 127 with the shell's (or timeout's) "not found": a program the host lacks, a
    fact (no systemctl: no systemd). Exit 126, "Permission denied": there, but not run,
    which tells nothing of the host."""
    locked = tmp_path / "locked"
    locked.write_text("#!/bin/sh\necho ran\n")
    locked.chmod(0o644)
    commands = [["/nonexistent/program"], [str(locked)]]

    async def go() -> list[TransportError]:
        raised: list[TransportError] = []
        for careful in (False, True):
            replay = await round_trip(LocalTransport(), commands, 5.0, careful=careful)
            for argv in commands:
                with pytest.raises(TransportError, match="cannot start") as exc:
                    await replay.run(argv)
                raised.append(exc.value)
        return raised

    missing, denied, careful_missing, careful_denied = asyncio.run(go())
    for exc in (missing, careful_missing):
        assert isinstance(exc, ProgramMissing) and exc.program == "/nonexistent/program"
    for exc in (denied, careful_denied):
        assert not isinstance(exc, ProgramMissing) and "Permission denied" in str(exc)


def test_a_replayed_check_is_the_check_of_the_same_results(settings: Settings) -> None:
    """The replay is read row after row without tasks; the per-command path reads the very
    same results with a task per row: one Snapshot."""

    class Results(Transport):
        def __init__(self, replay: Transport) -> None:
            self.host, self.replay = replay.host, replay
            self.runs_as_root = replay.runs_as_root

        def wrap(self, argv: tuple[str, ...]) -> tuple[str, ...]:
            return argv

        async def run(self, argv: Sequence[str], timeout: float = 20.0) -> CommandResult:
            return await self.replay.run(argv, timeout)

    async def go() -> tuple[Snapshot, Snapshot]:
        collector = Collector(OneTrip("here"), settings)
        replay = await collector._round_trip(collector._rows(collector.plan()))
        return (Collector(replay, settings).replayed(),
                await Collector(Results(replay), settings).collect())

    replayed, per_row = asyncio.run(go())
    replayed.taken_at = per_row.taken_at
    assert replayed == per_row
    assert replayed.processes and replayed.mounts and replayed.os


def test_a_check_lists_the_processes_once_on_either_path(tmp_path: Path) -> None:
    """One ps a check serves the processes and the zombies, with each process's cgroup (its
    unit is read from that, not asked of ps: see parsers.PS_CGROUP_COLUMNS)."""
    calls = tmp_path / "calls"
    real = shutil.which("ps")
    ps = script(tmp_path / "ps", f'echo "$*" >> {calls}\nexec {real} "$@"')
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", programs={"ps": ps})
    one = OneTrip("here")
    ours, theirs = collect(one, settings), collect(LocalTransport("here"), settings)
    assert one.calls == 1
    for snapshot in (ours, theirs):
        assert "processes" not in snapshot.errors and "zombies" not in snapshot.errors
        assert snapshot.processes and snapshot.zombies is not None
    asked = calls.read_text().splitlines()
    assert len(asked) == 2 and all("cgroup:" in line and "unit=" not in line for line in asked)


@pytest.mark.parametrize("first_text", ["ID=first\n", ""])
def test_a_second_place_for_a_file_is_read_only_where_the_first_has_nothing(
    tmp_path: Path, first_text: str
) -> None:
    # os-release(5): /usr/lib/os-release is read where /etc/os-release is missing or empty
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text(first_text)
    second.write_text("ID=second\n")
    commands = [["cat", "--", str(first)], ["cat", "--", str(second)]]
    guards = {("cat", "--", str(second)): Guard("! -s", str(first), "not read")}

    async def go() -> list[CommandResult]:
        replay = await round_trip(LocalTransport(), commands, 5.0, guards=guards)
        return [await replay.run(argv) for argv in commands]

    got = [(done.returncode, done.stdout, done.stderr) for done in asyncio.run(go())]
    if first_text:
        assert got == [(0, "ID=first\n", ""), (1, "", "not read")]
    else:
        assert got == [(0, "", ""), (0, "ID=second\n", "")]


def test_a_sh_step_runs_in_the_scripts_own_shell_as_sh_would_run_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every check runs sh scripts (the counters, the journal's cap): outside careful mode
    the script's shell runs them in a subshell, with no sh started for them; each gives
    back what sh would, and sees nothing of the script's own state."""
    log = tmp_path / "started"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script(bin_dir / "sh", f'echo "$@" >> {log}\nexec /bin/sh "$@"')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    commands = [
        ["sh", "-c", 'printf "[%s]" "$#" "$@"; printf err >&2; exit 3', "name", "a b", "it's"],
        ["sh", "-c", "exit 0"],  # no name, no arguments
        ["sh", "-c", 'printf "[%s]" "$M" "$P" "$i" "$b" "$(command -v f)"; cat'],  # no stdin
        ["sh", "-c", 'set --; for x in one two; do set -- "$@" "$x"; done; exec printf "%s" "$@"',
         "sh"],
    ]

    async def go(careful: bool) -> list[tuple[int, str, str]]:
        replay = await round_trip(ScriptIn("/bin/sh"), commands, 5.0, careful=careful)
        return [((done := await replay.run(argv)).returncode, done.stdout, done.stderr)
                for argv in commands]

    fast = asyncio.run(go(careful=False))
    assert not log.exists()  # no sh started for the steps
    assert fast == [(3, "[2][a b][it's]", "err"), (0, "", ""), (0, "[][][][][]", ""),
                    (0, "onetwo", "")]
    assert asyncio.run(go(careful=True)) == fast  # each its own sh under timeout(1)
    assert len(log.read_text().splitlines()) == len(commands)


class EndsEarly(LocalTransport):
    """A host whose shell was killed before the script's first step ended."""

    one_round_trip = True

    async def run_script(self, script: str, done: str, timeout: float,
                         answer_within: float | None = None) -> CommandResult:
        return CommandResult(("sh", "-s"), 137, "", "Killed\npassword=hunter2 at exit\n", 0.0)


def test_a_script_that_ended_early_says_so_for_each_command_masked() -> None:
    replay = asyncio.run(round_trip(EndsEarly("web1"), [["printf", "x"]], 5.0))
    with pytest.raises(TransportError) as raised:
        asyncio.run(replay.run(["printf", "x"]))
    said = str(raised.value)
    assert said.startswith("web1: 'printf x': not gathered: the remote script ended early "
                           "(exit 137: Killed\npassword=")
    assert "hunter2" not in said
