"""What one collection saw on one host. Plain data; every section may be missing, with a reason."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from ..hosts.osinfo import OsInfo

#: what a systemd unit's name ends with
UNIT_SUFFIXES = (".service", ".socket", ".target", ".device", ".mount", ".automount", ".swap",
                 ".timer", ".path", ".slice", ".scope")


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """Jiffy counters of /proc/stat; busy share comes from the difference of two samples."""

    busy: int
    total: int
    cores: int
    #: when the host booted, by its own clock (``btime``): with its uptime, the host's time
    boot_time: int | None = None


@dataclass(frozen=True, slots=True)
class Memory:
    total_kb: int
    available_kb: int
    swap_total_kb: int
    swap_free_kb: int
    psi_some_avg60: float | None = None
    #: memory set aside as huge pages (for VMs, DPDK, a database): part of MemTotal, never
    #: of MemAvailable, used or not
    hugetlb_kb: int = 0
    #: what the ZFS ARC holds above its floor (size - c_min): a cache the kernel's
    #: MemAvailable does not count, which ZFS gives back under pressure (0 without ZFS)
    arc_reclaimable_kb: int = 0

    @property
    def available_percent(self) -> float:
        """Of the memory the kernel can give out at all: a host that reserved most of its
        memory as huge pages is not short of the rest, nor one whose ZFS cache holds it."""
        usable = self.total_kb - self.hugetlb_kb
        available = self.available_kb + self.arc_reclaimable_kb
        return min(100.0, 100.0 * available / usable) if usable > 0 else 100.0


@dataclass(frozen=True, slots=True)
class SwapCounters:
    pages_in: int
    pages_out: int


@dataclass(frozen=True, slots=True)
class Load:
    one: float
    five: float
    fifteen: float
    #: every thread the kernel schedules, the host's whole (the 4th field of /proc/loadavg,
    #: ``running/total``): what its pid_max and threads-max limit; None where not given
    threads: int | None = None


@dataclass(frozen=True, slots=True)
class MountPoint:
    """One mount of a file system that the mount table shows in view, as df names its point."""

    point: str
    #: the kernel's number for the mount (``/proc/self/mountinfo``'s first field)
    mount_id: int
    #: the whole file system is mounted there (its root, ``/``), not a directory or a file of
    #: it (a bind mount, a container's /etc/hosts, a btrfs subvolume)
    whole: bool


@dataclass(frozen=True, slots=True)
class Mount:
    source: str
    fstype: str
    target: str
    size_bytes: int
    used_bytes: int
    avail_bytes: int
    inodes: int
    inodes_used: int
    #: its file system is read-only (an image, a DVD, an AppImage): full by design, and
    #: nothing can fill it further; or the kernel stopped its writes (``stopped``)
    read_only: bool = False
    #: the mount itself is read-only (``mount -o ro``); None: the mount table was not read
    view_read_only: bool | None = False
    #: the kernel's word for writes it stopped after an error (``emergency_ro``,
    #: ``shutdown``), or ""
    stopped: str = ""
    #: which file system it is, by the mount table (its device number and source); "" where
    #: the table was not read or does not name the mount point df does
    file_system: str = ""
    #: every mount of that file system in view, this one among them: df lists a file system
    #: once, at whichever of them it chooses, and chooses anew as they come and go
    mounted_at: tuple[MountPoint, ...] = ()

    @property
    def used_percent(self) -> float:
        denominator = self.used_bytes + self.avail_bytes
        return 100.0 * self.used_bytes / denominator if denominator else 0.0

    @property
    def inodes_percent(self) -> float:
        return 100.0 * self.inodes_used / self.inodes if self.inodes else 0.0


#: how many of a file system's other mount points its findings name
ALSO_SHOWN = 5


@dataclass(frozen=True, slots=True)
class FileSystem:
    """One file system a fill level is judged on: the mount it is judged as (its subject),
    and the other mount points df listed it at, in order."""

    mount: Mount
    also: tuple[str, ...] = ()
    #: every mount of it as df listed it, ``mount`` among them: what is the mount's own (its
    #: ``-o ro``) and not the file system's
    mounts: tuple[Mount, ...] = ()
    #: the ZFS pool whose datasets these are, or "": ``mount`` then holds the pool's figures
    #: (:func:`_pool`), not the one dataset's
    pool: str = ""
    #: how many datasets the pool's used figure sums: every one of it df lists, those a
    #: quota holds (judged on their own) among them
    datasets: int = 0

    def also_mounted(self) -> list[str]:
        """An evidence line naming the other mount points, where there are any."""
        if not self.also:
            return []
        shown = ", ".join(self.also[:ALSO_SHOWN])
        more = len(self.also) - ALSO_SHOWN
        start = (f"the same ZFS pool also holds {shown}" if self.pool
                 else f"the same file system is also mounted at {shown}")
        return [start + (f" and {more} more" if more > 0 else "")]


def _file_system_key(m: Mount) -> tuple[object, ...]:
    """Which file system a line of df's is of. The mount table, where it was read, says
    (:attr:`Mount.file_system`): one device number for every mount of it, a btrfs's
    subvolumes among them. Without it, df's line says what it can: one device holds one
    file system at a time, so the mounts of one device node (``/dev/...``) of one type and
    size are one file system: each btrfs subvolume has a device number of its own, so df
    lists every one (/, /home, /var), with the file system's figures, read a moment apart (a
    busy disk's used count moves between two reads). Any other source names no device
    (``tmpfs``, any label a tmpfs is given): two full tmpfs of one size show the same
    figures, and are two.

    A ZFS dataset (``rpool/home``, source and no device) is of its pool: df lists each mounted
    one, its own data and the pool's free space, so a full pool shows every dataset full."""
    if m.fstype == "zfs":
        return ("zfs", zfs_pool(m), m.read_only)
    if m.file_system:
        return ("table", m.file_system)
    if not m.source.startswith("/dev/"):
        return (m.target,)
    return (m.source, m.fstype, m.size_bytes, m.inodes, m.read_only)


