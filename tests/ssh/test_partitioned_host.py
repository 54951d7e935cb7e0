"""A host cut off by a partition that sends no reset (its packets silently dropped), checked
through the real checker, collector and SSH transport against a real sshd.

Such a host is reported unreachable after one command timeout: its check script brought
nothing back, not even its first line, which is the connection's failure and not a step that
overran, so no careful script follows it on the dead connection. A host whose step is only
slow still gets the careful check, and a careful host cut off is reported as soon. A host
whose sshd still answers while its shell sends nothing (stuck) is not cut off: its connection,
and a fix running on it, stay."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.ssh import _STUCK_MAX, SshTransport
from ai_sysadmin.hosts.transport import CommandResult
from ai_sysadmin.orchestrator.checker import CheckReport, HostChecker
from tests.support.machine import MACHINE_WIDE
from tests.support.tcp import FreezingProxy

from .conftest import DEADLINE, NS_PREFIX, POLL, PREFIX, Hosts, SshHost

#: a MAC address nobody has: frames sent to it are dropped by the host's end of the link
NOBODY = "02:00:5e:00:53:01"
#: seconds: short for the test, long enough for a whole check on a busy machine
COMMAND_TIMEOUT = 3.0
CONNECT_TIMEOUT = 2.0
T = TypeVar("T")


@dataclass
class Try:
    """One check script the transport ran."""

    careful: bool  # each step under its own timeout(1)
    seconds: float
    ended: str  # "ok", or the error's text


class Scripts(SshTransport):
    """The real transport, noting each check script it runs."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.tries: list[Try] = []

    async def run_script(self, script: str, done: str, timeout: float,
                         **more: float | None) -> CommandResult:
        started = time.monotonic()
        careful = "timeout -k" in script
        try:
            result = await super().run_script(script, done, timeout, **more)
        except Exception as exc:
            self.tries.append(Try(careful, time.monotonic() - started, str(exc)))
            raise
        self.tries.append(Try(careful, time.monotonic() - started, "ok"))
        return result


@dataclass
class Host:
    ssh: SshHost
    #: while this file exists, the host's df hangs (a dead NFS mount)
    hang_df: Path


