"""Collect a Snapshot of one host through its Transport.

Each section is a command (or a file) plus a pure parser from :mod:`.parsers`. Sections run
concurrently; one that fails is recorded in ``Snapshot.errors`` and the others go on. A transport
with ``one_round_trip`` (SSH) gets every command in one remote script instead
(:mod:`.remote_script`), whose results feed the very same code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..errors import TransportError
from ..hosts.osinfo import parse_os_release
from ..hosts.transport import Transport
from . import parsers, remote_script
from .snapshot import Snapshot

log = logging.getLogger("ai_sysadmin.service")

#: what systemctl says when systemd is not PID 1 or its bus is unreachable
_NO_SYSTEMD = (
    "not been booted with systemd",
    "Failed to connect to bus",
    "Failed to connect to system scope bus",
    "System has not been booted",
)


#: exit 3 when a system journal exists but this user cannot read it (builtins only)
JOURNAL_ACCESS_ARGV = ["sh", "-c", "u=0; for f in /var/log/journal/*/system.journal "
                       "/run/log/journal/*/system.journal; do [ -r \"$f\" ] && exit 0; "
                       "[ -e \"$f\" ] && u=3; done; exit $u"]
_SYSTEM_JOURNAL_UNREADABLE = 3
_JOURNAL_ACCESS = ("add it to the systemd-journal (or adm) group, or check as root, so that the "
                   "system's errors are seen")

#: how long a host's checks stay careful after one of them hung
CAREFUL_SECONDS = 3600.0

#: a stored journal position that is a time, not a cursor (see Collector._journal_position)
SINCE_PREFIX = "since:@"
#: the link to the current NixOS generation
NIXOS_SYSTEM_PROFILE = "/nix/var/nix/profiles/system"


@dataclass(frozen=True)
class JournalQuery:
    """Where the journal section starts: after a cursor, or the last N entries of this boot."""

    after_cursor: str | None = None
    first_lines: int = 200


def journal_argv(settings: Settings, query: JournalQuery, follow: bool = False) -> list[str]:
    argv = [
        settings.programs.journalctl,
        "--no-pager",
        "--output=json",
        f"--output-fields={parsers.JOURNAL_FIELDS}",
        "--priority=warning",
    ]
    if query.after_cursor and query.after_cursor.startswith(SINCE_PREFIX):
        argv.append(f"--since=@{query.after_cursor[len(SINCE_PREFIX):]}")
    elif query.after_cursor:
        argv.append(f"--after-cursor={query.after_cursor}")
    elif follow:
        argv += ["--lines=0"]
    else:
        argv += ["--boot", f"--lines={query.first_lines}"]
    if follow:
        argv.append("--follow")
    return argv


class Collector:
    """Takes snapshots of one host."""

    def __init__(self, transport: Transport, settings: Settings) -> None:
        self.transport = transport
        self.settings = settings
        #: until then, remote checks run each command under its own timeout(1)
        self._careful_until = 0.0

    async def _run(self, argv: list[str]) -> str:
        result = await self.transport.run(argv, self.settings.command_timeout)
        if not result.ok:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise TransportError(
                f"{argv[0]} exited {result.returncode}: {detail[-1] if detail else 'no output'}"
            )
        return result.stdout

    async def _file(self, path: str) -> str:
        text = await self.transport.read_file(path, self.settings.command_timeout)
        if text is None:
            raise TransportError(f"cannot read {path}")
        return text

    async def _journal_position(self) -> str | None:
        """Where the next check starts when no warning entry has been read yet.

        journalctl's ``--after-cursor`` with a ``--priority`` filter skips the first matching
        entry when the cursor itself does not match the filter, so the position must be the
        last *warning* entry, or else a time: that of the newest entry of any priority.
        """
        warning, base = self._position_argvs()
        for argv in (warning, base):
            result = await self.transport.run(argv, self.settings.command_timeout)
            entries = parsers.parse_journal(result.stdout) if result.ok else []
            if entries and argv is not base:
                return entries[-1].cursor
            if entries:
                return f"{SINCE_PREFIX}{entries[-1].timestamp:.6f}"
        return None

    def _position_argvs(self) -> tuple[list[str], list[str]]:
        """The last warning entry; the last entry of any priority."""
        base = [self.settings.programs.journalctl, "--no-pager", "--output=json",
                "--output-fields=PRIORITY", "--lines=1"]
        return [*base, "--priority=warning"], base

    def round_trip_commands(self, journal: JournalQuery | None = None) -> list[list[str]]:
        """Every command :meth:`collect` may run, for one remote script (files are ``cat``).

        Conditional ones are always included (they are cheap): the os-release fallback, the
        NixOS generation, the journal position when no cursor is stored yet.
        """
        p = self.settings.programs
        query = journal or JournalQuery(first_lines=self.settings.journal_first_lines)
        files = ["/proc/stat", "/proc/meminfo", "/proc/pressure/memory", "/proc/vmstat",
                 "/proc/loadavg", "/proc/uptime", "/etc/os-release", "/usr/lib/os-release"]
        commands = [["cat", "--", path] for path in files]
        commands += [
            [p.df, "-B1", f"--output={parsers.DF_COLUMNS}"],
            [p.readlink, NIXOS_SYSTEM_PROFILE],
            [p.systemctl, "list-units", "--all", "--output=json", "--no-pager"],
            [p.systemctl, "show", "*.service", "--property=Id,NRestarts", "--no-pager"],
            journal_argv(self.settings, query),
            self._ps_argv(),
        ]
        if self.transport.runs_as_root is not True:
            commands.append(JOURNAL_ACCESS_ARGV)
        if query.after_cursor is None:
            commands += self._position_argvs()
        return commands

    def round_trip_guards(
        self, commands: list[list[str]]
    ) -> dict[tuple[str, ...], remote_script.Guard]:
        """Commands that the remote script runs only where they can answer.

        ``/run/systemd/system`` is how systemd itself tells that it is PID 1 (sd_booted); on a
        host without it, systemctl and journalctl would only start to say so.
        """
        p = self.settings.programs
        systemd = remote_script.Guard(
            "-d", "/run/systemd/system",
            "System has not been booted with systemd (no /run/systemd/system)")
        nixos = remote_script.Guard(
            "-L", NIXOS_SYSTEM_PROFILE, f"readlink: {NIXOS_SYSTEM_PROFILE}: not a symlink")
        guards = {}
        for argv in commands:
            if argv[0] in (p.systemctl, p.journalctl) or argv == JOURNAL_ACCESS_ARGV:
                guards[tuple(argv)] = systemd
            elif argv == [p.readlink, NIXOS_SYSTEM_PROFILE]:
                guards[tuple(argv)] = nixos
        return guards

    async def _round_trip(self, journal: JournalQuery | None) -> remote_script.ReplayTransport:
        """One script for the whole Snapshot. It starts no process but the commands; a step
        that hangs makes the script overrun, and then this host's checks put each step under
        its own timeout(1) for a while (CAREFUL_SECONDS), starting with this one again."""
        commands = self.round_trip_commands(journal)

        async def trip(careful: bool) -> remote_script.ReplayTransport:
            return await remote_script.round_trip(
                self.transport, commands, self.settings.command_timeout,
                process_list=self._ps_argv(), guards=self.round_trip_guards(commands),
                careful=careful)

        if time.monotonic() < self._careful_until:
            return await trip(careful=True)
        replay = await trip(careful=False)
        if replay.overran:
            log.warning("%s: the check ran past %g s; each command gets its own time limit now",
                        self.transport.host, self.settings.command_timeout,
                        extra={"host": self.transport.host})
            self._careful_until = time.monotonic() + CAREFUL_SECONDS
            replay = await trip(careful=True)
        return replay

    def _ps_argv(self) -> list[str]:
        return [self.settings.programs.ps, "-ww", "-eo", parsers.PS_COLUMNS, "--sort=-pcpu"]

    async def collect(self, journal: JournalQuery | None = None) -> Snapshot:
        if self.transport.one_round_trip:
            return await Collector(await self._round_trip(journal), self.settings).collect(journal)
        snap = Snapshot(host=self.transport.host, taken_at=time.time())
        p = self.settings.programs

        async def cpu() -> None:
            snap.cpu = parsers.parse_proc_stat(await self._file("/proc/stat"))

        async def memory() -> None:
            text = await self._file("/proc/meminfo")
            pressure = await self.transport.read_file("/proc/pressure/memory")
            snap.memory = parsers.parse_meminfo(text, pressure)

        async def swap() -> None:
            snap.swap = parsers.parse_vmstat(await self._file("/proc/vmstat"))

        async def load() -> None:
            snap.load = parsers.parse_loadavg(await self._file("/proc/loadavg"))

        async def uptime() -> None:
            snap.uptime_seconds = parsers.parse_uptime(await self._file("/proc/uptime"))

        async def mounts() -> None:
            argv = [p.df, "-B1", f"--output={parsers.DF_COLUMNS}"]
            result = await self.transport.run(argv, self.settings.command_timeout)
            # df exits 1 when one mount is unreadable but still reports the others
            if not result.stdout.strip():
                raise TransportError(f"df printed nothing: {result.stderr.strip()[:200]}")
            snap.mounts = parsers.parse_df(result.stdout)

        async def os_facts() -> None:
            text = await self.transport.read_file("/etc/os-release")
            if text is None:
                text = await self.transport.read_file("/usr/lib/os-release")
            snap.os = parse_os_release(text or "")
            if snap.os.is_nixos:
                link = await self.transport.run(
                    [p.readlink, NIXOS_SYSTEM_PROFILE], self.settings.command_timeout
                )
                if link.ok:
                    snap.nixos_generation = parsers.parse_nixos_generation(link.stdout)

        async def units() -> None:
            timeout = self.settings.command_timeout
            listed, shown = await asyncio.gather(
                self.transport.run(
                    [p.systemctl, "list-units", "--all", "--output=json", "--no-pager"], timeout
                ),
                self.transport.run(
                    [p.systemctl, "show", "*.service", "--property=Id,NRestarts", "--no-pager"],
                    timeout,
                ),
                return_exceptions=True,
            )
            if isinstance(listed, TransportError) and "cannot start" in str(listed):
                snap.systemd_running, snap.units = False, []
                return
            if isinstance(listed, BaseException):
                raise listed
            if not listed.ok:
                if any(marker in listed.stderr for marker in _NO_SYSTEMD):
                    snap.systemd_running, snap.units = False, []
                    return
                raise TransportError(f"systemctl list-units: {listed.stderr.strip()[:200]}")
            restarts = {}
            if not isinstance(shown, BaseException) and shown.ok:
                restarts = parsers.parse_show_restarts(shown.stdout)
            snap.systemd_running = True
            snap.units = parsers.merge_restarts(parsers.parse_list_units(listed.stdout), restarts)

        async def journal_section() -> None:
            if snap.systemd_running is False:
                snap.journal = []
                return
            query = journal or JournalQuery(first_lines=self.settings.journal_first_lines)
            result = await self.transport.run(
                journal_argv(self.settings, query), self.settings.command_timeout
            )
            if not result.ok and not result.stdout:
                if "No journal files were found" in result.stderr:
                    snap.journal = []
                    return
                if "insufficient permissions" in result.stderr:
                    raise TransportError(f"journalctl: the system journal is not readable by "
                                         f"this user; {_JOURNAL_ACCESS}")
                if query.after_cursor and "cursor" in result.stderr.lower():
                    # a cursor from another journal (reinstalled host, wiped /var/log/journal)
                    # would fail forever: start again from now, and say what may be missed
                    snap.journal_cursor = f"{SINCE_PREFIX}{snap.taken_at:.6f}"
                    raise TransportError("the stored journal cursor was rejected; reading "
                                         "again from now (entries before may be skipped)")
                raise TransportError(f"journalctl: {result.stderr.strip()[:200]}")
            snap.journal = parsers.parse_journal(result.stdout)
            if self.transport.runs_as_root is not True and (await self.transport.run(
                    JOURNAL_ACCESS_ARGV, self.settings.command_timeout)
                    ).returncode == _SYSTEM_JOURNAL_UNREADABLE:
                # journalctl exits 0 with the user's own entries (its hint is not printed with
                # --output=json): the system's errors would go unseen on a "healthy" host
                snap.errors["journal"] = (f"journalctl shows this user's own messages only; "
                                          f"{_JOURNAL_ACCESS}")
            snap.journal_cursor = (
                snap.journal[-1].cursor if snap.journal else query.after_cursor
            )
            if snap.journal_cursor is None:
                # nothing at warning yet: still take a position, so that the next check reads
                # everything after it instead of "the last N lines" again
                snap.journal_cursor = await self._journal_position()

        async def processes() -> None:
            # -ww: never cut args to $COLUMNS (readline sets it invisibly in some parents)
            text = await self._run(self._ps_argv())
            snap.processes = parsers.top_processes(parsers.parse_ps(text))

        async def units_then_journal() -> None:
            await guarded("units", units)
            await guarded("journal", journal_section)

        async def guarded(section: str, step: Callable[[], Awaitable[Any]]) -> None:
            try:
                await step()
            except (TransportError, parsers.ParseError, ValueError, OSError) as exc:
                snap.errors[section] = str(exc)

        await asyncio.gather(
            guarded("cpu", cpu),
            guarded("memory", memory),
            guarded("swap", swap),
            guarded("load", load),
            guarded("uptime_seconds", uptime),
            guarded("mounts", mounts),
            guarded("os", os_facts),
            units_then_journal(),
            guarded("processes", processes),
        )
        return snap