def zfs_pool(m: Mount) -> str:
    """The pool a ZFS dataset is of: its name up to the first ``/`` (``rpool/var/log``)."""
    return m.source.partition("/")[0]


#: how far from the pool's free space (a share of the pool) a dataset's may lie and still be
#: the pool's: datasets are read a moment apart, and a busy pool's free space moves
QUOTA_SLACK_PERCENT = 1


def _slack(group: list[Mount], free: int) -> int:
    return (sum(m.used_bytes for m in group) + free) * QUOTA_SLACK_PERCENT // 100


def _pool_free(group: list[Mount]) -> int:
    """The pool's free space, as its datasets show it. Each dataset's is the pool's, less
    where a quota of its own holds it (``quota``, ``refquota``: less free) and more where
    a reservation keeps room for it alone (``reservation``, ``refreservation``: its unused
    part, which no other dataset may take). The pool's own dataset (``rpool``) holds
    neither as a rule: where df lists it, it shows the pool's. Otherwise the most any
    shows: taken from what most show, two datasets full to their quotas beside one with
    the pool's room made a pool with 500 GiB free "100 % full", a critical incident that a
    clean was then planned for. Too much (a reservation) only has the datasets below it
    judged each on its own, by what df shows them."""
    root = [m for m in group if m.source == zfs_pool(m)]
    return root[0].avail_bytes if root else max(m.avail_bytes for m in group)


def _pool(group: list[Mount], named: Collection[str] = ()) -> list[FileSystem]:
    """A ZFS pool's datasets as the file systems they fill: the pool once, as its shortest
    mount point (or the one its live findings name: :func:`_subject`), with the pool's
    figures (the data of all its datasets df lists, and the pool's free space:
    :func:`_pool_free`), its datasets those that show that much free space, or more (a
    reservation's room is the pool's, set aside); and each dataset held by a quota of its
    own (a share of the pool less free than the pool), which fills up on its own while the
    pool has room. A full pool leaves no dataset more room than another, but for its
    reservations: one incident."""
    free = _pool_free(group)
    used = sum(m.used_bytes for m in group)
    slack = _slack(group, free)
    held = [m for m in group if m.avail_bytes < free - slack]
    shared = [m for m in group if m.avail_bytes >= free - slack]
    # each dataset at the point it is known by, whichever of its mounts df lists
    points = {id(m): _points([m]) for m in shared}
    known = sorted(shared, key=lambda m: _point_order(points[id(m)][0]))
    order = [points[id(m)][0] for m in known] + [p for m in known for p in points[id(m)][1:]]
    subject = _subject(order, named)
    first = next(m for m in known if subject in points[id(m)])
    pool = zfs_pool(first)
    whole = replace(first, source=pool, target=subject, size_bytes=used + free,
                    used_bytes=used, avail_bytes=free)
    return [FileSystem(whole, tuple(sorted({*order} - {subject})), tuple(shared), pool,
                       len(group)),
            *(_one([m], named) for m in held)]