@pytest.fixture
def host(ssh_hosts: Hosts, tmp_path: Path) -> Iterator[Host]:
    """An sshd of its own (the partition cuts no other test's host), whose df hangs on
    demand: the real one, bound elsewhere, behind a wrapper in its mount namespace only."""
    netlab = ssh_hosts.netlab
    ns, address = netlab.namespace()
    flag = tmp_path / "hang-df"
    real = tmp_path / "real-df"
    real.write_text("")
    wrapper = tmp_path / "df"
    wrapper.write_text(f'#!/bin/sh\n[ ! -e {flag} ] || exec sleep 31\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    setup = f"mount --bind /usr/bin/df {real} && mount --bind {wrapper} /usr/bin/df && "
    sshd = netlab.sshd(f"cut-{ns}", ns, [address], setup=setup)
    try:
        yield Host(sshd, flag)
    finally:
        mend(address)


def _link(address: str) -> str:
    """The root namespace's end of the link to ``address`` (see NetLab.namespace)."""
    assert address.startswith(f"{PREFIX}.")
    return f"{NS_PREFIX}{address.split('.')[2]}h"


def well(report: CheckReport) -> bool:
    """Collected in full, and nothing found but what this busy machine itself shows: its
    load, memory and swap, and the processes of its table, which the host shares (another
    test's zombies)."""
    return not report.errors and all(f.rule in MACHINE_WIDE for f in report.findings)


def cut(address: str) -> None:
    """Frames to the host go to nobody: nothing reaches it, nothing is refused."""
    subprocess.run(["ip", "neigh", "replace", address, "lladdr", NOBODY, "dev", _link(address),
                    "nud", "permanent"], check=True, capture_output=True, timeout=10)


def mend(address: str) -> None:
    subprocess.run(["ip", "neigh", "del", address, "dev", _link(address)], check=False,
                   capture_output=True, timeout=10)


@dataclass
class Seen:
    report: CheckReport
    seconds: float
    tries: list[Try]


def checks(host: Host, known_hosts: Path, tmp_path: Path,
           before_each: list[str]) -> tuple[Scripts, list[Seen]]:
    """One check per entry of ``before_each``, after doing what its words name: "cut" the
    host off, "mend" the way to it, make its df "hang" or "answer" again ("": nothing)."""
    settings = Settings(ai_name="sshtest", state_dir=tmp_path / "state",
                        command_timeout=COMMAND_TIMEOUT)
    ssh = Scripts(host.ssh.target(host.ssh.write_known_hosts(known_hosts),
                                  connect_timeout=CONNECT_TIMEOUT), name="cut")
    checker = HostChecker(ssh, settings, None)
    doing = {"cut": lambda: cut(host.ssh.address), "mend": lambda: mend(host.ssh.address),
             "hang": host.hang_df.touch, "answer": lambda: host.hang_df.unlink(missing_ok=True)}

    async def go() -> list[Seen]:
        seen = []
        try:
            for words in before_each:
                for word in words.split():
                    doing[word]()
                ssh.tries.clear()
                started = time.monotonic()
                report = await checker.check()
                seen.append(Seen(report, time.monotonic() - started, list(ssh.tries)))
        finally:
            await ssh.close()
        return seen

    return ssh, asyncio.run(go())


def unreachable(seen: Seen) -> str:
    """The host_unreachable finding's evidence (the finding must be the only one)."""
    assert [(f.rule, f.subject) for f in seen.report.findings] == [("host_unreachable", "cut")]
    return seen.report.findings[0].evidence[0]


def test_a_host_cut_off_is_unreachable_after_one_command_timeout_and_checked_again_after(
    host: Host, known_hosts: Path, tmp_path: Path
) -> None:
    ssh, (first, cut_off, still, back) = checks(host, known_hosts, tmp_path,
                                                 ["", "cut", "", "mend"])
    assert well(first.report)
    # one script, which brought nothing back: no careful one after it on a dead connection
    # (that waited three command timeouts more: 6x in all with the close of the first)
    assert [t.careful for t in cut_off.tries] == [False], cut_off.tries
    assert "nothing came back within 3 s: the host stopped answering" in unreachable(cut_off)
    assert cut_off.seconds < 1.5 * COMMAND_TIMEOUT, cut_off.seconds
    # its connection was dropped: the next check connects afresh, and waits for that alone
    assert "no SSH connection" in unreachable(still)
    assert still.seconds < CONNECT_TIMEOUT + 1, still.seconds
    # answering again, it is checked in full, on a new connection, and not carefully: a host
    # that answered nothing had no step that ran long
    assert well(back.report), (back.report.errors, back.report.findings)
    assert [t.careful for t in back.tries] == [False]
    assert ssh.connects == 2


def test_a_slow_step_gets_the_careful_check_and_a_careful_host_cut_off_is_reported_as_soon(
    host: Host, known_hosts: Path, tmp_path: Path
) -> None:
    _, (hung, cut_off, back) = checks(host, known_hosts, tmp_path,
                                      ["hang", "cut", "mend answer"])
    # the host answered, its df did not: the script overran and went again, careful
    assert [t.careful for t in hung.tries] == [False, True], hung.tries
    assert set(hung.report.errors) == {"mounts"}, hung.report.errors
    assert "timed out after 3 s" in hung.report.errors["mounts"]
    # careful now, with room for several steps' time limits in one script: a host that sends
    # nothing back is still reported at one command timeout, not at the script's limit
    assert [t.careful for t in cut_off.tries] == [True], cut_off.tries
    assert "nothing came back within 3 s" in unreachable(cut_off)
    assert cut_off.seconds < 1.5 * COMMAND_TIMEOUT, cut_off.seconds
    assert well(back.report), (back.report.errors, back.report.findings)


def test_a_host_cut_off_part_way_through_its_reply_is_unreachable_not_checked_carefully(
    host: Host, known_hosts: Path, tmp_path: Path
) -> None:
    """The way to the host freezes, sending no reset, while a check's reply comes: its first
    lines came back, then nothing more (the host lost power, or a firewall on the way
    dropped the connection's state). That is a host that stopped answering, as one whose
    reply never began, and not a step that ran long: its sshd does not answer either. The
    host is unreachable at that check, no careful script follows on the dead connection,
    and the next check, with the way open again, is no careful one."""
    proxy = FreezingProxy(host.ssh.address, host.ssh.port)
    through = replace(host.ssh, address="127.0.0.1", port=proxy.port)
    settings = Settings(ai_name="sshtest", state_dir=tmp_path / "state",
                        command_timeout=COMMAND_TIMEOUT)
    ssh = Scripts(through.target(through.write_known_hosts(known_hosts),
                                 connect_timeout=CONNECT_TIMEOUT), name="cut")
    checker = HostChecker(ssh, settings, None)

    async def go() -> tuple[CheckReport, Seen, Seen, int]:
        try:
            first = await checker.check()
            # the reply stops at df, which hangs on the host: what came before it is through
            host.hang_df.touch()
            ssh.tries.clear()
            before = proxy.down
            started_at = time.monotonic()
            checking = asyncio.create_task(checker.check())
            await started(host.ssh, ["sleep", "31"])
            deadline = time.monotonic() + DEADLINE
            while proxy.down == before:
                assert time.monotonic() < deadline, "nothing of the reply came back"
                await asyncio.sleep(POLL)
            proxy.freeze()
            cut_off = Seen(await checking, time.monotonic() - started_at, list(ssh.tries))
            host.hang_df.unlink()
            ssh.tries.clear()
            started_at = time.monotonic()
            back = Seen(await checker.check(), time.monotonic() - started_at, list(ssh.tries))
            return first, cut_off, back, ssh.connects
        finally:
            await ssh.close()
            proxy.close()

    first, cut_off, back, connects = asyncio.run(go())
    assert well(first)
    # one script, cut off part-way: no careful one after it on the dead connection (which
    # waited three command timeouts more), and the host is unreachable
    assert [t.careful for t in cut_off.tries] == [False], cut_off.tries
    assert "the reply stopped part-way" in unreachable(cut_off), cut_off.report.findings
    # the dead connection was dropped: the next check connects afresh, and is not careful,
    # as no step of the host ran long
    assert well(back.report), (back.report.errors, back.report.findings)
    assert [t.careful for t in back.tries] == [False], back.tries
    assert connects == 2


#: one way of a slow link (a saturated LTE uplink, a satellite site): its round trip is
#: longer than the second sshd's answer once got
SLOW_LINK = 0.6
#: room for a whole check over it: its shell's start and each script take round trips
SLOW_TIMEOUT = 8.0


@pytest.mark.slow
def test_a_live_host_on_a_slow_link_whose_step_runs_long_overran_and_keeps_its_connection(
    host: Host, known_hosts: Path, tmp_path: Path
) -> None:
    """A host whose round trip is more than a second: its check's reply stops at a step
    that runs long (df on a hung NFS mount). Its sshd answers, a round trip later: the host
    overran, as on a near link, and gets the careful check on the same connection; it was
    called unreachable and its connection dropped (with a fix running on it), as sshd had a
    second to answer. Frozen, the same host is still unreachable at its next check."""
    proxy = FreezingProxy(host.ssh.address, host.ssh.port, delay=SLOW_LINK)
    through = replace(host.ssh, address="127.0.0.1", port=proxy.port)
    settings = Settings(ai_name="sshtest", state_dir=tmp_path / "state",
                        command_timeout=SLOW_TIMEOUT)
    ssh = Scripts(through.target(through.write_known_hosts(known_hosts), connect_timeout=30.0),
                  name="cut")
    checker = HostChecker(ssh, settings, None)

    async def go() -> tuple[CheckReport, Seen, int, Seen]:
        try:
            first = await checker.check()
            host.hang_df.touch()
            ssh.tries.clear()
            hung = Seen(await checker.check(), 0.0, list(ssh.tries))
            kept = ssh.connects
            proxy.freeze()
            ssh.tries.clear()
            frozen = Seen(await checker.check(), 0.0, list(ssh.tries))
            return first, hung, kept, frozen
        finally:
            await ssh.close()
            proxy.close()

    first, hung, kept, frozen = asyncio.run(go())
    assert well(first), (first.errors, first.findings)
    # the host answered, its df did not: the script overran and went again, careful, on the
    # connection it had
    assert [t.careful for t in hung.tries] == [False, True], hung.tries
    assert "timed out after 8 s" in hung.tries[0].ended, hung.tries
    assert not any(f.rule == "host_unreachable" for f in hung.report.findings), (
        hung.report.findings)
    assert set(hung.report.errors) == {"mounts"}, hung.report.errors
    assert kept == 1
    # the way to it frozen: its sshd's silence, however slow the link, is no answer
    assert [t.careful for t in frozen.tries] == [True], frozen.tries
    assert "nothing came back within 8 s" in unreachable(frozen)


def test_a_host_whose_logins_outlast_a_command_timeout_is_checked_not_unreachable(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    """Every session of this host waits 4 s before its command runs (a logind that stalls
    PAM, rc files on a slow home): a new shell says nothing for longer than a command
    timeout, which is no cut. Its check goes again, carefully, and the shell it then keeps
    answers the checks after it at once."""
    netlab = ssh_hosts.netlab
    ns, address = netlab.namespace()
    login = tmp_path / "slow-login"
    login.write_text('#!/bin/sh\nsleep 4\nexec "$SHELL" -c "$SSH_ORIGINAL_COMMAND"\n')
    login.chmod(0o755)
    sshd = netlab.sshd(f"slow-{ns}", ns, [address], extra=[f"ForceCommand {login}"])
    _, (first, second) = checks(Host(sshd, tmp_path / "never"), known_hosts, tmp_path, ["", ""])
    assert well(first.report), (first.report.errors, first.report.findings)
    assert [t.careful for t in first.tries] == [False, True], first.tries
    assert well(second.report), (second.report.errors, second.report.findings)
    assert [t.careful for t in second.tries] == [True], second.tries
    assert second.seconds < COMMAND_TIMEOUT, second.seconds


def _descendants(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:  # it ended meanwhile
        return []
    return [d for child in map(int, children) for d in (child, *_descendants(child))]


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


async def started(sshd: SshHost, argv: list[str]) -> int:
    """The pid of the one process running ``argv`` under ``sshd``, once it runs."""
    deadline = time.monotonic() + DEADLINE
    while True:
        found = [pid for session in sshd.session_pids() for pid in _descendants(session)
                 if _cmdline(pid) == argv]
        if found:
            assert len(found) == 1, found
            return found[0]
        assert time.monotonic() < deadline, f"{argv} not running under sshd"
        await asyncio.sleep(POLL)


def test_a_host_whose_shell_is_stuck_is_checked_and_a_fix_running_on_it_goes_on(
    host: Host, known_hosts: Path, tmp_path: Path
) -> None:
    """The long-lived shell stops (SIGSTOP: as one that swaps, or whose binary sits on a hung
    mount): the check script brings nothing back, but the host's sshd still answers on the
    connection. The host is no more unreachable than it is cut off: only the shell is
    dropped, the check goes again in a new one, and a fix that was running on the same
    connection (the executor's) is not killed with it."""
    settings = Settings(ai_name="sshtest", state_dir=tmp_path / "state",
                        command_timeout=COMMAND_TIMEOUT)
    ssh = Scripts(host.ssh.target(host.ssh.write_known_hosts(known_hosts),
                                  connect_timeout=CONNECT_TIMEOUT), name="cut")
    checker = HostChecker(ssh, settings, None)

    async def go() -> tuple[CheckReport, list[Try], CommandResult, CheckReport, int]:
        stopped = None
        try:
            assert well(await checker.check())
            stopped = await started(host.ssh, ["sh", "-s"])
            os.kill(stopped, signal.SIGSTOP)
            fix = asyncio.create_task(ssh.run(["sleep", "5"], timeout=30))
            await started(host.ssh, ["sleep", "5"])
            ssh.tries.clear()
            stuck = await checker.check()
            tries = list(ssh.tries)
            fixed = await fix
            return stuck, tries, fixed, await checker.check(), ssh.connects
        finally:
            if stopped is not None:
                os.kill(stopped, signal.SIGKILL)
            await ssh.close()

    stuck, tries, fixed, after, connects = asyncio.run(go())
    # the stuck shell's script timed out, a host that answers: it went again, careful, in a
    # new shell, and the host was checked in full, not reported unreachable
    assert [t.careful for t in tries] == [False, True], tries
    assert "sshd answers" in tries[0].ended and "nothing came back" not in tries[0].ended
    # its silence, sshd's answer, and the stopped shell's close waited for (2 s at most)
    assert tries[0].seconds < COMMAND_TIMEOUT + 3, tries[0].seconds
    assert well(stuck), (stuck.errors, stuck.findings)
    # the fix ran its whole course on the connection the check shared
    assert fixed.returncode == 0, fixed
    assert well(after), (after.errors, after.findings)
    assert connects == 1


def _shells(session: int) -> list[int]:
    """The `sh -s` shells a connection (its sshd process) holds sessions of: not the
    subshells they fork for a step (same name), which hold none."""
    found: list[int] = []

    def under(pid: int) -> None:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:  # it ended meanwhile
            return
        for child in map(int, children):
            if _cmdline(child) == ["sh", "-s"]:
                found.append(child)  # what it forks is its own
            else:
                under(child)

    under(session)
    return found


def _stuck_shells(sshd: SshHost) -> dict[int, int]:
    """Per connection (its sshd process): the `sh -s` shells it holds."""
    return {session: len(_shells(session)) for session in sshd.session_pids()}


class EveryShellStuck:
    """Every shell the host starts is stopped at once (its binary on a hung mount, say): what
    the transport and a checker do then, with the most stuck shells a connection held."""

    def __init__(self, host: Host, known_hosts: Path, tmp_path: Path) -> None:
        self.host = host
        # no step of a stopped shell's script ever runs: a short limit keeps the test short
        settings = Settings(ai_name="sshtest", state_dir=tmp_path / "state",
                            command_timeout=1.0)
        self.ssh = Scripts(host.ssh.target(host.ssh.write_known_hosts(known_hosts),
                                           connect_timeout=CONNECT_TIMEOUT), name="cut")
        self.checker = HostChecker(self.ssh, settings, None)
        self.stopped: set[int] = set()
        self.most = 0
        #: whether shells seen now are stopped
        self.stopping = True
        # and its df hangs: a shell not yet seen and stopped as its script starts is seen
        # while the script waits on df, never given time to end it (a script that ended
        # would make the shells' timeouts no longer in a row)
        host.hang_df.touch()

    async def _stop_every_shell(self) -> None:
        while True:
            for session in self.host.ssh.session_pids() if self.stopping else ():
                for pid in _descendants(session):
                    if pid not in self.stopped and _cmdline(pid) == ["sh", "-s"]:
                        os.kill(pid, signal.SIGSTOP)
                        self.stopped.add(pid)
            self.most = max([self.most, *_stuck_shells(self.host.ssh).values()])
            await asyncio.sleep(POLL)

    async def timeouts_in_a_row(self, count: int) -> list[CheckReport]:
        """Checks until the last ``count`` scripts all timed out (a shell may run its script
        before it is seen and stopped: the next one is), 12 checks at most."""
        self.ssh.tries.clear()
        reports = []
        while len(self.ssh.tries) < count or any(
                t.ended == "ok" for t in self.ssh.tries[-count:]):
            assert len(reports) < 12, self.ssh.tries
            reports.append(await self.checker.check())
        return reports

    def run(self, body: Callable[[EveryShellStuck], Awaitable[T]]) -> T:
        async def go() -> T:
            stopper = asyncio.create_task(self._stop_every_shell())
            try:
                return await body(self)
            finally:
                stopper.cancel()
                for pid in self.stopped:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                await self.ssh.close()

        return asyncio.run(go())


@pytest.mark.slow
def test_a_host_whose_every_shell_sticks_is_given_new_connections_not_sessions_without_end(
    host: Host, known_hosts: Path, tmp_path: Path
) -> None:
    """Each shell the transport drops keeps its session on sshd's side for as long as it
    lives, and a connection holds at most MaxSessions (10 by default): dropped one by one,
    they would fill it, and a fix would find no session left. Once a connection holds
    _STUCK_MAX stuck shells it is dropped with them, and the next check connects afresh."""
    stuck = EveryShellStuck(host, known_hosts, tmp_path)

    async def four_timeouts(stuck: EveryShellStuck) -> list[CheckReport]:
        return await stuck.timeouts_in_a_row(_STUCK_MAX + 1)

    reports = stuck.run(four_timeouts)
    # four scripts in a row timed out, each in a stuck shell: no connection ever held more
    # than the limit, the third one's was dropped with them, and the transport connected
    # afresh for the fourth
    assert (stuck.most, stuck.ssh.connects) == (_STUCK_MAX, 2), (stuck.most, stuck.ssh.connects)
    # the checks whose scripts timed out said so; none called the host healthy
    assert reports[-1].errors, reports[-1]


@pytest.mark.slow
def test_a_script_that_comes_back_between_stuck_shells_frees_none_of_their_sessions(
    host: Host, known_hosts: Path, tmp_path: Path
) -> None:
    """Two shells stuck, then one that runs its script to its end, then a third stuck: the
    two before still hold their sessions, so the third is the limit, and the connection goes
    with the three (counting timeouts only since the last script that came back, it held
    ever more of them, toward sshd's MaxSessions)."""
    stuck = EveryShellStuck(host, known_hosts, tmp_path)

    async def stuck_answered_stuck(stuck: EveryShellStuck) -> tuple[CheckReport, str]:
        await stuck.timeouts_in_a_row(_STUCK_MAX - 1)
        stuck.stopping = False
        host.hang_df.unlink()
        answered = await stuck.checker.check()
        stuck.stopping = True
        host.hang_df.touch()
        await stuck.timeouts_in_a_row(1)
        said = stuck.ssh.tries[-1].ended
        await stuck.checker.check()  # on a connection of its own, whatever it finds
        return answered, said

    answered, said = stuck.run(stuck_answered_stuck)
    assert answered.snapshot.mounts and not answered.errors, answered
    # the third timeout was the connection's limit: dropped with its stuck shells, the next
    # check connected afresh
    assert (stuck.most, stuck.ssh.connects) == (_STUCK_MAX, 2), (
        stuck.most, stuck.ssh.connects, stuck.ssh.tries)
    assert (f"{_STUCK_MAX} shells of scripts that timed out still hold their sessions on this "
            "connection: it is dropped") in said, said


@pytest.mark.slow
def test_stuck_shells_that_have_since_ended_count_no_more_toward_the_limit(
    host: Host, known_hosts: Path, tmp_path: Path
) -> None:
    """Two shells stuck, then ended on the host (killed, as an admin would, or as a hung
    mount that came back lets them): their sessions closed, so the connection, which a
    journal follower may share, takes two more timeouts and goes only at the third, when
    three shells stuck together hold their sessions again (counting every timeout on the
    connection, it went at the first timeout after them, hours later or not)."""
    stuck = EveryShellStuck(host, known_hosts, tmp_path)

    async def stuck_ended_stuck(stuck: EveryShellStuck) -> tuple[int, int]:
        await stuck.timeouts_in_a_row(_STUCK_MAX - 1)
        for shell in list(stuck.stopped):
            for pid in (*_descendants(shell), shell):  # its df too, which holds its output
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + DEADLINE
        while any(_stuck_shells(host.ssh).values()):
            assert time.monotonic() < deadline, _stuck_shells(host.ssh)
            await asyncio.sleep(POLL)
        await stuck.timeouts_in_a_row(_STUCK_MAX - 1)
        kept = stuck.ssh.connects
        await stuck.timeouts_in_a_row(1)
        await stuck.checker.check()  # on a connection of its own, whatever it finds
        return kept, stuck.ssh.connects

    kept, after = stuck.run(stuck_ended_stuck)
    assert kept == 1, stuck.ssh.tries
    assert (stuck.most, after) == (_STUCK_MAX, 2), (stuck.most, after, stuck.ssh.tries)


@pytest.mark.slow
def test_a_fix_running_while_every_shell_sticks_is_not_cut_off(
    host: Host, known_hosts: Path, tmp_path: Path
) -> None:
    """The connection a fix runs on is not dropped for the shells stuck beside it: the fix
    runs its course (here it is killed on the host), and the connection goes at the first
    timeout after it ended."""
    stuck = EveryShellStuck(host, known_hosts, tmp_path)
    fix_argv = ["sleep", "601"]

    async def checks_beside_a_fix(stuck: EveryShellStuck) -> tuple[int, CommandResult, int]:
        fix = asyncio.create_task(stuck.ssh.run(fix_argv, timeout=120))
        sleeping = await started(stuck.host.ssh, fix_argv)
        await stuck.timeouts_in_a_row(_STUCK_MAX)  # the limit, the fix still running
        beside = stuck.ssh.connects
        os.kill(sleeping, signal.SIGTERM)  # the fix ends (it failed: not the test's matter)
        done = await fix
        # the next to time out drops the connection, and a check after it connects afresh
        await stuck.timeouts_in_a_row(1)
        await stuck.checker.check()
        return beside, done, stuck.ssh.connects

    beside, done, after = stuck.run(checks_beside_a_fix)
    # the fix ended as the host ended it, not as a dropped connection would: it went on
    # through the three timed-out scripts, on the one connection
    assert beside == 1 and done.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM), (
        beside, done)
    assert after == 2
