"""What a check collects, as one table: :data:`SECTIONS`.

Each row is one section of a :class:`Snapshot`: its name (the field it fills, and its key in
``Snapshot.errors`` when it cannot be collected), its sources (commands, or files written
``cat -- PATH`` as the remote script reads them), the :class:`Guard` of a command that means
nothing where a path is absent, and how the raw text becomes data, with no I/O: ``parse`` (a
pure parser of :mod:`.parsers`, for a section that is one text) or ``apply`` (for a section
that reads several texts, or tells more than one fact).

Which rule needs which section is said once, by the rule (``Rule.requires``); the rule registry
checks those names against this table and answers ``required_by`` for a section.

The collector reads each row's sources one command at a time; for a transport that asks for
one round trip, every source of the table goes into one remote script (:mod:`.remote_script`)
and its replayed results feed the same rows, so both paths give one Snapshot. In the script a
guard is a shell builtin test. The per-command path has no shell: a row's ``when`` tests the
same thing from a fact an earlier row found (systemd running, a NixOS system), and where it
does not hold, the guarded commands get the answer the script's guard gives.

A row with ``then`` is read in a second step, from what the first found: both paths read it
the same way, after the rest (a remote host in a second script), only where it asks anything.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from ..config import Programs, Settings
from ..errors import ProgramMissing, TransportError
from ..hosts.osinfo import parse_os_release
from ..hosts.transport import CommandResult
from ..redact import redact_cut
from . import parsers
from .remote_script import FILE_READ, Guard
from .snapshot import (
    UNIT_FILE_BAD,
    UNIT_FILE_HIDING,
    UNIT_FILE_NOT_FOUND,
    UNIT_FILE_PASSED_OVER,
    UNIT_SUFFIXES,
    Certificate,
    FilesystemErrors,
    HiddenUnitFile,
    JournalGap,
    KernelLimits,
    Mount,
    Snapshot,
)

#: journal entries a check reads after its cursor, at most (the rest at the next checks)
JOURNAL_CHUNK = 2000
#: a stored journal position that is a time, not a cursor (see :func:`_position`)
SINCE_PREFIX = "since:@"
#: a stored position after an entry no check reads whole: read on from the entry after it
AFTER_PREFIX = "after:"
#: the link to the current NixOS generation
NIXOS_SYSTEM_PROFILE = "/nix/var/nix/profiles/system"

#: exit 3 when a system journal exists but this user cannot read it (builtins only)
JOURNAL_ACCESS_ARGV = ("sh", "-c", "u=0; for f in /var/log/journal/*/system.journal "
                       "/run/log/journal/*/system.journal; do [ -r \"$f\" ] && exit 0; "
                       "[ -e \"$f\" ] && u=3; done; exit $u")
_SYSTEM_JOURNAL_UNREADABLE = 3
#: coredumpctl's words when it has no list to give: none recorded; an option it predates
_NO_CORE_DUMP_LIST = ("No coredumps found", "unrecognized option", "invalid option")
#: what nsenter and sh exit with when the program does not exist
_CANNOT_EXECUTE = 127
_JOURNAL_ACCESS = ("add it to the systemd-journal (or adm) group, or check as root, so that the "
                   "system's errors are seen")

#: what systemctl says when systemd is not PID 1. Not "Failed to connect to bus" alone: on a
#: host that runs systemd, that is a bus or PID 1 that does not answer now, and the unit
#: sections are then not collected (an error), never read as "no units" (which resolves)
_NO_SYSTEMD = (
    "not been booted with systemd",
    "System has not been booted",
)

#: ``/run/systemd/system`` is how systemd itself tells that it is PID 1 (sd_booted); on a host
#: without it, systemctl and journalctl would only start to say so
SYSTEMD = Guard("-d", "/run/systemd/system",
                "System has not been booted with systemd (no /run/systemd/system)")
NIXOS = Guard("-L", NIXOS_SYSTEM_PROFILE, f"readlink: {NIXOS_SYSTEM_PROFILE}: not a symlink")
#: Debian's and Ubuntu's record that a boot is due (update-notifier, unattended-upgrades), and
#: the packages that made it so
REBOOT_REQUIRED = "/run/reboot-required"
REBOOT_REQUIRED_PKGS = "/run/reboot-required.pkgs"
#: the kernel's taint flags: on every Linux, so no guard; in a remote script, read by the one
#: tail of the /proc files (no process of its own)
KERNEL_TAINTED = "/proc/sys/kernel/tainted"
#: the NixOS system the host booted, and the one it switched to since
NIXOS_BOOTED, NIXOS_CURRENT = "/run/booted-system", "/run/current-system"
BOOTED = Guard("-e", NIXOS_BOOTED, f"readlink: {NIXOS_BOOTED}: No such file or directory")
#: systemd-timesyncd runs: a host without it (chrony, a container) starts no process to ask
TIMESYNCD = Guard("-d", parsers.TIMESYNC_DIR,
                  f"stat: cannot statx '{parsers.TIMESYNC_DIR}': No such file or directory")


#: the most of the journal one check reads, in bytes. Any local user logs entries of
#: megabytes (``logger --journald``; 4 MB of control characters is 8 MB of JSON): nine of them
#: passed what a remote check's reply may hold, and every section of the host was lost at
#: every check, the journal's position unable to pass them
JOURNAL_MAX_BYTES = 24 * 1024 * 1024
#: the ``sh -c`` a journal read runs in: journalctl's output cut after JOURNAL_MAX_BYTES by
#: head, which ends it, and journalctl's own exit status kept
_JOURNAL_CAPPED = ('exec 3>&1; r=$({ { "$@" 3>&- 4>&-; echo "$?" >&4; } | '
                   f'head -c {JOURNAL_MAX_BYTES} >&3; }} 4>&1); exit "${{r:-1}}"')


@dataclass(frozen=True)
class JournalQuery:
    """Where the journal section starts: after a cursor, or the last N entries of this boot."""

    after_cursor: str | None = None
    first_lines: int = 200


def journal_argv(settings: Settings, query: JournalQuery, follow: bool = False,
                 places_only: bool = False) -> list[str]:
    """``places_only``: each entry's cursor and time (and its priority), none of its text."""
    argv = [
        settings.programs.journalctl,
        "--no-pager",
        "--output=json",
        # --all: a field of 4096 bytes or more (a traceback logged as one message) is null
        # without it, and the entry would be quoted as empty (the parser cuts what it keeps)
        *(("--output-fields=PRIORITY",) if places_only
          else ("--all", f"--output-fields={parsers.JOURNAL_FIELDS}")),
        "--priority=warning",
    ]
    if query.after_cursor and query.after_cursor.startswith(SINCE_PREFIX):
        argv.append(f"--since=@{query.after_cursor[len(SINCE_PREFIX):]}")
    elif query.after_cursor and query.after_cursor.startswith(AFTER_PREFIX):
        # after an entry no check reads whole (see _pass_over), which is not printed again
        argv.append(f"--after-cursor={query.after_cursor[len(AFTER_PREFIX):]}")
        if not follow:
            argv.append(f"--lines={JOURNAL_CHUNK}")
    elif query.after_cursor:
        # from the position itself, which the journal section drops: where it is gone (its
        # file vacuumed, another journal's) journalctl starts at the nearest entry, which
        # --after-cursor skips unseen
        argv.append(f"--cursor={query.after_cursor}")
        if not follow:
            # the first entries after it (journalctl reads --lines so after a cursor): a
            # backlog is read in chunks, each moving the cursor on, where reading all of it
            # at once could outlast the command's timeout at every check, the cursor stuck;
            # one more: the position itself
            argv.append(f"--lines={JOURNAL_CHUNK + 1}")
    elif follow:
        # the last entry before following starts comes first: it says the follower is
        # reading (see JournalFollower)
        argv += ["--lines=1"]
    else:
        argv += ["--boot", f"--lines={query.first_lines}"]
    if follow:
        argv.append("--follow")
        return argv
    return ["sh", "-c", _JOURNAL_CAPPED, "sh", *argv]