def _point_order(point: str) -> tuple[int, str]:
    return (len(point), point)


def mount_order(m: Mount) -> tuple[int, str]:
    """Shorter mount points first, then by name: "/" before "/home" before "/var"."""
    return _point_order(m.target)


def _whole_and_parts(group: Iterable[Mount]) -> tuple[list[str], list[str]]:
    """The mount points of the file system df lists as ``group``: where the whole of it is
    mounted (the mount table's root ``/``), the earliest mount first (the lowest mount ID);
    and where a part of it is (a bind mount of a directory or a file, a btrfs subvolume),
    with where df lists it and the mount table does not say, by name."""
    shown = {at for m in group for at in m.mounted_at}
    whole = [at.point for at in sorted((at for at in shown if at.whole),
                                       key=lambda at: at.mount_id)]
    parts = {at.point for at in shown if not at.whole}
    parts.update(m.target for m in group if not m.mounted_at)
    return whole, sorted(parts.difference(whole))


def _points(group: Iterable[Mount], layered: Iterable[str] = ()) -> list[str]:
    """The mount points a file system's findings may be about, in the order one is chosen:
    where the whole of it is mounted, the earliest mount first, so that another mount of it
    coming or going (a bind mount at a shorter path, which df then lists it at instead)
    moves nothing; then the rest, nearest the root first, among them ``layered``: the points
    of overlays that show its figures (a container's "/", where the file system under it is
    mounted only as the files a container runtime binds, /etc/hosts)."""
    whole, parts = _whole_and_parts(group)
    return [*whole, *sorted({*parts, *layered}.difference(whole), key=_point_order)]


def _subject(order: list[str], named: Collection[str]) -> str:
    """The first of ``order`` that a live finding of the rule names (its incident goes on
    under the name it has, an incident opened before this choice was made too), else the
    first."""
    return next((point for point in order if point in named), order[0])


def _one(group: list[Mount], named: Collection[str] = (),
         over: Iterable[Mount] = ()) -> FileSystem:
    """A file system by one of its mount points (:func:`_points`, :func:`_subject`), the
    same from one check to the next whichever order df lists them in and whichever of them
    it lists; ``over``: overlays with its figures (see :func:`distinct_filesystems`)."""
    layered = {at.point for o in over for at in o.mounted_at} | {o.target for o in over}
    subject = _subject(_points(group, layered), named)
    first = min(group, key=lambda m: (m.target != subject, *mount_order(m)))
    whole, parts = _whole_and_parts(group)
    also = tuple(point for point in (*sorted(whole), *parts) if point != subject)
    return FileSystem(replace(first, target=subject), also, tuple(group))


def distinct_filesystems(mounts: Iterable[Mount],
                         named: Collection[str] = ()) -> list[FileSystem]:
    """The file systems a fill level is judged on, each once: one full disk is one problem,
    however many times it is mounted, and under one name (:func:`_points`) however its
    other mounts come and go; ``named``: the mount points a rule's live findings are about,
    which keep their names while they still show the file system.

    Mounts of one file system (:func:`_file_system_key`: btrfs subvolumes, which df lists
    each with its own device number) are one. An overlay mount (a container's root) reports
    the figures of the file system its upper directory lies on, with ``overlay`` as its
    source: an overlay whose file system (its size and inode count) another mount shows is
    left to that mount, which it may name where that file system is mounted nowhere whole
    (a container sees its disk only at /etc/hosts and the like); of overlays that share one
    only the first is kept. (df itself lists a file system once, at one of its mounts; the
    mount table names the others.) The datasets of a ZFS pool are the pool
    (:func:`_pool`)."""
    mounts = list(mounts)
    plain = {(m.size_bytes, m.inodes) for m in mounts if m.fstype != "overlay"}
    overlays: set[tuple[int, int]] = set()
    under: dict[tuple[int, int], list[Mount]] = {}
    groups: dict[tuple[object, ...], list[Mount]] = {}
    for m in mounts:
        if m.fstype == "overlay":
            figures = (m.size_bytes, m.inodes)
            if figures in plain:
                under.setdefault(figures, []).append(m)
                continue
            if figures in overlays:
                continue
            overlays.add(figures)
        groups.setdefault(_file_system_key(m), []).append(m)
    systems: list[FileSystem] = []
    for group in groups.values():
        if group[0].fstype == "zfs":
            systems += _pool(group, named)
        else:
            over = under.pop((group[0].size_bytes, group[0].inodes), [])
            systems.append(_one(group, named, over))
    return systems