def ps_argv(programs: Programs) -> tuple[str, ...]:
    """The process listing with each process's cgroup (its unit is read from that)."""
    # a width of its own, never $COLUMNS (readline sets it invisibly in some parents): each
    # line as wide as what the parser keeps of it, however long a command line is
    return (programs.ps, f"--cols={parsers.PS_WIDTH}", "-eo", parsers.PS_CGROUP_COLUMNS,
            "--sort=-pcpu")


T = TypeVar("T")


class ParseReuse:
    """What one host's last check made of each text it parsed, for a check that reads the same.

    A host's unit list, unit files and restart counts are tens of kilobytes of JSON and
    ``Key=value`` lines that stay the same from one check to the next until something
    happens; parsing them costs a sweeper ~1.6 ms a check on a host of 200 units, five times
    all the rest. Each text is known by its length and hash (keyed by this process: no host
    can make two texts collide on purpose), not kept. What a parser returns is shared by the
    snapshots that read the same text: nothing changes a snapshot's data after it is taken.
    """

    def __init__(self) -> None:
        self._last: dict[Callable[..., object], tuple[tuple[int, ...], int, object]] = {}

    def __call__(self, parser: Callable[..., T], *texts: str) -> T:
        lengths, digest = tuple(map(len, texts)), hash(texts)
        last = self._last.get(parser)
        if last is not None and last[0] == lengths and last[1] == digest:
            return last[2]  # type: ignore[return-value]  # made by this very parser
        value = parser(*texts)
        self._last[parser] = (lengths, digest, value)
        return value


class ProcessHistory:
    """One host's last process listing, as CPU seconds: a check keeps the processes whose CPU
    rose most since, besides the busiest by ps's lifetime average (a daemon up for days that
    began to spin an hour ago averages a few percent)."""

    def __init__(self) -> None:
        self.cpu_seconds: parsers.CpuSeconds | None = None


@dataclass(frozen=True)
class Plan:
    """What one check's commands depend on."""

    settings: Settings
    journal: JournalQuery
    #: a reader that is not root may see its own journal only: that is checked too
    runs_as_root: bool | None
    #: sections whose last reading this check keeps instead of reading them (see
    #: :attr:`Section.every`)
    kept: frozenset[str] = frozenset()
    #: sections this check does not read at all: not collected, so no rule judges from them
    left_out: frozenset[str] = frozenset()
    #: the host's last parses (its collector's), for texts read again unchanged
    reuse: ParseReuse | None = field(default=None, compare=False)
    #: the host's last process listing (its collector's)
    history: ProcessHistory | None = field(default=None, compare=False)

    @property
    def programs(self) -> Programs:
        return self.settings.programs

    def reads(self, section: str) -> bool:
        """Whether this check reads ``section``: it neither keeps its last reading nor
        leaves it out."""
        return section not in self.kept and section not in self.left_out

    def parsed(self, parser: Callable[..., T], *texts: str) -> T:
        """``parser(*texts)``, or what it gave the host's last check that read the same
        texts."""
        return parser(*texts) if self.reuse is None else self.reuse(parser, *texts)


def file_path(argv: Sequence[str]) -> str | None:
    """The file a ``cat -- PATH`` source reads; None for any other command."""
    return argv[2] if tuple(argv[:2]) == FILE_READ and len(argv) == 3 else None


@dataclass(frozen=True)
class Source:
    """One command to run, or one file to read (``cat -- PATH``), for a section."""

    argv: tuple[str, ...]
    guard: Guard | None = None
    #: read only when the sources before it gave nothing (a second place for one file)
    fallback: bool = False

    @classmethod
    def file(cls, path: str, guard: Guard | None = None, fallback: bool = False) -> Source:
        return cls((*FILE_READ, path), guard, fallback)

    @functools.cached_property
    def path(self) -> str | None:
        return file_path(self.argv)

    @functools.cached_property
    def unasked(self) -> CommandResult:
        """What the remote script answers for this command where its guard's path is absent."""
        if self.guard is None:
            raise ValueError(f"{' '.join(self.argv)!r} has no guard: it cannot be left unasked")
        return CommandResult(self.argv, 1, "", self.guard.absent, 0.0)


#: what one source gave: its result, or why there is none
Reading = CommandResult | TransportError
Apply = Callable[[Sequence[Reading], Snapshot, Plan], None]