def _same_file_system(line: Mount, listed: Mount) -> bool:
    """Whether df's line for a path is of the file system a mount of its table shows. df
    lists a file system once, at one of its mounts, but names the mount a path is in: the
    mount table says which file system each is; without it, one of a device node is known
    by its key; a ZFS dataset by its name (a pool's datasets are judged apart where a quota
    holds one); any other by its mount."""
    if line.fstype == "zfs":
        return listed.fstype == "zfs" and listed.source == line.source
    if line.file_system and listed.file_system:
        return line.file_system == listed.file_system
    if line.source.startswith("/dev/"):
        return _file_system_key(line) == _file_system_key(listed)
    return (listed.source, listed.target) == (line.source, line.target)


def file_system_of(line: Mount, mounts: Iterable[Mount]) -> tuple[str, ...]:
    """The mount points whose fill level space freed at ``line`` (df's line for a path) is
    counted in, as :func:`distinct_filesystems` judges ``mounts`` (df's whole table): its
    file system's subject first (what its disk findings are about), then its other mount
    points; for a ZFS dataset a quota holds, its pool's too (what is deleted in it is the
    pool's free space as well). Empty where no mount of the table is of it (an overlay
    left to the file system under it)."""
    systems = distinct_filesystems(mounts)
    mine = next((fs for fs in systems if any(_same_file_system(line, m) for m in fs.mounts)),
                None)
    if mine is None:
        return ()
    points = (mine.mount.target, *mine.also)
    if line.fstype == "zfs" and not mine.pool:
        pool = zfs_pool(line)
        points += tuple(point for fs in systems if fs.pool == pool
                        for point in (fs.mount.target, *fs.also))
    return points


@dataclass(frozen=True, slots=True)
class Unit:
    name: str
    load: str
    active: str
    sub: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    cursor: str
    timestamp: float
    priority: int
    message: str
    unit: str | None = None
    identifier: str | None = None
    pid: int | None = None
    #: the machine that wrote it (journal-remote collects other machines' entries)
    hostname: str | None = None
    #: how the unit's run failed (``exit-code``, ``signal``, ...), on PID 1's entry saying so
    unit_result: str | None = None
    #: the user's own unit (``systemd --user``) that wrote it; ``unit`` is then the user's
    #: manager, ``user@UID.service``
    user_unit: str | None = None

    @property
    def source(self) -> str:
        """The unit that wrote it (as journald or PID 1 names it), else its identifier, which
        any sender chooses: one that reads like a unit name says so in words, so that it is
        never taken for that unit (`logger -t nginx.service`)."""
        if self.unit:
            # a user's unit is no unit of the host's: its name alone would read as one
            return f"{self.user_unit} of {self.unit}" if self.user_unit else self.unit
        if self.identifier and self.identifier.endswith(UNIT_SUFFIXES):
            return f"{self.identifier} (syslog identifier)"
        return self.identifier or "unknown"


@dataclass(frozen=True, slots=True)
class Process:
    pid: int
    user: str
    cpu_percent: float
    mem_percent: float
    rss_kb: int
    elapsed_seconds: int
    cpu_seconds: int
    command: str
    #: the unit of the host's service manager it runs in (a service, a scope; a user's
    #: services are their ``user@UID.service``); None outside any (kernel threads) or unknown
    unit: str | None = None
    #: the listing cut its cgroup before naming the manager's (see
    #: :func:`~.parsers.listed_unit`): ``unit`` is unknown, until its /proc file is read
    unit_cut: bool = False


@dataclass(frozen=True, slots=True)
class ServiceResult:
    """How a service's last run ended (``systemctl show``), for one that did not succeed."""

    #: systemd's verdict: ``core-dump``, ``exit-code``, ``signal``, ``timeout``, ...
    result: str
    #: the main process's end: ``exited``, ``killed`` or ``dumped`` (empty while it runs)
    main_code: str = ""
    #: its exit status, or the signal that ended it
    main_status: int | None = None
    main_pid: int | None = None


@dataclass(frozen=True, slots=True)
class CoreDump:
    """One core dump systemd-coredump recorded (``coredumpctl list --json=short``)."""

    timestamp: float
    pid: int
    signal: int | None
    exe: str
    #: ``present``, ``missing``, ``none`` (not stored), ...
    corefile: str = ""
    size_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class ZombieParent:
    """A process with unreaped (zombie) children: only it can reap them, by waiting."""

    pid: int
    zombies: int
    command: str = ""
    #: its unit, as for :class:`Process`
    unit: str | None = None
    unit_cut: bool = False


@dataclass(frozen=True, slots=True)
class Certificate:
    """A configured certificate file: when it expires, or why it could not be read.

    A file may hold several certificates (a fullchain.pem: the leaf, then intermediates):
    the one that ends first speaks for the file, since a client that meets it refuses all.
    """

    path: str
    #: notAfter in seconds since the epoch; None when the file gave no certificate
    not_after: float | None = None
    #: notAfter as openssl prints it (``Feb  1 00:00:00 2025 GMT``: what the evidence quotes)
    not_after_text: str = ""
    #: the subject as openssl 3 prints it (``O = Org, CN = host``)
    subject: str = ""
    #: why no certificate was read (missing, unreadable, not PEM); None when it was
    error: str | None = None
    #: where in the file the certificate that ends first is (1: the first), of how many
    position: int = 1
    count: int = 1


#: the state ``systemctl list-unit-files`` gives a unit file systemd cannot parse, or cannot
#: open at all (a link whose target is gone)
UNIT_FILE_BAD = "bad"
#: a ``bad`` unit file for whose name systemd itself finds no file (``systemctl show``:
#: ``LoadState=not-found``): the directory entry is there and leads nowhere, a link whose
#: target is gone (or a loop of links). Nothing to parse: no unit file is broken
UNIT_FILE_NOT_FOUND = "not-found"
#: a UNIT_FILE_NOT_FOUND link that hides a unit file of its name in a directory systemd reads
#: later (``systemd-delta``: REDIRECTED): the file is there, and systemd cannot load it, since
#: it stops at the link (:attr:`Snapshot.hidden_unit_files` says where both are)
UNIT_FILE_HIDING = "hiding"
#: a ``bad`` unit file whose unit systemd loads all the same (``LoadState=loaded``): it passed
#: over the entry (a link whose target is no unit file name) and loaded a file of that name
#: from a directory it reads later. The unit is there; the entry is a stray
UNIT_FILE_PASSED_OVER = "passed-over"


@dataclass(frozen=True, slots=True)
class HiddenUnitFile:
    """A link to a missing file that takes the name of a unit file systemd would load."""

    #: the link, in a directory systemd reads first (``/etc/systemd/system``)
    link: str
    #: the file it hides (``/usr/lib/systemd/system``: most often the one the OS shipped)
    hidden: str


@dataclass(frozen=True, slots=True)
class BootChange:
    """One part of what runs that a boot would change: installed since the host booted, it
    is not what runs (a kernel takes effect only at a boot)."""

    #: ``kernel``, ``initrd``, ``kernel-modules`` (NixOS), or ``packages`` (Debian, Ubuntu)
    part: str
    #: what runs (empty where the host does not say) and what a boot would run
    running: str
    installed: str


@dataclass(frozen=True, slots=True)
class ClockSync:
    """What a time service that runs on the host says of the clock it keeps."""

    #: the service, as the host's init names it
    service: str
    #: when it started, on the host's clock; None where it does not say
    started: float | None
    #: when it last synchronised the clock, on the host's clock; None: not since it started
    synced: float | None


@dataclass(frozen=True, slots=True)
class MdArray:
    """One Linux md array as the kernel reports it in /proc/mdstat."""

    name: str
    #: ``raid1``, ``raid5``, ``raid10`` ...; empty for an inactive array, which has none yet
    level: str
    active: bool
    #: its member devices as listed (``sda1``), apart from those marked failed or spare
    members: tuple[str, ...]
    #: members the kernel marked faulty, ``(F)``
    failed: tuple[str, ...]
    spares: tuple[str, ...]
    #: the members it is made of, and those that work (``[2/1]``); None for a level
    #: without redundancy (raid0, linear) or an inactive array, which report none
    slots: int | None
    working: int | None
    #: each slot, ``U`` working and ``_`` missing (``[U_]``)
    status: str
    #: what md is doing to it (``recovery``, ``resync``, ``check``, ``reshape``, ``repair``)
    #: and how far, as it says (``12.6% (132480/1047552) finish=0.6min speed=22080K/sec``,
    #: ``DELAYED``); empty where nothing runs
    sync_action: str
    sync_progress: str
    #: its metadata as md says it (``super 1.2``: ``1.2``; an Intel RST or DDF fakeraid's
    #: container ``external:imsm``, an array inside one ``external:/md127/0``); empty where
    #: it says none (0.90 metadata)
    metadata: str = ""

    @property
    def degraded(self) -> bool:
        return self.slots is not None and self.working is not None and self.working < self.slots

    @property
    def container(self) -> bool:
        """An Intel RST (IMSM) or DDF container: md lists it inactive beside the arrays in it
        for as long as they exist; it holds their disks' metadata and is no array itself."""
        return self.metadata.startswith("external:") and \
            not self.metadata.startswith("external:/")