@dataclass(frozen=True)
class Section:
    """One row of the table (see the module's description)."""

    name: str
    sources: Callable[[Plan], tuple[Source, ...]]
    parse: Callable[[str], object] | None = None
    apply: Apply | None = None
    #: sections collected first: ``when`` reads what they found
    after: tuple[str, ...] = ()
    when: Callable[[Snapshot], bool] | None = None
    #: for a reading that costs the host much and rarely changes: the seconds one serves the
    #: checks that may keep it (a collector's caller says which may)
    every: Callable[[Settings], float] | None = None
    #: whether a reading may serve later checks (see ``every``): one that shows trouble is
    #: read again by the next check, which then sees the trouble end as soon as it does
    keeps: Callable[[Any], bool] = lambda reading: True
    #: a row of the second step: what it reads, from what the first step found (its
    #: ``sources`` give nothing). Rare by design (a unit file systemd calls bad, a journal
    #: that outran the checks): no check's remote script asks it ahead, and a remote host
    #: answers a second, short one only where there is something to ask
    then: Callable[[Snapshot, Plan], tuple[Source, ...]] | None = None

    def sources_of(self, plan: Plan) -> tuple[Source, ...]:
        """What this check reads for the row: nothing where it keeps the last reading."""
        return self.sources(plan) if plan.reads(self.name) else ()

    def sources_then(self, snap: Snapshot, plan: Plan) -> tuple[Source, ...]:
        """What this check reads for the row in the second step, once the first is taken."""
        if self.then is None or not plan.reads(self.name):
            return ()
        return self.then(snap, plan)

    def take(self, readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
        """Turn what the sources gave into the Snapshot's data; raise why it cannot."""
        if self.apply is not None:
            self.apply(readings, snap, plan)
        elif self.parse is not None:
            setattr(snap, self.name, self.parse(text(readings[0])))


def result(reading: Reading) -> CommandResult:
    """The command's result; a command that could not run raises why."""
    if isinstance(reading, TransportError):
        raise reading
    return reading


def answered(reading: Reading) -> bool:
    """Whether a source gave some text (a fallback is read only where none did)."""
    return isinstance(reading, CommandResult) and reading.ok and bool(reading.stdout.strip())


def text(reading: Reading) -> str:
    """The output of a source that answered; else why it did not, raised."""
    done = result(reading)
    if done.ok:
        return done.stdout
    path = file_path(done.argv)
    if path is not None:
        raise TransportError(f"cannot read {path}")
    # the first line: a tool's error, before the usage or the "see --help" it adds
    detail = (done.stderr or done.stdout).strip().splitlines()
    raise TransportError(f"{done.argv[0]} exited {done.returncode}: "
                         f"{detail[0].strip() if detail else 'no output'}{busybox(done)}")


def busybox(done: CommandResult) -> str:
    """What to say of a command that failed as BusyBox's (Alpine, an embedded host), which
    has none of the long options the check gives GNU's and procps-ng's tools; else ""."""
    if "BusyBox v" not in done.stderr:
        return ""
    return (f" ({done.argv[0]} is BusyBox's, which lacks the options the check uses: the "
            "host needs procps-ng's ps and GNU coreutils, e.g. `apk add procps coreutils`)")


def _systemd_output(reading: Reading, what: str) -> str | None:
    """A systemd command's output; None where systemd does not run (a fact, not a failure):
    the script's guard found no /run/systemd/system, systemctl says so, or there is no
    systemctl at all. A systemctl that could not start for another reason (this machine out
    of processes, a host that refused the login) says nothing of systemd: an error."""
    if isinstance(reading, TransportError):
        if isinstance(reading, ProgramMissing):
            return None
        raise reading
    if reading.ok:
        return reading.stdout
    if any(marker in reading.stderr for marker in _NO_SYSTEMD):
        return None
    raise TransportError(f"{what}: {redact_cut(reading.stderr.strip(), 200)}")


def _memory(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    pressure = result(readings[1])  # PSI: absent on older kernels, then no stall figure
    arc = result(readings[2])  # ZFS's cache, where its module is loaded
    snap.memory = parsers.parse_meminfo(text(readings[0]),
                                        pressure.stdout if pressure.ok else None,
                                        arc.stdout if arc.ok else None)


def _mounts(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    df = result(readings[0])
    # df exits 1 when one mount is unreadable but still reports the others
    if not df.stdout.strip():
        raise TransportError(f"df printed nothing: {redact_cut(df.stderr.strip(), 200)}"
                             f"{busybox(df)}")
    mounts = plan.parsed(parsers.parse_df, df.stdout)
    info = readings[1]
    mountinfo = info.stdout if isinstance(info, CommandResult) and info.ok else None
    _unread_mounts(df, mounts, mountinfo, snap, plan)
    if mountinfo is None:
        # every mount counts as writable: a full disk is never missed for want of the table
        snap.mounts = [replace(m, view_read_only=None) for m in mounts]
        return
    # parsed apart, each reused while its text stays the same (df's changes with every
    # write, the mount table hardly ever)
    snap.mounts = parsers.placed(
        parsers.flagged(mounts, plan.parsed(parsers.mount_flags, mountinfo)),
        plan.parsed(parsers.mount_places, mountinfo))


def _unread_mounts(df: CommandResult, mounts: Sequence[Mount], mountinfo: str | None,
                   snap: Snapshot, plan: Plan) -> None:
    """The mounts df named in its errors and left out of its table: not known to be well, so
    said (a note) and judged by no rule (``Snapshot.unread_mounts``). One of a type no rule
    judges when df reads it (the mount table says which: gvfs and the document portal's,
    which root may not stat) is passed over unsaid."""
    if df.ok or not df.stderr.strip():
        return
    named, other = parsers.parse_df_errors(df.stderr)
    types = plan.parsed(parsers.mount_types, mountinfo) if mountinfo is not None else {}
    listed = {m.target for m in mounts}
    snap.unread_mounts = {point: why for point, why in named.items()
                          if point not in listed and types.get(point) not in parsers.PSEUDO_FS}
    said = [f"df could not read {point} ({why})" for point, why in snap.unread_mounts.items()]
    if said:
        said[-1] += ": how full it is was not checked, and its incidents stay as they were"
    if other:
        said.append(f"df exited {df.returncode}: " + " / ".join(other))
    if said:
        snap.notes["mounts"] = "; ".join(said)


def _os(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    found = [done.stdout for done in map(result, readings) if answered(done)]
    snap.os = plan.parsed(parse_os_release, found[0] if found else "")


def _nixos_generation(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    link = result(readings[0])
    if link.ok:
        snap.nixos_generation = parsers.parse_nixos_generation(link.stdout)


def _reboot(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    flag, pkgs = map(result, readings)
    snap.reboot = parsers.parse_reboot_required(pkgs.stdout if pkgs.ok else "") if flag.ok \
        else []


def _nixos_boot(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    links = result(readings[0])
    # exit 1: a path that does not exist (no NixOS, or a part a container has not)
    snap.nixos_boot = parsers.parse_nixos_boot(links.stdout) if links.stdout else []


def _nixos_boot_sources(plan: Plan) -> tuple[Source, ...]:
    parts = [f"{system}/{part}" for part in parsers.NIXOS_BOOT_PARTS
             for system in (NIXOS_BOOTED, NIXOS_CURRENT)]
    return (Source((plan.programs.readlink, "-e", "--", *parts), BOOTED),)


def _clock_sync_sources(plan: Plan) -> tuple[Source, ...]:
    # one stat for both: no builtin of sh tells a file's time
    return (Source((plan.programs.stat, "-c", "%Y %n", "--", parsers.TIMESYNC_DIR,
                    parsers.TIMESYNC_STAMP), TIMESYNCD),)


def _clock_sync(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    done = result(readings[0])
    # exit 1 with the directory listed: no stamp (not synchronised since it started); with
    # nothing listed: no directory (the guard's answer, or timesyncd stopped since)
    if done.returncode == 1:
        done = replace(done, returncode=0)
    snap.clock_sync = parsers.parse_timesync(text(done))


#: the memory cgroups of the system's services, where the kernel counts the processes its OOM
#: killer killed in each: cgroup v2's (a NixOS, Debian, Ubuntu, Fedora of today), and a legacy
#: or hybrid host's v1 memory hierarchy; a template's instances sit in a slice of their own
OOM_COUNTERS = {
    "/sys/fs/cgroup/system.slice": ("*.service/memory.events",
                                    "*.slice/*.service/memory.events"),
    "/sys/fs/cgroup/memory/system.slice": ("*.service/memory.oom_control",
                                           "*.slice/*.service/memory.oom_control"),
}
#: the counters' exit where their guard found none of their directories (no such hierarchy,
#: no ext4 or btrfs): nothing there to count, whole as it is
_NONE_HERE = 1


def _counted(reading: Reading) -> str:
    """What the counters' command read (:data:`COUNTERS`); where the guard found none of
    their directories, nothing: not a failed read."""
    done = result(reading)
    return "" if done.returncode == _NONE_HERE else text(done)
#: each service's memory file holds several counters (6 lines in v2) of which only
#: ``oom_kill N`` is the check's: the shell's builtins read that one line (``PATH:oom_kill N``,
#: as every other counter file's lines are written), so the reply keeps one line a service.
#: A file gone since the glob (a service that stopped, its cgroup gone with it; one made
#: again starts its count again) is passed over; a v1 kernel before 4.13 writes no such line
#: the counters' lines go out in writes of 4 KiB (each write into sshd's pipe may become a
#: packet), gathered in ``o``; each file is read where its glob finds it, as it is found
_FLUSH = '[ ${#o} -lt 4096 ] || { printf %s "$o"; o=; }; '
_OOM_LINES = (
    "for f in " + " ".join(f"{slice_dir}/{pattern}" for slice_dir, patterns
                           in OOM_COUNTERS.items() for pattern in patterns)
    + '; do [ -r "$f" ] || continue; while read -r k v; do [ "$k" = oom_kill ] && '
    '{ o="$o$f:oom_kill $v\n"; break; }; done < "$f"; ' + _FLUSH + 'done; ')


def _oom_kills(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    counts: dict[str, int] = {}
    for reading in readings:
        counts.update(parsers.parse_oom_kills(_counted(reading)))
    snap.oom_kills = counts


#: the pids controller of the system's services: cgroup v2's (a service's cgroup has pids
#: files where system.slice has them) and a legacy or hybrid host's v1 pids hierarchy; a
#: template's instances sit in a slice of their own. Read where a system.slice has pids
#: files (a builtin test), which the script says by a line ``SLICE/:`` (no file's, so no
#: parser's): a host without systemd or a pids controller is not judged
PIDS_SLICES = ("/sys/fs/cgroup/system.slice", "/sys/fs/cgroup/pids/system.slice")
_PIDS_PRESENT = frozenset(f"{slice_dir}/:" for slice_dir in PIDS_SLICES)
_PIDS_FILES = (
    "for r in " + " ".join(PIDS_SLICES) + '; do [ -e "$r/pids.current" ] || continue; '
    'o="$o$r/:\n"; for f in ' + " ".join(
        f'"$r"/{below}*.service/pids.{name}' for below in ("", "*.slice/")
        for name in ("current", "max"))
    + '; do [ -r "$f" ] && r_ "$f"; done; done; ')


def _service_tasks(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    read = _counted(readings[0])
    if _PIDS_PRESENT.isdisjoint(read.splitlines()):
        # no pids controller: nothing to judge, not "no service near its limit"
        snap.service_tasks = None
        return
    snap.service_tasks = parsers.parse_service_tasks(read)


#: the kernel's limits of the host's threads and open files, and the handles in use: on
#: every Linux, so no guard; in a remote script read by the one tail of the /proc files
PID_MAX, THREADS_MAX, FILE_NR = ("/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max",
                                 "/proc/sys/fs/file-nr")


def _kernel_limits(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    pid_max, threads_max, file_nr = (text(reading) for reading in readings)
    files_open, files_max = parsers.parse_file_nr(file_nr)
    snap.kernel_limits = KernelLimits(parsers.parse_kernel_count(pid_max),
                                      parsers.parse_kernel_count(threads_max),
                                      files_open, files_max)


#: the kernel's report of its md arrays: there only where the md driver is (loaded, or
#: built in); elsewhere its guard spares the script's builtins even the test of a read
MDSTAT = "/proc/mdstat"
_MD = Guard("-e", MDSTAT, f"cat: {MDSTAT}: No such file or directory")
#: where ZFS's module is loaded, a directory of kstats with one for each imported pool
_ZFS_POOLS = Guard("-d", parsers.ZFS_KSTAT, f"{parsers.ZFS_KSTAT}: no such directory")
#: each pool's state file, read by the shell's builtins (one sh a check, no process a pool),
#: as ``PATH:STATE``: the glob finds the pools' directories (one that matches nothing stays
#: as written, no directory), and a pool whose state cannot be read (OpenZFS before 0.8
#: keeps none) is written ``PATH:``, so that it is never taken for no pool. $1: the kstat
#: directory, whose absence says no ZFS, where no guard has tested it (the per-command path)
_ZFS_STATES = ('[ -d "$1" ] || { echo "$1: no such directory" >&2; exit 1; }; '
               'for d in "$1"/*/; do [ -d "$d" ] || continue; s=; f="${d}state"; '
               '[ -r "$f" ] && read -r s < "$f"; printf \'%s:%s\\n\' "$f" "$s"; done; exit 0')


def _md_arrays(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    mdstat = result(readings[0])
    # no file: no md driver, no arrays to judge (not "no arrays degraded")
    snap.md_arrays = parsers.parse_mdstat(mdstat.stdout) if mdstat.ok else None


def _zfs_pool_sources(plan: Plan) -> tuple[Source, ...]:
    return (Source((plan.programs.sh, "-c", _ZFS_STATES, "sh", parsers.ZFS_KSTAT),
                   _ZFS_POOLS),)


def _zfs_pools(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    states = result(readings[0])
    # exit 1: no kstat directory (the guard's answer, or the script's): no ZFS to judge
    if states.returncode == 1:
        snap.zfs_pools = None
        return
    pools = parsers.parse_zfs_pool_states(text(states))
    unread = sorted(pool for pool, state in pools.items() if not state)
    # judged on the pools read, a pool unread would pass for healthy: none is judged
    snap.zfs_pools = None if unread else pools
    if unread:
        snap.notes["zfs_pools"] = (
            f"the state of ZFS pool(s) {', '.join(unread)} could not be read from "
            f"{parsers.ZFS_KSTAT}/POOL/state (OpenZFS before 0.8 keeps none there): their "
            "health was not checked; `zpool status` tells")


def _container(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    found = result(readings[0])
    # no such file: systemd found no container (or does not run here), the host is its own
    snap.container = parsers.parse_container(found.stdout) if found.ok else ""
    info = readings[1]
    if snap.container and isinstance(info, CommandResult) and info.ok:  # a host's is its own
        snap.proc_mounted = plan.parsed(parsers.proc_files_mounted, info.stdout)
    shown = [what for path, what, read in (
        (parsers.LOADAVG, "load average", snap.load), (parsers.MEMINFO, "memory", snap.memory),
        (parsers.PSI_MEMORY, "memory stalls", snap.memory and snap.memory.psi_some_avg60),
        (parsers.VMSTAT, "swapping", snap.swap))
        if read is not None and snap.machine_wide(path)]
    if shown:
        snap.notes["container"] = (
            f"the {_and(shown)} read here {'is' if len(shown) == 1 else 'are'} the whole "
            "machine's (a container with nothing, such as lxcfs, mounted on that file of "
            "/proc): the machine's own check judges them")


def _and(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


#: the ext4 and btrfs drivers' counts of each mounted file system's errors, in the files the
#: shell's globs find
_E4, _BT = parsers.EXT4_SYSFS, parsers.BTRFS_SYSFS
_FS_ERROR_FILES = (
    f'for d in {_E4}/*/; do [ -r "${{d}}errors_count" ] || continue; '
    'n=${d%/}; n=${n##*/}; for f in "${d}errors_count" "${d}first_error_time" '
    f'"${{d}}last_error_time" "{parsers.BLOCK_SYSFS}/$n/dev"; do r_ "$f"; done; done; '
    f'for f in {_BT}/*/devinfo/*/error_stats {_BT}/*/devices/*/dev {_BT}/*/devices/*/dm/name '
    f'{_BT}/*/label; do '
    '[ -r "$f" ] && r_ "$f"; done; ')
_FS_PATHS = tuple(f"{path}/" for path in (_E4, _BT, parsers.BLOCK_SYSFS))
#: every check of every host reads the kernel's counters of its services (OOM kills, tasks)
#: and file systems (errors): one sh for the three sections, which share the command (run
#: once), whose builtins find the files and read them, each line as ``PATH:LINE`` (as
#: ``grep -H`` writes it). No process but the sh, which the remote script spares too (see
#: :mod:`.remote_script`): the files are a few bytes each, read faster by builtins than a
#: program starts. Its guard holds where any of their directories is: a host with none of
#: them starts no process for them
COUNTERS = Guard("-d", PIDS_SLICES[0], "no system.slice cgroup, ext4 or btrfs in sysfs",
                 also=(*(d for d in OOM_COUNTERS if d != PIDS_SLICES[0]), PIDS_SLICES[1],
                       _E4, _BT))
#: its stderr goes to /dev/null once, around it all (a file gone since its glob is passed
#: over unsaid): once a file, that was an open of /dev/null and three more calls for each of
#: the 6000 files of 2000 services, 15 % of the script's CPU
_COUNTERS_SCRIPT = (
    '{ o=; r_() { while IFS= read -r l || [ -n "$l" ]; do o="$o$1:$l\n"; done < "$1"; '
    + _FLUSH + '}; ' + _OOM_LINES + _PIDS_FILES + _FS_ERROR_FILES
    + 'printf %s "$o"; } 2>/dev/null; exit 0')


def _counters(plan: Plan) -> Source:
    return Source((plan.programs.sh, "-c", _COUNTERS_SCRIPT, "sh"), COUNTERS)


def _fs_error_sources(plan: Plan) -> tuple[Source, ...]:
    return (_counters(plan), _MOUNTINFO)


def _fs_errors(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    # the lines of the file systems' files, not the services' of the same read
    counts = "".join(line for line in _counted(readings[0]).splitlines(keepends=True)
                     if line.startswith(_FS_PATHS))
    info = readings[1]
    mountinfo = info.stdout if isinstance(info, CommandResult) and info.ok else None
    if counts.strip() and mountinfo is None:
        # without the mount table the subjects would be device names, not mount points:
        # not collected, so that no incident resolves for a change of name
        raise TransportError("/proc/self/mountinfo could not be read: where the file "
                             "systems counting errors are mounted is not known")
    snap.fs_errors, note = plan.parsed(_placed_fs_errors, counts, mountinfo or "")
    if note:
        snap.notes["fs_errors"] = note


def _placed_fs_errors(counts: str, mountinfo: str) -> tuple[list[FilesystemErrors], str]:
    """The file systems' counts at their mount points, and a note of those not placed."""
    found = parsers.parse_fs_errors(counts, mountinfo)
    return found, _unplaced_note(found, counts, mountinfo)


def _unplaced_note(found: list[FilesystemErrors], counts: str, mountinfo: str) -> str:
    """A btrfs counting errors that is at no mount point here while a btrfs mount here is of
    no file system read: it may be that one, mounted by a path the check cannot place, and
    it is not judged. Said, not left silent; a btrfs with no such mount here is another
    mount namespace's (a container sees its host's sysfs)."""
    lost = [fs.name for fs in found if fs.fstype == "btrfs" and fs.errors and not fs.target]
    mounts = parsers.unplaced_btrfs_mounts(counts, mountinfo) if lost else []
    if not mounts:
        return ""
    return (f"btrfs file system(s) {', '.join(lost)} counted device errors but could not be "
            f"matched to a mount here; btrfs mounted from a source the check cannot place: "
            f"{', '.join(mounts[:10])}. Their errors were not judged; `btrfs device stats "
            "MOUNT` tells")


#: said once for a host without systemd (not PID 1, or no systemctl to ask), where the rules
#: of units and of the journal find nothing because there is nothing of theirs to read, not
#: because all is well
NO_SYSTEMD_NOTE = ("systemd does not run here: failed units, crash loops, unit files, core "
                   "dumps and the journal were not checked")


def _units(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    listed = _systemd_output(readings[0], "systemctl list-units")
    snap.systemd_running = listed is not None
    snap.units = plan.parsed(parsers.parse_list_units, listed) if listed is not None else []
    if listed is None:
        snap.notes["units"] = NO_SYSTEMD_NOTE


def _unit_files(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    if snap.systemd_running is False:
        snap.unit_files = {}  # no systemd, no unit file it could fail to load
        return
    listed = _systemd_output(readings[0], "systemctl list-unit-files")
    snap.unit_files = (plan.parsed(parsers.parse_list_unit_files, listed)
                       if listed is not None else {})


#: the instance a template's file is asked about by: systemd loads units, and a template is
#: none until it has an instance (``systemctl show`` refuses its name)
_PROBE_INSTANCE = "ai-sysadmin-check"
#: bad unit files asked about in one check, at most (systemd loads a unit for each)
_UNIT_FILE_QUESTIONS = 100
#: a unit name's characters (systemd's unit_name_is_valid), the suffix apart: a name that
#: systemctl refuses would end its answer there
_UNIT_FILE_BASE = re.compile(r"[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\@-]*)?")
_UNIT_NAME_MAX = 255


def _loaded_as(name: str) -> str | None:
    """The unit systemd loads from the unit file ``name``: its own, or for a template an
    instance of it; None for a name systemctl would refuse."""
    base, _, suffix = name.rpartition(".")
    if (f".{suffix}" not in UNIT_SUFFIXES or not _UNIT_FILE_BASE.fullmatch(base)
            or len(name) + len(_PROBE_INSTANCE) > _UNIT_NAME_MAX):
        return None
    return f"{base}{_PROBE_INSTANCE}.{suffix}" if base.endswith("@") else name


def _bad_unit_files(snap: Snapshot, plan: Plan) -> tuple[Source, ...]:
    """For the files list-unit-files calls bad (a file systemd cannot parse, or none at all:
    it says the same of both), how systemd loads each: ``not-found`` where the name leads to
    no file (a link whose target is gone), ``error`` or ``bad-setting`` where it is broken;
    and which links hide a file of their name that systemd would load without them
    (systemd-delta compares every directory systemd reads units from, by name)."""
    asked = [unit for name, state in sorted((snap.unit_files or {}).items())
             if state == UNIT_FILE_BAD and (unit := _loaded_as(name)) is not None]
    if not asked:
        return ()
    return (Source((plan.programs.systemctl, "show", "--property=Id,LoadState", "--no-pager",
                    "--", *asked[:_UNIT_FILE_QUESTIONS]), SYSTEMD),
            # by its name where programs.* has no entry for it (systemd's own package)
            Source((plan.programs.resolve("systemd-delta"), "--no-pager", "--type=redirected",
                    "systemd/system"), SYSTEMD))


def _unit_file_loads(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    shown, delta = result(readings[0]), readings[1]
    states = parsers.parse_show_load_states(shown.stdout)
    delta_ok = isinstance(delta, CommandResult) and delta.ok
    links = plan.parsed(parsers.parse_systemd_delta, delta.stdout) if delta_ok else {}
    # a new dict: the listing's is shared with the checks that read the same text
    snap.unit_files = {
        name: _load_state(name, state, states, links)
        for name, state in (snap.unit_files or {}).items()}
    snap.hidden_unit_files = {name: HiddenUnitFile(*links[name])
                              for name, state in snap.unit_files.items()
                              if state == UNIT_FILE_HIDING}
    if not shown.ok:
        # a file systemd said nothing of stays bad: one it cannot parse is never left unsaid
        raise TransportError(f"systemctl show: {redact_cut(shown.stderr.strip(), 200)}")
    if not delta_ok:
        why = (str(delta) if isinstance(delta, TransportError)
               else redact_cut(delta.stderr.strip() or f"exit {delta.returncode}", 200))
        raise TransportError(f"systemd-delta: {why}: whether a link to a missing file hides "
                             "a unit file of its name is not known")


def _load_state(name: str, listed: str, loads: dict[str, str],
                links: dict[str, tuple[str, str]]) -> str:
    """A unit file's state: ``bad`` as listed, unless systemd finds no file for its name,
    where the link either hides a file of that name or leads nowhere at all, or loads the
    unit all the same, from another file of its name."""
    load = loads.get(_loaded_as(name) or "")
    if listed != UNIT_FILE_BAD or load not in ("not-found", "loaded"):
        return listed
    if load == "loaded":
        return UNIT_FILE_PASSED_OVER
    return UNIT_FILE_HIDING if name in links else UNIT_FILE_NOT_FOUND


def _restarts(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    if snap.systemd_running is False:
        snap.restarts = {}  # no systemd, nothing restarted by it
        snap.needs_reload = frozenset()
        return
    # where systemd runs, a failure is no fact: without the counts no crash loop is judged
    shown = result(readings[0])
    if not shown.ok:
        raise TransportError(f"systemctl show: {redact_cut(shown.stderr.strip(), 200)}")
    snap.restarts = plan.parsed(parsers.parse_show_restarts, shown.stdout)
    snap.service_results = plan.parsed(parsers.parse_show_results, shown.stdout)
    snap.clean_restarts = plan.parsed(parsers.parse_show_clean_restarts, shown.stdout)
    snap.needs_reload = plan.parsed(parsers.parse_show_need_reload, shown.stdout)


def _program_absent(reading: Reading) -> bool:
    """The program is not installed: no process could start (nsenter and sh exit 127)."""
    if isinstance(reading, TransportError):
        return isinstance(reading, ProgramMissing)
    return reading.returncode == _CANNOT_EXECUTE


def _core_dumps(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    listed = readings[0]
    if snap.systemd_running is False or _program_absent(listed):
        snap.core_dumps = []  # no systemd-coredump: nothing it could have recorded
        return
    done = result(listed)
    if not done.ok and any(words in done.stderr for words in _NO_CORE_DUMP_LIST):
        # none recorded, or a coredumpctl older than --json (systemd < 248): no dump to
        # quote, and nothing wrong with the host that a check should report every time
        snap.core_dumps = []
        return
    snap.core_dumps = plan.parsed(parsers.parse_coredumpctl_list, text(done))


def _certificates(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    found = []
    for path, reading in zip(plan.settings.certificates, readings, strict=True):
        if _program_absent(reading):
            # no openssl on the host: nothing is known of any certificate, and that is ours
            # to say (a section error), not the certificate's
            raise TransportError(f"{plan.programs.openssl} cannot run here: the configured "
                                 "certificates cannot be read")
        done = result(reading)
        if not done.ok:
            # a configured file that gives no certificate is the host's problem: a finding
            found.append(Certificate(path, error=parsers.x509_failure(done.stderr)))
            continue
        try:
            found.append(parsers.parse_pkcs7_certificates(done.stdout, path))
        except parsers.ParseError as exc:
            found.append(Certificate(path, error=str(exc)))
    snap.certificates = found


def _journal(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    if snap.systemd_running is False:
        snap.journal = []  # no systemd, no journal of its own to read
        return
    read, query = result(readings[0]), plan.journal
    if not read.ok and not read.stdout:
        if "No journal files were found" in read.stderr:
            snap.journal = []
            return
        raise _journal_failure(read.stderr, query, snap)
    # journalctl exits 0 with the user's own entries (its hint is not printed with
    # --output=json): the system's errors would go unseen on a "healthy" host
    own_only = (len(readings) > 1
                and result(readings[1]).returncode == _SYSTEM_JOURNAL_UNREADABLE)
    entries = parsers.parse_journal(read.stdout)
    # journalctl prints an entry a line, each a JSON object (counted without a second split)
    printed = read.stdout.count("\n{") + read.stdout.startswith("{")
    cut = _cut_line(read.stdout)
    if cut is not None:
        printed -= 1  # the rest of the journal is read by the next checks, from the last entry
    position = query.after_cursor
    if position and not position.startswith(SINCE_PREFIX) and entries \
            and entries[0].cursor == position:
        entries, printed = entries[1:], printed - 1  # read last time
    elif position and not printed and _ahead(position, snap.host_time()) and (
            not position.startswith(SINCE_PREFIX) or snap.host_clock() is not None):
        # not there, or a time (a since: position), stamped later than the host's now
        # (another journal's, or the clock was set back): reading after it would find
        # nothing until the clock passes it, and nothing would say so; what was logged
        # meanwhile, stamped before it, would never be read. A quiet journal prints
        # nothing after a time either: judged only on the host's own clock (a container
        # whose /proc/uptime lxcfs mounts over gives this machine's, minutes off)
        snap.journal = []
        snap.journal_cursor = f"{SINCE_PREFIX}{snap.host_time():.6f}"
        snap.errors["journal"] = (
            "the stored journal position is ahead of the host's clock (another journal's, "
            "or the clock was set back); reading again from now (entries before may be "
            "skipped)")
        return
    if cut is not None and not entries:
        # systemd writes an entry's fields in no fixed order, its cursor among them: where
        # it is, the second step asks (_pass_over); until then, the position stays
        snap.journal_too_large = True
        raise TransportError(
            f"the first journal entry after the last one read is more than "
            f"{JOURNAL_MAX_BYTES >> 20} MiB of JSON, more than a check reads")
    snap.journal = entries
    unread = printed - len(snap.journal)
    if unread > 0:
        # entries nobody read are no evidence that nothing happened: not judged, and read
        # again from the same cursor next time
        snap.errors["journal"] = (f"{unread} of the lines journalctl printed could not be "
                                  "read as entries")
    if own_only:
        snap.errors["journal"] = (f"journalctl shows this user's own messages only; "
                                  f"{_JOURNAL_ACCESS}")
    snap.journal_cursor = snap.journal[-1].cursor if snap.journal else query.after_cursor


def _cut_line(text: str) -> str | None:
    """The last line of a journal read that JOURNAL_MAX_BYTES cut (journalctl ends every entry's
    line); None where nothing was cut."""
    if not text or text.endswith("\n"):
        return None
    last = text[text.rfind("\n") + 1:]
    return last if parsers.parse_journal_line(last) is None else None


#: how far a stored position may be ahead of the host's clock (clocks drift, get stepped)
_POSITION_SLACK_SECONDS = 60.0


#: how much of the burst window a check may leave unread before it reads the newest entries
#: instead (the entries in between are skipped, and said)
_BEHIND_SHARE = 0.5


def _cursor_number(cursor: str, key: str) -> int | None:
    """A hexadecimal field of a journal cursor (``s=ID;i=SEQNUM;b=BOOT;m=MONO;t=REALTIME;x=``)."""
    for part in cursor.split(";"):
        name, _, value = part.partition("=")
        if name == key:
            try:
                return int(value, 16)
            except ValueError:
                return None
    return None


def _ahead(position: str, now: float) -> bool:
    """Whether a journal position's time (a cursor's ``t=``, microseconds; a ``since:@``
    position's seconds) is later than ``now`` on the host's clock."""
    if position.startswith(SINCE_PREFIX):
        try:
            seconds: float | None = float(position[len(SINCE_PREFIX):])
        except ValueError:
            seconds = None
    else:
        stamp = _cursor_number(position, "t")
        seconds = None if stamp is None else stamp / 1e6
    return seconds is not None and seconds > now + _POSITION_SLACK_SECONDS


def _journal_behind(snap: Snapshot, plan: Plan) -> tuple[Source, ...]:
    """The newest entries, where this check fell further behind than one read catches up:
    a full chunk whose last entry is older than half the burst window. Read on a chunk a
    check, a flood faster than that is never caught up: the burst, judged on what was read
    of its window, shrinks to nothing and resolves while the flood goes on. Or where the
    first entry after the position is more than a check reads, where it is (_pass_over)."""
    if snap.journal_too_large:
        return (Source(tuple(journal_argv(plan.settings, plan.journal, places_only=True)),
                       SYSTEMD),)
    position, read = plan.journal.after_cursor, snap.journal
    if (not position or position.startswith(SINCE_PREFIX) or "journal" in snap.errors
            or not read or len(read) < JOURNAL_CHUNK):
        return ()
    window = plan.settings.thresholds.journal_burst_window_seconds
    if read[-1].timestamp >= snap.host_time() - window * _BEHIND_SHARE:
        return ()  # behind, but most of what is judged is read: the next check goes on
    newest = JournalQuery(first_lines=JOURNAL_CHUNK)
    return (Source(tuple(journal_argv(plan.settings, newest)), SYSTEMD),)


def _journal_gap(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    """The newest entries after the chunk read; the entries between, skipped unread, said
    (``notes``: the journal was read, the journal's rules judge what was read, and the
    check is no less complete for it)."""
    if snap.journal_too_large:
        _pass_over(result(readings[0]), snap, plan)
        return
    newest_read = result(readings[0])
    if not newest_read.ok and not newest_read.stdout:
        raise TransportError("the journal is further behind than one check reads, and its "
                             f"newest entries could not be read: journalctl: "
                             f"{redact_cut(newest_read.stderr.strip(), 200)}")
    read = snap.journal or []
    last = read[-1]
    newest = parsers.parse_journal(newest_read.stdout)
    cursors = [entry.cursor for entry in newest]
    if last.cursor in cursors:  # caught up meanwhile: nothing skipped
        newest = newest[cursors.index(last.cursor) + 1:]
    elif newest:
        first = newest[0]
        snap.journal_gap = JournalGap(last.timestamp, first.timestamp,
                                      _entries_between(last.cursor, first.cursor))
        snap.notes["journal_gap"] = snap.journal_gap.describe()
    snap.journal = [*read, *newest]
    snap.journal_cursor = snap.journal[-1].cursor


def _pass_over(places: CommandResult, snap: Snapshot, plan: Plan) -> None:
    """The check reads on after an entry too large to read (the first the journal section
    met), found by its place: the same entries, each with its cursor and time but no text.
    What it was is not known; that it was passed over is said (the journal section's error:
    the journal's rules do not judge a check that lacks it)."""
    position = plan.journal.after_cursor
    entries = parsers.parse_journal(places.stdout)
    if entries and entries[0].cursor == position:
        entries = entries[1:]  # the position itself, printed first (see journal_argv)
    if not entries:
        raise TransportError("where the journal entry too large to read is could not be "
                             f"read: {redact_cut(places.stderr.strip(), 200) or 'no entry'}")
    skipped = entries[0]
    snap.journal_cursor = f"{AFTER_PREFIX}{skipped.cursor}"
    snap.errors["journal"] = (
        f"a journal entry of more than {JOURNAL_MAX_BYTES >> 20} MiB of JSON, logged at "
        f"{datetime.fromtimestamp(skipped.timestamp, UTC):%Y-%m-%d %H:%M:%S} UTC at priority "
        f"{skipped.priority}, was passed over unread; the next check reads on after it")


def _entries_between(before: str, after: str) -> int | None:
    """How many entries of any priority lie between two cursors of one journal (its ``s=``
    names the sequence its ``i=`` numbers count in); None across journals."""
    sequence = _cursor_number(before, "s")
    first, second = _cursor_number(before, "i"), _cursor_number(after, "i")
    if sequence is None or sequence != _cursor_number(after, "s") or first is None \
            or second is None:
        return None
    return max(0, second - first - 1)


def _journal_failure(stderr: str, query: JournalQuery, snap: Snapshot) -> TransportError:
    if "insufficient permissions" in stderr:
        return TransportError(f"journalctl: the system journal is not readable by this user; "
                              f"{_JOURNAL_ACCESS}")
    if query.after_cursor and "cursor" in stderr.lower():
        # a cursor from another journal (reinstalled host, wiped /var/log/journal) would
        # fail forever: start again from now, and say what may be missed
        snap.journal_cursor = f"{SINCE_PREFIX}{snap.host_time():.6f}"  # the journal's clock
        return TransportError("the stored journal cursor was rejected; reading again from now "
                              "(entries before may be skipped)")
    return TransportError(f"journalctl: {redact_cut(stderr.strip(), 200)}")


def _position(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    """Where the next check starts when no warning entry has been read yet.

    With a ``--priority`` filter, a position is printed by ``--cursor`` (which tells a check
    that it is still there) only where it matches the filter, so the position must be the
    last *warning* entry, or else a time: that of the newest entry of any priority.
    """
    entries = [parsers.parse_journal(done.stdout) if done.ok else []
               for done in map(result, readings)]
    if entries[0]:
        snap.journal_cursor = entries[0][-1].cursor
    elif len(entries) > 1 and entries[1]:
        snap.journal_cursor = f"{SINCE_PREFIX}{entries[1][-1].timestamp:.6f}"


def _hidden_processes(readings: Sequence[Reading], listing: str, snap: Snapshot, plan: Plan,
                      section: str) -> None:
    """A listing without PID 1 (every PID namespace has one), taken by a user who may not be
    root (root is shown every process), holds only the processes /proc lets that user see (a
    ``hidepid=`` mount): what it shows is kept, but the section is not collected in full, so
    its rules do not judge and the host is not called healthy (a root process's zombies, a
    runaway daemon, would go unseen)."""
    users = None if plan.runs_as_root else parsers.ps_partial_users(listing)
    if users is None:
        return
    who = next(iter(users)) if len(users) == 1 else None
    seen = (f"as {who} the process table holds only {who}'s processes" if who is not None
            else "the process table holds only some of the host's processes")
    mountinfo = readings[1] if len(readings) > 1 else None
    hidden = (parsers.proc_hidepid(mountinfo.stdout)
              if isinstance(mountinfo, CommandResult) and mountinfo.ok else None)
    if hidden is None:
        snap.errors[section] = f"ps lists no PID 1: {seen}; check as root"
        return
    hidepid, gid = hidden
    group = (f"as a member of the gid={gid} group" if gid is not None
             else "mount /proc with gid= a group the checking user is in")
    snap.errors[section] = f"/proc is mounted hidepid={hidepid}: {seen}; check as root or {group}"


def _processes(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    listing = text(readings[0])
    history = plan.history
    since = history.cpu_seconds if history is not None else None
    snap.processes_listed_at = _listed_at(listing, readings, snap)
    # each process's start is its age before the listing: before the moment ps ran, not
    # before the collection began, or one process would seem to start anew at each check
    # whose ps ran later into it than the last one's
    at = snap.processes_listed_at if snap.processes_listed_at is not None else snap.taken_at
    snap.processes = parsers.parse_ps_top(listing, since=since, taken_at=at)
    snap.cpu_seconds = parsers.parse_cpu_seconds(listing, at)
    if history is not None:
        history.cpu_seconds = snap.cpu_seconds
    _hidden_processes(readings, listing, snap, plan, "processes")


def _zombies(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    listing = text(readings[0])
    snap.zombies = parsers.parse_ps_zombies(listing)
    _hidden_processes(readings, listing, snap, plan, "zombies")


#: the most processes whose cgroup one check reads again (it keeps about 45, and their
#: zombies' parents)
_CGROUP_QUESTIONS = 64
#: the lines read of each process's cgroup file: one a hierarchy, the unified one ("0::")
#: last, which a host of many named hierarchies (64 cut it off) pushes down
_CGROUP_LINES = 1024


def _cut_cgroups(snap: Snapshot, plan: Plan) -> tuple[Source, ...]:
    """For the kept processes whose unit the listing cut off (:func:`parsers.listed_unit`: a
    legacy or hybrid cgroup host, a long unit name), their /proc/PID/cgroup, and PID 1's (the
    manager's root): one head(1). Elsewhere none is cut, and nothing is asked."""
    pids = sorted({p.pid for p in snap.processes or () if p.unit_cut}
                  | {z.pid for z in snap.zombies or () if z.unit_cut})
    if not pids:
        return ()
    return (Source((plan.programs.resolve("head"), "-v", "-n", str(_CGROUP_LINES), "--",
                    "/proc/1/cgroup",
                    *(f"/proc/{pid}/cgroup" for pid in pids[:_CGROUP_QUESTIONS]))),)


def _process_units(readings: Sequence[Reading], snap: Snapshot, plan: Plan) -> None:
    """The cut-off units, from the processes' /proc files; a process gone since the listing
    (its file unread) keeps its unit unknown, as the listing left it."""
    read = result(readings[0])  # head exits 1 where a process ended meanwhile
    fields = parsers.parse_proc_cgroups(read.stdout)
    if 1 not in fields:
        raise TransportError(f"cannot read /proc/1/cgroup: {redact_cut(read.stderr.strip(), 200)}")
    root = parsers.manager_root(parsers.systemd_cgroup(fields[1]))

    def unit(pid: int) -> str | None:
        return parsers.cgroup_unit(parsers.systemd_cgroup(fields[pid]), root)

    if snap.processes is not None:
        snap.processes = [replace(p, unit=unit(p.pid), unit_cut=False)
                          if p.unit_cut and p.pid in fields else p for p in snap.processes]
    if snap.zombies is not None:
        snap.zombies = [replace(z, unit=unit(z.pid), unit_cut=False)
                        if z.unit_cut and z.pid in fields else z for z in snap.zombies]


#: ZFS's ARC statistics: present only where its module is loaded; elsewhere its guard
#: spares a process (a `cat`) and the script's stderr a line
ZFS_ARCSTATS = "/proc/spl/kstat/zfs/arcstats"
_ZFS = Guard("-e", ZFS_ARCSTATS, f"cat: {ZFS_ARCSTATS}: No such file or directory")
_MEMORY = (Source.file(parsers.MEMINFO), Source.file(parsers.PSI_MEMORY),
           Source.file(ZFS_ARCSTATS, _ZFS))

#: the mount table of the namespace the check's commands run in: which file systems are
#: read-only, whether /proc hides processes, which of its files a container's own
#: the mount table, as the checking process sees it
MOUNTINFO = "/proc/self/mountinfo"
_MOUNTINFO = Source.file(MOUNTINFO)
_CONTAINER = (Source.file(parsers.SYSTEMD_CONTAINER), _MOUNTINFO)
#: seconds since the host booted (CLOCK_BOOTTIME, to a hundredth), the clock ps's ages run on
UPTIME = "/proc/uptime"
#: PID 1's start after boot: with its age in the listing, when ps ran, on the host's clock
_INIT_STAT = Source.file("/proc/1/stat")


def _ps_sources(plan: Plan) -> tuple[Source, ...]:
    # /proc/1/stat is read by the one tail at the script's start (PID 1's start does not
    # move): no command of its own, on any host
    return Source(ps_argv(plan.programs)), _MOUNTINFO, _INIT_STAT


def _listed_at(listing: str, readings: Sequence[Reading], snap: Snapshot) -> float | None:
    """When ps listed the processes, on the host's clock: its boot time (the cpu row), plus
    PID 1's start after boot, plus PID 1's age in the listing (to the second, as ps gives
    every age). The moment comes from ps itself, however late into the check it ran. None
    where any of them is not known: the listing is then placed at ``taken_at``."""
    boot = snap.cpu.boot_time if snap.cpu is not None else None
    stat = readings[2] if len(readings) > 2 else None
    age = parsers.ps_init_age(listing)
    if boot is None or age is None or not isinstance(stat, CommandResult) or not stat.ok:
        return None
    try:
        return boot + parsers.proc_start_ticks(stat.stdout) / parsers.USER_HZ + age
    except parsers.ParseError:
        return None


def coredumpctl_argv(programs: Programs) -> tuple[str, ...]:
    # the newest 50: enough to find a service's own dump by its pid
    return (programs.coredumpctl, "list", "--json=short", "--no-pager", "-n", "50")


def _certificate_sources(plan: Plan) -> tuple[Source, ...]:
    # every certificate of the file (`x509 -in` reads the first only: a fullchain.pem's
    # leaf), in a PKCS#7 that holds no key: one in the file stays in the host's openssl.
    # -nocrl: no CRL read from stdin. crl2pkcs7 is in every openssl (1.0, 1.1, 3).
    return tuple(Source((plan.programs.openssl, "crl2pkcs7", "-nocrl", "-certfile", path))
                 for path in plan.settings.certificates)


def _files(*paths: str) -> Callable[[Plan], tuple[Source, ...]]:
    sources = tuple(Source.file(path) for path in paths)
    return lambda plan: sources


def _journal_sources(plan: Plan) -> tuple[Source, ...]:
    query = Source(tuple(journal_argv(plan.settings, plan.journal)), SYSTEMD)
    if plan.runs_as_root is True:
        return (query,)
    return query, Source(JOURNAL_ACCESS_ARGV, SYSTEMD)


def position_argvs(programs: Programs) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The last warning entry; the last entry of any priority."""
    base = (programs.journalctl, "--no-pager", "--output=json", "--output-fields=PRIORITY",
            "--lines=1")
    return (*base, "--priority=warning"), base


def _position_sources(plan: Plan) -> tuple[Source, ...]:
    if plan.journal.after_cursor is not None:
        return ()  # a position is known: the journal section moves it
    warning, base = position_argvs(plan.programs)
    return Source(warning, SYSTEMD), Source(base, SYSTEMD, fallback=True)


#: /usr/lib/os-release is where /etc/os-release is missing or empty (os-release(5)); a
#: remote script reads it only there
_OS_RELEASE = (
    Source.file("/etc/os-release"),
    Source.file("/usr/lib/os-release",
                Guard("! -s", "/etc/os-release", "not read: /etc/os-release answers"), True),
)


#: unit file states read again by every check, so that the mending is seen at once: a file
#: systemd cannot parse, a link that hides a unit file systemd would load
_UNIT_FILE_TROUBLE = frozenset({UNIT_FILE_BAD, UNIT_FILE_HIDING})


def _second_step_only(plan: Plan) -> tuple[Source, ...]:
    return ()


def _systemd_may_run(snap: Snapshot) -> bool:
    return snap.systemd_running is not False


def _no_position_yet(snap: Snapshot) -> bool:
    return _systemd_may_run(snap) and snap.journal is not None and snap.journal_cursor is None


#: name (the Snapshot field), sources (with their guards), parser; ``after``/``when`` where a
#: row reads what another found. Which rules need a row: ``rules.required_by(name)``.
SECTIONS: tuple[Section, ...] = (
    Section("cpu", _files("/proc/stat"), parsers.parse_proc_stat),
    Section("memory", lambda plan: _MEMORY, apply=_memory),
    Section("swap", _files(parsers.VMSTAT), parsers.parse_vmstat),
    Section("load", _files(parsers.LOADAVG), parsers.parse_loadavg),
    # early in the remote script, as the three rows it reads: a script cut short still
    # says whose numbers they are (their rules require it)
    Section("container", lambda plan: _CONTAINER, apply=_container,
            after=("memory", "swap", "load")),
    Section("uptime_seconds", _files(UPTIME), parsers.parse_uptime),
    Section("mounts", lambda p: (Source((p.programs.df, "-B1",
                                         f"--output={parsers.DF_COLUMNS}")),
                                 _MOUNTINFO), apply=_mounts),
    Section("os", lambda p: _OS_RELEASE, apply=_os),
    Section("nixos_generation",
            lambda p: (Source((p.programs.readlink, NIXOS_SYSTEM_PROFILE), NIXOS),),
            apply=_nixos_generation, after=("os",),
            when=lambda snap: snap.os is not None and snap.os.is_nixos),
    Section("units", lambda p: (Source((p.programs.systemctl, "list-units", "--all",
                                        "--output=json", "--no-pager"), SYSTEMD),),
            apply=_units),
    Section("unit_files", lambda p: (Source((p.programs.systemctl, "list-unit-files",
                                             "--output=json", "--no-pager"), SYSTEMD),),
            apply=_unit_files, after=("units",), when=_systemd_may_run,
            # systemd works out every unit file's state for it: stats and reads them all
            every=lambda settings: settings.unit_files_every,
            keeps=lambda files: not _UNIT_FILE_TROUBLE.intersection(files.values())),
    # second step: which of the bad ones lead to no file at all
    Section("unit_file_loads", _second_step_only, apply=_unit_file_loads,
            after=("unit_files",), then=_bad_unit_files),
    Section("restarts", lambda p: (Source((p.programs.systemctl, "show", "*.service",
                                           f"--property={parsers.SHOW_PROPERTIES}",
                                           "--no-pager"), SYSTEMD),),
            apply=_restarts, after=("units",), when=_systemd_may_run),
    Section("core_dumps", lambda p: (Source(coredumpctl_argv(p.programs), SYSTEMD),),
            apply=_core_dumps, after=("units",), when=_systemd_may_run),
    Section("journal", _journal_sources, apply=_journal, after=("units",),
            when=_systemd_may_run),
    Section("journal_position", _position_sources, apply=_position, after=("journal",),
            when=_no_position_yet),
    # second step: the newest entries where the journal outran the checks
    Section("journal_gap", _second_step_only, apply=_journal_gap, after=("journal",),
            then=_journal_behind),
    # where the listing lacks PID 1, /proc's mount says why (hidepid=)
    Section("processes", _ps_sources, apply=_processes, after=("cpu",)),
    # the same listing: one ps in a remote script, which runs a command once
    Section("zombies", _ps_sources, apply=_zombies),
    # second step: the units the listing's cgroup column was too narrow to name
    Section("process_units", _second_step_only, apply=_process_units,
            after=("processes", "zombies"), then=_cut_cgroups),
    Section("certificates", _certificate_sources, apply=_certificates),
    Section("reboot", _files(REBOOT_REQUIRED, REBOOT_REQUIRED_PKGS), apply=_reboot),
    Section("nixos_boot", _nixos_boot_sources, apply=_nixos_boot),
    # the kernel's counters: one command for the three rows (fs_errors' too)
    Section("oom_kills", lambda plan: (_counters(plan),), apply=_oom_kills),
    Section("service_tasks", lambda plan: (_counters(plan),), apply=_service_tasks),
    Section("kernel_limits", _files(PID_MAX, THREADS_MAX, FILE_NR), apply=_kernel_limits),
    Section("clock_sync", _clock_sync_sources, apply=_clock_sync),
    Section("md_arrays", lambda plan: (Source.file(MDSTAT, _MD),), apply=_md_arrays),
    Section("zfs_pools", _zfs_pool_sources, apply=_zfs_pools),
    Section("kernel_taint", _files(KERNEL_TAINTED), parsers.parse_kernel_tainted),
    Section("fs_errors", _fs_error_sources, apply=_fs_errors),
)


def check_table(sections: tuple[Section, ...]) -> dict[str, Section]:
    """Refuse a table whose rows cannot be collected in order."""
    by_name: dict[str, Section] = {}
    for section in sections:
        if section.name in by_name:
            raise ValueError(f"two collection sections are named {section.name!r}")
        if (section.parse is None) == (section.apply is None):
            raise ValueError(f"section {section.name!r} needs a parse or an apply, not both")
        unknown = [name for name in section.after if name not in by_name]
        if unknown:
            raise ValueError(f"section {section.name!r} comes after {unknown}, listed later")
        by_name[section.name] = section
    return by_name


SECTIONS_BY_NAME = check_table(SECTIONS)