@dataclass(frozen=True, slots=True)
class FilesystemErrors:
    """The errors a mounted file system's kernel driver counted: ext4's count in its
    superblock since the last fsck (``/sys/fs/ext4/DEV/errors_count``), or btrfs's
    per-device counters (``/sys/fs/btrfs/FSID/devinfo/DEVID/error_stats``, kept on disk
    until reset). Both stay until a person acts (fsck, ``btrfs device stats -z``)."""

    #: ``ext4`` or ``btrfs``
    fstype: str
    #: the kernel's name of it: ext4's block device (``sda1``, ``dm-0``), btrfs's fsid
    name: str
    #: where it is mounted in the check's mount namespace; "" where it is not seen there
    #: (mounted in another: a container sees its host's sysfs)
    target: str
    #: every error counted
    errors: int
    #: ext4: when the first and the last error were recorded, on the host's clock; None
    #: where the kernel says none (0)
    first_error: float | None = None
    last_error: float | None = None
    #: btrfs: each device's counters that are not 0 (``devid 1 (sdb): write_errs 3``)
    detail: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """What one file system is known by from one look to the next."""
        return self.fstype, self.name


@dataclass(frozen=True, slots=True)
class TaskCount:
    """A service's tasks (processes and threads) and the most its cgroup's pids controller
    lets it have (``pids.current``, ``pids.max``; systemd's ``TasksMax=``)."""

    current: int
    #: None: no limit (``max``)
    limit: int | None


@dataclass(frozen=True, slots=True)
class KernelLimits:
    """The host's kernel-wide limits of tasks and open files, and the file handles in use."""

    #: /proc/sys/kernel/pid_max: one past the highest process or thread id
    pid_max: int
    #: /proc/sys/kernel/threads-max: the most threads the kernel makes
    threads_max: int
    #: /proc/sys/fs/file-nr: the file handles allocated, and the most it allocates
    #: (fs.file-max)
    files_open: int
    files_max: int

    @property
    def threads_limit(self) -> int:
        """The most threads the host can run: whichever of its two limits comes first (each
        thread takes an id below pid_max)."""
        return min(self.pid_max, self.threads_max)


@dataclass(frozen=True, slots=True)
class JournalGap:
    """Journal entries a check skipped unread: it had fallen further behind than one read
    catches up (a flood of warnings), so it read the newest entries instead, and judged what
    is happening now. Times are the host's."""

    #: the last entry read before the gap, and the first read after it
    after: float
    before: float
    #: how many entries of any priority lie between, by the journal's sequence numbers; None
    #: where they do not tell (the two from different journals)
    entries: int | None = None

    def describe(self) -> str:
        count = (f"{self.entries} journal entries (of any priority)" if self.entries is not None
                 else "the journal entries")
        return (f"{count} logged in the {max(0.0, self.before - self.after):.0f} s between "
                f"{_stamp(self.after)} and {_stamp(self.before)} were skipped unread: the "
                "journal's warnings came faster than the checks read them, so this check read "
                "the newest")


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(slots=True)
class Snapshot:
    """One collection of one host. ``errors`` maps a section to why it could not be collected;
    ``notes`` one that was collected to what its reader must know of it."""

    host: str
    taken_at: float
    os: OsInfo | None = None
    cpu: CpuTimes | None = None
    memory: Memory | None = None
    swap: SwapCounters | None = None
    load: Load | None = None
    uptime_seconds: float | None = None
    mounts: list[Mount] | None = None
    #: the mount points df named but could not read (a stale NFS handle, a FUSE mount the
    #: checking user may not stat), each with df's reason: how full they are is not known
    #: this look, so their incidents stay as they were (said in ``notes``)
    unread_mounts: dict[str, str] = field(default_factory=dict)
    systemd_running: bool | None = None
    units: list[Unit] | None = None
    #: the state of every unit file (``systemctl list-unit-files``): a file systemd cannot
    #: parse is ``bad`` (UNIT_FILE_BAD) there even when no loaded unit refers to it; one that
    #: leads to no file is UNIT_FILE_NOT_FOUND instead, as systemd says when asked about it
    unit_files: dict[str, str] | None = None
    #: the UNIT_FILE_HIDING files of ``unit_files``, with their paths; empty where no file
    #: systemd calls bad was asked about
    hidden_unit_files: dict[str, HiddenUnitFile] = field(default_factory=dict)
    #: NRestarts of each service (``systemctl show``): how often systemd restarted it
    restarts: dict[str, int] | None = None
    #: how the last run of each service that did not succeed ended (the same ``systemctl
    #: show``, filled by the restarts section)
    service_results: dict[str, ServiceResult] | None = None
    #: the services systemd restarts after a clean exit too (``Restart=always``): their
    #: restarts are crashes only where a failure says so (the same ``systemctl show``)
    clean_restarts: frozenset[str] | None = None
    #: the services whose unit file or drop-in changed on disk since systemd loaded it
    #: (``NeedDaemonReload=yes``, the same ``systemctl show``): systemd runs the old
    #: definition until a ``daemon-reload``
    needs_reload: frozenset[str] | None = None
    #: how many of each service's processes the kernel's OOM killer killed since its cgroup
    #: was made (the unit's start): ``oom_kill`` of its memory cgroup, cgroup v2's
    #: memory.events or v1's memory.oom_control; empty where no service has a memory cgroup
    oom_kills: dict[str, int] | None = None
    #: each service's tasks and its limit, from the pids controller of its cgroup (cgroup
    #: v2's, or v1's pids hierarchy); None where the host has no pids controller
    service_tasks: dict[str, TaskCount] | None = None
    #: the kernel's limits of threads and file handles, and the file handles in use (the
    #: threads are ``load.threads``)
    kernel_limits: KernelLimits | None = None
    #: the md arrays of /proc/mdstat; None where the host has no md driver (no such file)
    md_arrays: list[MdArray] | None = None
    #: each ZFS pool's state (ONLINE, DEGRADED, ...) from /proc/spl/kstat/zfs/POOL/state;
    #: None where ZFS's module is not loaded, or where a pool's state could not be read
    #: (OpenZFS before 0.8 keeps none there): said in ``notes``
    zfs_pools: dict[str, str] | None = None
    #: the latest dumps systemd-coredump recorded; empty where it is not installed
    core_dumps: list[CoreDump] | None = None
    journal: list[JournalEntry] | None = None
    journal_cursor: str | None = None
    #: what this check skipped of the journal, unread (said in ``notes`` too); None: nothing
    journal_gap: JournalGap | None = None
    #: the first journal entry after the position is more than a check reads
    #: (``sections.JOURNAL_MAX_BYTES``): the second step finds where it is, to pass it over
    journal_too_large: bool = False
    processes: list[Process] | None = None
    #: every listed process's start and CPU seconds (pid -> (start, seconds)): what the CPU
    #: a process used between two checks is measured from, kept or not
    cpu_seconds: dict[int, tuple[int, int]] | None = None
    #: when ps listed the processes, on the host's clock (its boot time plus its uptime read
    #: right after ps): a CPU rate between two listings is measured over the time between
    #: them, and a process's start (``cpu_seconds``) from it, whatever this machine's clock
    #: says and however late in each collection ps ran. None where either was not read
    processes_listed_at: float | None = None
    #: every process with zombie children, most zombies first
    zombies: list[ZombieParent] | None = None
    #: the configured certificates (``Settings.certificates``). Empty, not None, by default:
    #: with none configured no command reads them, and there is nothing unknown to judge
    certificates: list[Certificate] | None = field(default_factory=list)
    nixos_generation: str | None = None
    #: what a boot would change, as Debian and Ubuntu record it (/run/reboot-required): empty
    #: where nothing is recorded
    reboot: list[BootChange] | None = None
    #: what a boot would change on NixOS: the parts of the current system that are not the
    #: booted one's; empty where they are the same, or this is no NixOS
    nixos_boot: list[BootChange] | None = None
    #: what the time services that run on the host say of its clock: empty where none runs
    #: that tells (systemd-timesyncd does, by the files it keeps in /run)
    clock_sync: list[ClockSync] | None = None
    #: the kernel's taint flags since it booted (/proc/sys/kernel/tainted, a bit mask; 0:
    #: none); only a boot clears them
    kernel_taint: int | None = None
    #: the ext4 and btrfs file systems whose kernel drivers count errors, with their counts
    #: (none counted: 0); empty where neither driver has one mounted
    fs_errors: list[FilesystemErrors] | None = None
    #: the container manager the host runs under, as systemd says in /run/systemd/container
    #: (``lxc``, ``docker``, ``systemd-nspawn``); empty where it says none (no container, or
    #: one whose init is not systemd)
    container: str | None = None
    #: a container's files of /proc something is mounted on (lxcfs gives it its own load
    #: average and memory so), where others show the whole machine's (:meth:`machine_wide`);
    #: None where the mount table was not read, or this is no container
    proc_mounted: frozenset[str] | None = None
    errors: dict[str, str] = field(default_factory=dict)
    #: what a person must know of what was collected, which is no failure to collect it: the
    #: journal entries a check skipped to catch up (``journal_gap``), rules with nothing to
    #: judge on a host without systemd (``units``). Keyed by section, as ``errors``
    notes: dict[str, str] = field(default_factory=dict)
    #: why the host ran none of the check's commands though it answered (its account's login
    #: shell is no shell), in its own words: every section's error
    #: says so too. Such a host can be reached: it is misconfigured, not down
    refused: str | None = None
    #: why this machine asked the host nothing (its own open files ran out: a fleet larger
    #: than its limit): every section's error says so too. The host was not reached, nor
    #: found unreachable: no rule judges it
    unasked: str | None = None
    #: the sections this look did not read, judged from an earlier look's reading kept
    #: (``Section.every``: the unit files): a rule judging from one sees older news
    kept: frozenset[str] = frozenset()

    @property
    def cores(self) -> int:
        return self.cpu.cores if self.cpu and self.cpu.cores else 1

    def machine_wide(self, path: str) -> bool:
        """Whether what the /proc file ``path`` gave is the whole machine's, not the host's:
        a container with nothing mounted on it (see :attr:`proc_mounted`)."""
        return (bool(self.container) and self.proc_mounted is not None
                and path not in self.proc_mounted)

    def host_time(self) -> float:
        """The host's own clock when it was collected (its boot time plus its uptime, both
        read in the same collection); ``taken_at`` where either is missing. Journal entries
        carry the host's time: a window over them is measured on that clock, or a host whose
        clock is minutes behind would never show a burst. In a container whose /proc/uptime
        is mounted over (lxcfs: the container's age, beside the host kernel's boot time in
        /proc/stat), the two add up to a time hours or days past, and every fresh entry read
        as ahead of the host's clock: ``taken_at`` there too."""
        own = self.host_clock()
        return self.taken_at if own is None else own

    def host_clock(self) -> float | None:
        """:meth:`host_time` where it is the host's own clock; None where that could not be
        read (it is this machine's clock then)."""
        read_at = self.kernel_files_read_at()
        if read_at is None or "/proc/uptime" in (self.proc_mounted or ()):
            return None
        return read_at

    def kernel_files_read_at(self) -> float | None:
        """When the host's kernel counters (/proc/vmstat, /proc/stat, /proc/uptime) were
        read, on its own clock: its boot time plus its uptime, which a check's script reads
        with them in one ``tail`` at its start (and a local check at once). None where either
        is missing."""
        boot = self.cpu.boot_time if self.cpu is not None else None
        if boot is None or self.uptime_seconds is None:
            return None
        return boot + self.uptime_seconds

    def host_time_after(self, moment: float) -> float:
        """A moment on the host's clock surely no earlier than ``moment`` on this machine's
        (``time.time()``), as this collection read the two. The host's time reads up to a
        second early (the kernel gives its boot time in whole seconds, rounded down), so
        what the host stamps within that second after ``moment`` may come before it."""
        return moment + self.host_time() - self.taken_at + 1.0

    @property
    def failed_units(self) -> list[Unit]:
        return [u for u in self.units or [] if u.active == "failed"]

    def collected(self, section: str) -> bool:
        return section not in self.errors and getattr(self, section, None) is not None
