"""Pure parsers: the raw text of one command or file -> typed data. No I/O here.

Each is tested on fixture files holding the command, its raw output and the expected result.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import signal
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from .findings import strip_control
from .snapshot import (
    BootChange,
    Certificate,
    ClockSync,
    CoreDump,
    CpuTimes,
    FilesystemErrors,
    JournalEntry,
    Load,
    MdArray,
    Memory,
    Mount,
    MountPoint,
    Process,
    ServiceResult,
    SwapCounters,
    TaskCount,
    Unit,
    ZombieParent,
)

#: file systems that are kernel views, not storage: never a "disk full" subject
PSEUDO_FS = frozenset(
    "proc sysfs cgroup cgroup2 devpts devtmpfs mqueue debugfs tracefs securityfs pstore bpf "
    "autofs configfs fusectl hugetlbfs binfmt_misc nsfs ramfs efivarfs rpc_pipefs selinuxfs "
    "squashfs iso9660 fuse.lxcfs fuse.portal fuse.gvfsd-fuse none".split()
)


class ParseError(ValueError):
    """Raw output that does not have the expected shape."""


def parse_proc_stat(text: str) -> CpuTimes:
    """The aggregate ``cpu`` line and how many ``cpuN`` lines follow it. The file's other
    lines (``intr`` alone is thousands of numbers) are only counted past, never split."""
    text = "\n" + text
    at = text.find("\ncpu ")
    if at < 0:
        raise ParseError("no aggregate 'cpu' line in /proc/stat")
    end = text.find("\n", at + 1)
    try:
        fields = [int(x) for x in text[at + 5:end if end >= 0 else None].split()]
    except ValueError as exc:
        raise ParseError(f"unexpected 'cpu' line in /proc/stat: {exc}") from exc
    total = sum(fields[:8])  # guest time is already counted in user/nice
    if not total or len(fields) < 4:
        raise ParseError("no aggregate 'cpu' line in /proc/stat")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    cores = text.count("\ncpu") - text.count("\ncpu ")
    boot = text.find("\nbtime ")
    boot_end = text.find("\n", boot + 1)
    boot_text = text[boot + 7:boot_end if boot_end >= 0 else None].strip() if boot >= 0 else ""
    return CpuTimes(busy=total - idle, total=total, cores=max(cores, 1),
                    boot_time=int(boot_text) if boot_text.isdigit() else None)


def _kv_numbers(text: str, keys: tuple[str, ...]) -> dict[str, int]:
    """The numbers of ``keys`` in ``key value`` / ``key: value kB`` lines (/proc/meminfo,
    /proc/vmstat); a key that is absent or whose value is no number is left out. Each key is
    looked up where its line starts, not every line split: vmstat has ~180 lines and is read
    on every check of every host, for two of them."""
    out: dict[str, int] = {}
    text = "\n" + text
    for key in keys:
        needle = "\n" + key
        at = text.find(needle)
        while at >= 0:
            start = at + len(needle)
            end = text.find("\n", start)
            rest = text[start:] if end < 0 else text[start:end]
            if rest[:1] in (":", " ", "\t"):
                value = rest.replace(":", " ").split(None, 1)
                try:
                    out[key] = int(value[0])
                    break
                except (ValueError, IndexError):
                    pass
            at = text.find(needle, start)
    return out


_MEMINFO_KEYS = ("MemTotal", "MemAvailable", "MemFree", "SwapTotal", "SwapFree", "Hugetlb",
                 "HugePages_Total", "Hugepagesize")


def parse_meminfo(text: str, pressure: str | None = None, arcstats: str | None = None
                  ) -> Memory:
    """/proc/meminfo; ``pressure``: /proc/pressure/memory; ``arcstats``: ZFS's
    /proc/spl/kstat/zfs/arcstats, where ZFS is loaded."""
    values = _kv_numbers(text, _MEMINFO_KEYS)
    try:
        total = values["MemTotal"]
    except KeyError as exc:
        raise ParseError("MemTotal missing from /proc/meminfo") from exc
    available = values.get("MemAvailable", values.get("MemFree", 0))
    # Hugetlb (kernel 4.16+) counts every page size; before it, the default size's pool
    hugetlb = values.get("Hugetlb", values.get("HugePages_Total", 0)
                         * values.get("Hugepagesize", 0))
    return Memory(
        total_kb=total,
        available_kb=available,
        hugetlb_kb=hugetlb,
        swap_total_kb=values.get("SwapTotal", 0),
        swap_free_kb=values.get("SwapFree", 0),
        psi_some_avg60=parse_psi_some_avg60(pressure) if pressure else None,
        arc_reclaimable_kb=_arc_reclaimable_kb(arcstats),
    )


def _arc_reclaimable_kb(arcstats: str | None) -> int:
    """0 where there is no ZFS or its statistics say nothing usable: the memory rule then
    judges by MemAvailable alone, as before ZFS was looked at."""
    if not arcstats:
        return 0
    try:
        return parse_zfs_arc_reclaimable_kb(arcstats)
    except ParseError:
        return 0


def parse_zfs_arc_reclaimable_kb(text: str) -> int:
    """What the ZFS ARC holds above its minimum, in kB, from arcstats' ``name type data``
    rows: the ARC shrinks to ``c_min`` under memory pressure, and the kernel counts none of
    it in MemAvailable (openzfs/zfs#10255), so a ZFS host looks short of memory it has. At
    most what its lists can evict (``*_evictable_*``; ghost lists hold no data): dirty or
    referenced buffers stay."""
    values: dict[str, int] = {}
    evictable: int | None = None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or not parts[2].isdigit():
            continue
        name, value = parts[0], int(parts[2])
        values[name] = value
        if "_evictable_" in name and "ghost" not in name:
            evictable = (evictable or 0) + value
    if "size" not in values:
        raise ParseError("no ARC size in arcstats")
    above_floor = max(0, values["size"] - values.get("c_min", 0))
    return (above_floor if evictable is None else min(above_floor, evictable)) // 1024


def parse_psi_some_avg60(text: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("some "):
            for item in line.split()[1:]:
                key, _, value = item.partition("=")
                if key == "avg60":
                    return float(value)
    return None


def parse_vmstat(text: str) -> SwapCounters:
    values = _kv_numbers(text, ("pswpin", "pswpout"))
    return SwapCounters(values.get("pswpin", 0), values.get("pswpout", 0))


def parse_loadavg(text: str) -> Load:
    parts = text.split()
    if len(parts) < 3:
        raise ParseError(f"unexpected /proc/loadavg: {text[:80]!r}")
    # running/total: total is every thread the kernel schedules (absent before 2.6.x)
    _, slash, total = parts[3].partition("/") if len(parts) > 3 else ("", "", "")
    return Load(float(parts[0]), float(parts[1]), float(parts[2]),
                int(total) if slash and total.isdigit() else None)


def parse_uptime(text: str) -> float:
    try:
        return float(text.split()[0])
    except (IndexError, ValueError) as exc:
        raise ParseError(f"unexpected /proc/uptime: {text[:80]!r}") from exc


#: ``df -B1 --output=source,fstype,size,used,avail,itotal,iused,target``
DF_COLUMNS = "source,fstype,size,used,avail,itotal,iused,target"


def _int_or_zero(value: str) -> int:
    """A count df printed; ``-`` (none known) and a negative one (below: none left) are 0."""
    return int(value) if value.isdigit() else 0


#: a word of a df line: the line is cut into these once, in one pass
_DF_WORD = re.compile(r"\S+")
#: one of df's five counts: ``-`` where there is none; a negative one where a server reports
#: less than nothing free, an NFS or FUSE file system past full, which GNU df prints with its
#: sign (the line was dropped, and the fullest disk was judged by no rule)
_DF_COUNT = re.compile(r"-?\d+|-")


def _df_fields(line: str) -> tuple[str, ...] | None:
    """A line of :data:`DF_COLUMNS` as (source, fstype, five counts, target), or None.

    The source may hold spaces (``//nas/My Share``, sshfs), so it ends at the first word that
    is followed by five counts and a target; the target is the rest of the line. Words, not
    one regular expression: a pattern whose source could end at any of a long run of spaces
    backtracked for minutes on a line that did not fit, and a parse holds the daemon's loop
    for every host."""
    words = list(_DF_WORD.finditer(line))
    for at in range(1, len(words) - 6):
        counts = words[at + 1:at + 6]
        if all(_DF_COUNT.fullmatch(count.group()) for count in counts):
            source = line[words[0].start():words[at - 1].end()]
            return (source, words[at].group(), *(count.group() for count in counts),
                    line[words[at + 6].start():])
    return None


def parse_df(text: str) -> list[Mount]:
    # a target listed twice was mounted over: the later mount is the one in use there
    mounts: dict[str, Mount] = {}
    # a mount point is any user's to name (a FUSE mount, a USB stick's label): df ends a
    # line with "\n" alone (it writes that one in a name as "?"), but where the character
    # set is not UTF-8 it writes U+2028 or U+0085 as they are, which str.splitlines() takes
    # for ends of lines; and a name may end in a space ("data " beside "data"). Either
    # would read as a line of another mount's, emptier, figures, listed after it
    for line in text.split("\n")[1:]:
        fields = _df_fields(line)
        if fields is None:
            continue
        source, fstype, size, used, avail, itotal, iused, target = fields
        if fstype in PSEUDO_FS or not size.isdigit() or int(size) == 0:
            continue
        mounts[target] = Mount(
            source=source,
            fstype=fstype,
            target=target,
            size_bytes=int(size),
            used_bytes=_int_or_zero(used),
            avail_bytes=_int_or_zero(avail),
            inodes=_int_or_zero(itotal),
            inodes_used=_int_or_zero(iused),
        )
    return list(mounts.values())


#: one piece of a name as GNU's shell-escape quoting writes it (``quotef``, in df's errors):
#: ``'...'`` as it is; ``"..."`` (a name holding a ``'``) and ``$'...'`` (a control
#: character, a byte that is no character) with C escapes; ``\'`` (a quote, between two
#: quoted pieces); or a run of characters that needed no quoting
_SHELL_PIECE = re.compile(
    r"""'([^']*)'|"((?:[^"\\]|\\.)*)"|\$'((?:[^'\\]|\\.)*)'|\\(.)|([^'"\\$]+)""",
    re.DOTALL)
#: a C escape: octal (a byte of the name), or one character
_C_ESCAPE = re.compile(r"\\([0-7]{1,3}|.)", re.DOTALL)
_C_ESCAPES = {"a": b"\a", "b": b"\b", "t": b"\t", "n": b"\n", "v": b"\v", "f": b"\f",
              "r": b"\r", "e": b"\x1b"}


def _c_unescaped(text: str) -> bytes:
    """The bytes of a piece with C escapes: an octal escape is one byte of the name, which
    may be part of a character the pieces around it continue."""
    out, at = bytearray(), 0
    for m in _C_ESCAPE.finditer(text):
        out += text[at:m.start()].encode()
        code = m.group(1)
        out += bytes([int(code, 8) & 0xFF]) if code[0] in "01234567" \
            else _C_ESCAPES.get(code, code.encode())
        at = m.end()
    return bytes(out + text[at:].encode())


def _shell_unquoted(text: str) -> str | None:
    """A name as GNU's ``quotef`` quoted it (``'/mnt/my share'``, ``'/mnt/a:b'``,
    ``"/mnt/it's"``, ``'/mnt/a'$'\\n''b'``), or None where it is not so quoted."""
    name, at = bytearray(), 0
    while at < len(text):
        m = _SHELL_PIECE.match(text, at)
        if m is None:
            return None
        single, double, dollar, one, bare = m.groups()
        if double is not None or dollar is not None:
            name += _c_unescaped(double if double is not None else dollar)
        else:
            name += next(p for p in (single, one, bare) if p is not None).encode()
        at = m.end()
    return name.decode("utf-8", "replace")


def _as_df_lists(name: str) -> str:
    """A mount point as df writes it in a line of its table: each control character a
    ``?``."""
    return "".join("?" if ord(c) < 32 or ord(c) == 127 else c for c in name)


def parse_df_errors(stderr: str) -> tuple[dict[str, str], list[str]]:
    """The mount points df could not read, from its errors (``df: PATH: REASON``, GNU's and
    BusyBox's words: a stale NFS handle, a FUSE mount the reading user may not stat), each
    as its table would list it and with df's reason; and the lines that name none.

    A mount point is any user's to name: GNU quotes one that holds a space, a colon or a
    quote, so the name is read by its quoting, not cut at a colon; the reason, the C
    library's words for an errno, holds no ``": "``. The program's name before the first
    ``": "`` is whatever the host ran (``df``, a path of it)."""
    unread: dict[str, str] = {}
    other: list[str] = []
    for line in stderr.split("\n"):
        if not line.strip():
            continue
        _, named, rest = line.partition(": ")
        quoted, said, reason = rest.rpartition(": ")
        path = _shell_unquoted(quoted) if named and said and reason.strip() else None
        if path is None or not path.startswith("/"):
            other.append(line)
            continue
        unread[_as_df_lists(path)] = reason.strip()
    return unread, other


def mount_types(mountinfo: str) -> dict[str, str]:
    """Each mount point of ``/proc/self/mountinfo``, as df lists it, and its file system's
    type (where a point is mounted over, the mount in use)."""
    return {_as_df_lists(point): fstype for point, fstype, _, _ in _mountinfo(mountinfo)}


#: the octal escapes the kernel writes in a mount point (space, tab, newline, backslash)
_MOUNT_ESCAPE = re.compile(r"\\([0-7]{3})")


def _mount_field(field: str) -> str:
    """A field of the mount table as it was given: every check reads every mount, and an
    escape is rare, so the text is searched only where a backslash is."""
    if "\\" not in field:
        return field
    return _MOUNT_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def _mountinfo(mountinfo: str) -> Iterator[tuple[str, str, list[str], list[str]]]:
    """Each mount of ``/proc/self/mountinfo``, in order: its point, its file system's type,
    that file system's own (super) options, after `` - ``, and the mount's own options. Lines
    end at ``\n`` alone: the kernel escapes that one in a mount point, but writes U+2028 or
    U+0085 as they are."""
    for line in mountinfo.split("\n"):
        mount, dash, fs = line.partition(" - ")
        fields, fs_fields = mount.split(" "), fs.split(" ")
        if not dash or len(fields) < 6 or len(fs_fields) < 3:
            continue
        yield _mount_field(fields[4]), fs_fields[0], fs_fields[2].split(","), fields[5].split(",")


def proc_files_mounted(mountinfo: str) -> frozenset[str]:
    """The points under /proc something is mounted on, of ``/proc/self/mountinfo``, as seen
    through the /proc in use: a mount under a /proc mounted over since (a container that
    mounted its own procfs on lxcfs's files) is hidden, and its point shows the procfs."""
    mounts: dict[str, tuple[str, str]] = {}  # id: (parent id, point)
    on: dict[str, str] = {}  # point: the id of the mount in use there (the last)
    for line in mountinfo.split("\n"):
        fields = line.partition(" - ")[0].split(" ")
        if len(fields) >= 5 and fields[0].isdigit():
            point = _mount_field(fields[4])
            mounts[fields[0]] = (fields[1], point)
            on[point] = fields[0]
    top = on.get("/proc")

    def shown(mount: str) -> bool:
        for _ in range(len(mounts)):  # a parent chain is no longer than the table
            parent, point = mounts[mount]
            if on.get(point) != mount:
                return False
            if mount == top:
                return True
            if parent not in mounts:
                return False
            mount = parent
        return False

    return frozenset(point for point, mount in on.items()
                     if point.startswith("/proc/") and top is not None and shown(mount))


#: the words a file system's options gain when the kernel stops its writes after an error,
#: the mount left as it was: ext4's on recent kernels (6.18 here; before, its own ``ro``;
#: btrfs's too)
_WRITES_STOPPED = ("emergency_ro", "shutdown")


@dataclass(frozen=True, slots=True)
class MountFlags:
    """What the mount table says of a mount point's writes."""

    #: its file system is read-only, by its own flag or because the kernel stopped its writes
    read_only: bool
    #: the mount itself is read-only (``mount -o ro``, a read-only bind view)
    view_read_only: bool
    #: the kernel's word for writes it stopped after an error (``emergency_ro``,
    #: ``shutdown``), or ""
    stopped: str = ""


def mount_flags(mountinfo: str) -> dict[str, MountFlags]:
    """Each mount point of ``/proc/self/mountinfo``, as df lists it, and its flags. Read-only
    is the file system's own flag (the super options after `` - ``), not the mount's: a
    read-only view of a writable file system (systemd's ``ProtectSystem=`` around a service,
    NixOS's /nix/store) fills up through its other mounts. Where a point is mounted over, the
    last mount is the one in use (df reports it)."""
    flags = {}
    for point, _, options, view in _mountinfo(mountinfo):
        stopped = next((word for word in _WRITES_STOPPED if word in options), "")
        # keyed as df names it: the table writes a tab as \011, df as "?", and a full
        # read-only image named so was judged as a writable disk
        flags[_as_df_lists(point)] = MountFlags("ro" in options or bool(stopped), "ro" in view,
                                                stopped)
    return flags


def flagged(mounts: Iterable[Mount], flags: Mapping[str, MountFlags]) -> list[Mount]:
    """df's mounts with what the mount table says of their writes; a mount the table does
    not name as df does counts as writable."""
    return [replace(m, read_only=f.read_only, view_read_only=f.view_read_only,
                    stopped=f.stopped)
            if (f := flags.get(m.target)) is not None and (f.read_only or f.view_read_only)
            else m for m in mounts]


@dataclass(frozen=True, slots=True)
class MountPlace:
    """Which file system is mounted at a point, and every mount of it in view."""

    #: its device number (one for all its mounts) and source, as the mount table gives them
    file_system: str
    mounted_at: tuple[MountPoint, ...]


@dataclass(frozen=True, slots=True)
class _TableMount:
    mount_id: int
    parent: int
    #: as df lists it
    point: str
    file_system: str
    whole: bool


def _table_mounts(mountinfo: str) -> list[_TableMount]:
    rows = []
    for line in mountinfo.split("\n"):
        mount, dash, fs = line.partition(" - ")
        fields, fs_fields = mount.split(" "), fs.split(" ")
        if not dash or len(fields) < 6 or len(fs_fields) < 3 \
                or not (fields[0].isdigit() and fields[1].isdigit()):
            continue
        # the device number is the file system's, one for all its mounts (a bind mount, a
        # second mount of its device, a btrfs subvolume, whose files df reads with numbers
        # of their own); its source tells apart network shares the kernel gives one
        rows.append(_TableMount(int(fields[0]), int(fields[1]),
                                _as_df_lists(_mount_field(fields[4])),
                                f"{fields[2]} {_mount_field(fs_fields[1])}", fields[3] == "/"))
    return rows


def _in_view(rows: list[_TableMount]) -> set[int]:
    """The mounts a path reaches. One is hidden by a mount over it (at its point, on it; or
    the later one of two at one point on one mount), by one at a directory above its point
    on the mount it is on (``mount -t tmpfs x /srv`` over /srv/data), or with the mount it
    is on. The table's order is no order of mounting (a kernel lists the /proc and /dev an
    initramfs made before the root they were moved onto): the tree decides."""
    by_id = {row.mount_id: row for row in rows}
    last = {(row.parent, row.point): row.mount_id for row in rows}
    points_on: dict[int, set[str]] = {}
    for row in rows:
        points_on.setdefault(row.parent, set()).add(row.point)

    def hidden(row: _TableMount) -> bool:
        if last[(row.parent, row.point)] != row.mount_id \
                or row.point in points_on.get(row.mount_id, ()):
            return True
        if row.parent not in by_id:  # on a mount out of view: the root of this view
            return False
        siblings, above = points_on[row.parent], row.point
        while above not in ("/", ""):
            above = above.rpartition("/")[0] or "/"
            if above in siblings:
                return True
        return False

    shown: dict[int, bool] = {}
    for row in rows:
        chain, at = [], row
        while at.mount_id not in shown and len(chain) <= len(rows):
            chain.append(at)
            if at.parent not in by_id:
                break
            at = by_id[at.parent]
        ok = shown.get(at.mount_id, True)
        for link in reversed(chain):
            ok = ok and not hidden(link)
            shown[link.mount_id] = ok
    return {mount_id for mount_id, ok in shown.items() if ok}


def mount_places(mountinfo: str) -> dict[str, MountPlace]:
    """Each mount point of ``/proc/self/mountinfo``, as df lists it, with the file system
    mounted there (where a point is mounted over, the last mount, as df reports it) and the
    mounts of that file system in view. df lists a file system once, at one of its mounts
    (the one nearest the root), and lists it elsewhere when another mount of it comes or
    goes (a bind mount at a shorter path): the table says which file system a line is."""
    rows = _table_mounts(mountinfo)
    in_view = _in_view(rows)
    of: dict[str, list[MountPoint]] = {}
    for row in rows:
        if row.mount_id in in_view:
            of.setdefault(row.file_system, []).append(
                MountPoint(row.point, row.mount_id, row.whole))
    shared = {system: tuple(points) for system, points in of.items()}
    places = {}
    for row in rows:
        at = MountPoint(row.point, row.mount_id, row.whole)
        points = shared.get(row.file_system, ())
        # the mount df reads there, whatever the tree says of it (one in view is among
        # its file system's points already: asked of the set, not the tuple, which made
        # a table of thousands of bind mounts of one disk (a kubelet's) cost seconds)
        places[row.point] = MountPlace(row.file_system,
                                       points if row.mount_id in in_view else (*points, at))
    return places


def placed(mounts: Iterable[Mount], places: Mapping[str, MountPlace]) -> list[Mount]:
    """df's mounts with the file system the mount table says each is, and its other mounts;
    one the table does not name as df does is left as df gives it."""
    return [replace(m, file_system=p.file_system, mounted_at=p.mounted_at)
            if (p := places.get(m.target)) is not None else m for m in mounts]


def proc_hidepid(mountinfo: str) -> tuple[str, str | None] | None:
    """How the /proc in use (the last proc mounted on /proc) hides processes from users: its
    ``hidepid=`` (``2``/``invisible``: others' are not listed; ``1``/``noaccess``,
    ``ptraceable``: not readable) and the ``gid=`` whose members see all; None where it
    hides none, or no /proc is mounted there."""
    hidden: tuple[str, str | None] | None = None
    for point, fstype, options, _ in _mountinfo(mountinfo):
        if point == "/proc" and fstype == "proc":
            named = dict(option.partition("=")[::2] for option in options)
            hide = named.get("hidepid", "off")
            hidden = None if hide in ("0", "off") else (hide, named.get("gid") or None)
    return hidden


def _json_list(text: str, program: str = "systemctl") -> list[Any]:
    """The JSON list ``systemctl ... --output=json`` (or ``coredumpctl --json``) prints."""
    try:
        data: Any = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise ParseError(f"{program} did not print JSON: {exc}") from exc
    if not isinstance(data, list):
        raise ParseError(f"{program} JSON is not a list")
    return data


#: a unit's name ends in its type
_UNIT_NAME = re.compile(r"\S+\.[a-z]+")
#: what systemctl puts before a unit in trouble in its table (``*`` without UTF-8)
_TABLE_MARKS = frozenset({"\u25cf", "*"})


def _systemctl_table(text: str, header: str, columns: int) -> list[list[str]] | None:
    """The rows of the table systemctl prints where it ignores ``--output=json`` (systemd
    before 246: RHEL 8 and its rebuilds, Ubuntu 20.04, Debian 10): after the line that starts
    with ``header``, until the blank line before its legend; each row's first ``columns - 1``
    words and the rest as the last (a description holds spaces). None where ``text`` is no
    such table."""
    lines = text.splitlines()
    start = next((n for n, line in enumerate(lines) if line.strip().startswith(header)), None)
    if start is None:
        return None
    rows = []
    for line in lines[start + 1:]:
        words = line.split(None, columns)
        if not words:
            break
        if words[0] in _TABLE_MARKS:
            words = line.split(None, columns + 1)[1:]
        if words and _UNIT_NAME.fullmatch(words[0]):  # not "0 loaded units listed."
            rows.append(words)
    return rows


def _json_or_table(text: str, header: str, columns: int
                   ) -> tuple[list[Any], list[list[str]] | None]:
    """systemctl's JSON list, or (an older systemd's) the rows of its table in its stead;
    neither raises :class:`ParseError`."""
    try:
        return _json_list(text), None
    except ParseError:
        rows = _systemctl_table(text, header, columns)
        if rows is None:
            raise
        return [], rows


def parse_list_units(text: str) -> list[Unit]:
    """``systemctl list-units --all --output=json``; an older systemd's table alike."""
    data, rows = _json_or_table(text, "UNIT ", 4)
    if rows is not None:
        return [Unit(*row[:4], description=row[4] if len(row) > 4 else "")
                for row in rows if len(row) >= 4]
    return [
        Unit(
            name=str(item.get("unit", "")),
            load=str(item.get("load", "")),
            active=str(item.get("active", "")),
            sub=str(item.get("sub", "")),
            description=str(item.get("description", "")),
        )
        for item in data
        if isinstance(item, dict) and item.get("unit")
    ]


def parse_list_unit_files(text: str) -> dict[str, str]:
    """``systemctl list-unit-files --output=json``: each unit file's state (an older
    systemd's table alike)."""
    data, rows = _json_or_table(text, "UNIT FILE", 2)
    if rows is not None:
        return {row[0]: row[1].split()[0] for row in rows if len(row) >= 2}
    return {str(item["unit_file"]): str(item.get("state", ""))
            for item in data if isinstance(item, dict) and item.get("unit_file")}


@functools.lru_cache(maxsize=1)  # one host's text at a time: not a fleet's kept
def _show_blocks(text: str) -> tuple[dict[str, str], ...]:
    """``systemctl show`` of several units: a block of ``Key=value`` lines each. Split once
    for the four facts a check reads of the same text (restarts, results, restart settings,
    reloads): splitting it four times cost a check 17 ms at 2000 services."""
    return tuple(dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
                 for block in text.split("\n\n"))


def parse_show_restarts(text: str) -> dict[str, int]:
    """``systemctl show '*.service' -p Id,NRestarts``: blocks of ``Key=value`` lines."""
    restarts: dict[str, int] = {}
    for props in _show_blocks(text):
        unit, count = props.get("Id"), props.get("NRestarts")
        if unit and count and count.isdigit():
            restarts[unit] = int(count)
    return restarts


#: what the restarts section's ``systemctl show`` reads of every service
SHOW_PROPERTIES = ("Id,NRestarts,Result,ExecMainCode,ExecMainStatus,ExecMainPID,Restart,"
                   "NeedDaemonReload")
#: the ``Restart=`` settings under which systemd restarts a service after a clean exit too
_RESTARTS_CLEAN_EXITS = frozenset({"always", "on-success"})
#: ``ExecMainCode`` is the CLD_* code of waitid(2)
_MAIN_CODES = {"0": "", "1": "exited", "2": "killed", "3": "dumped"}


def parse_show_clean_restarts(text: str) -> frozenset[str]:
    """``systemctl show '*.service' -p Id,Restart,...``: the services systemd restarts after a
    clean exit too (``Restart=always``, ``on-success``; a getty after each logout), whose
    restart count alone says nothing of a crash."""
    restarted: set[str] = set()
    for props in _show_blocks(text):
        unit = props.get("Id")
        if unit and props.get("Restart") in _RESTARTS_CLEAN_EXITS:
            restarted.add(unit)
    return frozenset(restarted)


def parse_show_need_reload(text: str) -> frozenset[str]:
    """``systemctl show '*.service' -p Id,NeedDaemonReload,...``: the services whose unit file
    or a drop-in of it changed on disk since systemd loaded it. A systemd that does not know
    the property leaves it out (show skips unknown names): none is said to need one."""
    return frozenset(props["Id"] for props in _show_blocks(text)
                     if props.get("Id") and props.get("NeedDaemonReload") == "yes")


def parse_show_results(text: str) -> dict[str, ServiceResult]:
    """``systemctl show '*.service' -p Id,Result,ExecMainCode,...``: how each service that did
    not succeed ended (a healthy host has none)."""
    results: dict[str, ServiceResult] = {}
    for props in _show_blocks(text):
        unit, result = props.get("Id"), props.get("Result")
        if not unit or not result or result == "success":
            continue
        code = props.get("ExecMainCode", "")
        status, pid = props.get("ExecMainStatus", ""), props.get("ExecMainPID", "")
        results[unit] = ServiceResult(
            result=result,
            main_code=_MAIN_CODES.get(code, code),
            main_status=int(status) if status.isdigit() else None,
            main_pid=int(pid) if pid.isdigit() and pid != "0" else None,
        )
    return results


def parse_show_load_states(text: str) -> dict[str, str]:
    """``systemctl show -p Id,LoadState -- UNIT...``: how systemd loads each unit asked about
    (``not-found``: it finds no file for it; ``error``, ``bad-setting``: its file is broken)."""
    return {props["Id"]: props["LoadState"] for props in _show_blocks(text)
            if props.get("Id") and props.get("LoadState")}


#: ``[REDIRECTED] /etc/systemd/system/x.service → /usr/lib/systemd/system/x.service``; the
#: arrow is ``->`` where the locale's character set is not UTF-8
_DELTA_REDIRECTED = re.compile(r"^\[REDIRECTED\]\s+(?P<link>/\S+) (?:→|->) (?P<hidden>/\S+)$")


def parse_systemd_delta(text: str) -> dict[str, tuple[str, str]]:
    """``systemd-delta --type=redirected systemd/system``: the unit files that are links in a
    directory systemd reads first and hide a file of their name in one it reads later, by
    file name: (the link, the first file it hides)."""
    found: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        match = _DELTA_REDIRECTED.match(line.strip())
        if match:
            name = match["link"].rsplit("/", 1)[-1]
            found.setdefault(name, (match["link"], match["hidden"]))
    return found


def signal_name(number: int | None) -> str:
    """``11`` -> ``SEGV``, as systemd writes it (``status=11/SEGV``)."""
    if number is None:
        return "?"
    try:
        return signal.Signals(number).name.removeprefix("SIG")
    except ValueError:
        return str(number)


def parse_coredumpctl_list(text: str) -> list[CoreDump]:
    """``coredumpctl list --json=short``: the dumps systemd-coredump recorded, oldest first."""
    dumps = []
    for item in _json_list(text, "coredumpctl"):
        if not isinstance(item, dict) or not isinstance(item.get("pid"), int):
            continue
        when, sig, size = item.get("time"), item.get("sig"), item.get("size")
        dumps.append(CoreDump(
            timestamp=when / 1e6 if isinstance(when, int) else 0.0,
            pid=item["pid"],
            signal=sig if isinstance(sig, int) else None,
            exe=str(item.get("exe") or ""),
            corefile=str(item.get("corefile") or ""),
            size_bytes=size if isinstance(size, int) else None,
        ))
    return dumps


#: UNIT_RESULT: how a unit's run failed, on PID 1's "Failed with result" entry;
#: _SYSTEMD_USER_UNIT: a user's own unit (systemd --user), inside their user@UID.service
JOURNAL_FIELDS = ("MESSAGE,PRIORITY,_SYSTEMD_UNIT,UNIT,SYSLOG_IDENTIFIER,_PID,_COMM,_HOSTNAME,"
                  "UNIT_RESULT,_SYSTEMD_USER_UNIT")


#: what is kept of a journal message: its beginning says what happened
MESSAGE_MAX = 8192


#: the values kept of a field an entry carries more than once
VALUES_MAX = 16


def _several(value: Any) -> bool:
    """A field the entry carries more than once: journalctl writes its values as a list,
    each a string or (binary) a list of byte values."""
    return isinstance(value, list) and any(isinstance(v, (str, list)) for v in value)


def _message_text(value: Any) -> str:
    # journald gives a field with control characters or invalid UTF-8 as a list of byte
    # values: any field, and any local user can make one (`logger -t $'\e[31mx'`)
    if _several(value):
        # each of them, a line each (read as bytes, a list of strings was an empty message)
        return "\n".join(_message_text(v) for v in value[:VALUES_MAX])[:MESSAGE_MAX]
    if isinstance(value, list):
        return bytes(v for v in value[:MESSAGE_MAX * 4]
                     if isinstance(v, int) and 0 <= v < 256).decode("utf-8", "replace")[
                         :MESSAGE_MAX]
    return "" if value is None else str(value)[:MESSAGE_MAX]


def _field_text(value: Any) -> str | None:
    """A short journal field as text (decoded as :func:`_message_text` does), None when
    absent or empty; of one given more than once, the first (a name is one name)."""
    if _several(value):
        value = value[0]
    return _message_text(value) or None if isinstance(value, (str, list)) else None


#: a syslog identifier names a program (RFC 5424's APP-NAME: 48 characters at most)
IDENTIFIER_MAX = 64


def _identifier(value: Any) -> str | None:
    """A sender's name for itself, as one short line: any local user sets SYSLOG_IDENTIFIER
    (and a process its own name), newlines and escapes included, and it becomes an incident's
    subject and a line of what a person is told. Without what shows as nothing: an invisible
    mark after "nginx.service" would keep it from reading as a unit's name here
    (:attr:`JournalEntry.source`), while a person reads just that (strip_control takes
    Unicode's format characters too)."""
    text = " ".join(strip_control(_field_text(value) or "").split())
    return (text if len(text) <= IDENTIFIER_MAX else text[:IDENTIFIER_MAX - 1] + "…") or None


def _journal_number(value: Any) -> int | None:
    """A numeric field as journalctl writes it, a string of digits; None for anything else.
    The line is the host's to write: a JSON number may be ``Infinity`` or ``1e400``, which no
    int holds, and a string of 5,000 digits is more than int() reads."""
    if not isinstance(value, str):
        return None
    try:
        return int(value)
    except ValueError:
        return None


#: journald's realtime stamps are unsigned 64-bit microseconds; a larger one is no float
_REALTIME_MAX = 2**64


def parse_journal_line(line: str) -> JournalEntry | None:
    """One line of ``journalctl -o json``; anything else is None."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        item = json.loads(line)
    # ValueError: not JSON, or an integer of more digits than int() reads; RecursionError:
    # arrays nested deeper than the interpreter's stack, which any host may print
    except (ValueError, RecursionError):
        return None
    if not isinstance(item, dict):
        return None
    cursor = item.get("__CURSOR")
    if not isinstance(cursor, str):
        return None
    priority = _journal_number(item.get("PRIORITY"))
    micros = _journal_number(item.get("__REALTIME_TIMESTAMP"))
    timestamp = micros / 1e6 if micros is not None and abs(micros) < _REALTIME_MAX else 0.0
    pid = item.get("_PID")
    # systemd's own messages about a unit carry UNIT=; a unit's output carries _SYSTEMD_UNIT=
    # (set by journald, from the sender's cgroup). UNIT= is any sender's to write (`logger
    # --journald`): it names the unit only when PID 1 wrote it, as `journalctl -u` reads it
    unit = (_field_text(item.get("UNIT")) if pid == "1" else None) \
        or _field_text(item.get("_SYSTEMD_UNIT"))
    # likewise UNIT_RESULT: PID 1 writes it when a unit's run failed, anyone else may forge it
    unit_result = _field_text(item.get("UNIT_RESULT")) if pid == "1" else None
    # journald sets it from the sender's cgroup, as it sets _SYSTEMD_UNIT: the user's manager
    # runs that unit, which is the user's to mind, not the host's
    user_unit = (_field_text(item.get("_SYSTEMD_USER_UNIT"))
                 if unit is not None and unit.startswith("user@") else None)
    return JournalEntry(
        cursor=cursor,
        timestamp=timestamp,
        priority=6 if priority is None else priority,
        message=_message_text(item.get("MESSAGE")),
        unit=unit,
        identifier=_identifier(item.get("SYSLOG_IDENTIFIER")) or _identifier(item.get("_COMM")),
        pid=int(pid) if isinstance(pid, str) and pid.isdigit() else None,
        hostname=_field_text(item.get("_HOSTNAME")),
        unit_result=unit_result,
        user_unit=user_unit,
    )


def parse_journal(text: str) -> list[JournalEntry]:
    # one entry a line, split at "\n" only: journalctl writes U+2028 and U+2029 (any sender's
    # text) raw inside its JSON strings, where str.splitlines() would cut the entry in two
    return [e for e in map(parse_journal_line, text.split("\n")) if e is not None]


#: the user column's width in :data:`PS_COLUMNS`: ps pads a shorter name to it (and writes
#: the numeric uid for a longer one)
_USER_WIDTH = 32
#: ``ps -eo`` columns of the process table; args last because it holds spaces
PS_COLUMNS = f"pid=,ppid=,stat=,user:{_USER_WIDTH}=,pcpu=,pmem=,rss=,etimes=,times=,args="
#: ps writes at most this many characters of a column that is not the last, and cuts there
_CGROUP_WIDTH = 239
#: the same with each process's cgroup, from which :func:`cgroup_unit` names its unit: ps's
#: own ``unit`` column asks libsystemd once a process, which costs four times the rest of the
#: listing (measured in the fault lab, 600 processes: 0.20 s of CPU against 0.05 s)
PS_CGROUP_COLUMNS = PS_COLUMNS.replace(",args=", f",cgroup:{_CGROUP_WIDTH}=,args=")
#: the unit types a process can run in: a service, a scope (slices hold other cgroups only)
_PROCESS_UNITS = (".service", ".scope")


def systemd_cgroup(field: str, cut: bool = False) -> str | None:
    """The service manager's cgroup path in ps's ``cgroup`` column (the lines of
    /proc/PID/cgroup that are not the root, joined by commas): cgroup v2's ``0::PATH``, else
    a legacy or hybrid host's ``N:name=systemd:PATH``; None where neither is there, and ""
    (whose it is: unknown) where a hybrid host's two disagree. ``cut``: the column was cut
    at its width, so its last entry may be part of one and is not read (the entries before
    it, each followed by a comma, are whole).

    A path may hold a comma (a name chosen in a delegated subtree, a user's): what follows
    it poses as an entry of its own. The kernel lists the hierarchies in one order, so the
    first entry of each is the real one, and a hybrid host's service manager keeps a process
    at one path in both (a delegate may go deeper in one): a ``0::`` posing after the
    ``name=systemd`` path is told by that path, which it does not extend.
    """
    legacy = unified = None
    entries = field.split(",")
    for entry in entries[:-1] if cut else entries:
        number, _, rest = entry.partition(":")
        hierarchy, _, path = rest.partition(":")
        if not path.startswith("/") or not number.isdigit():
            continue
        if hierarchy == "" and unified is None:
            unified = path
        elif hierarchy == "name=systemd" and legacy is None:
            legacy = path
    if unified is None or legacy is None:
        return unified if unified is not None else legacy
    return unified if _within(unified, legacy) or _within(legacy, unified) else ""


def listed_unit(field: str, root: str = "/") -> tuple[str | None, bool]:
    """A process's unit (:func:`cgroup_unit`) from ps's ``cgroup`` column, and whether the
    column's cut at its width (:data:`_CGROUP_WIDTH`) left it unknown. A legacy or hybrid
    host joins a path per hierarchy, so a long unit name passes the width, and the kernel
    lists ``name=systemd`` and ``0::`` last, where the cut falls: a whole entry before it
    names the unit; else the cut entry does where the cut is below the unit's name."""
    if len(field) < _CGROUP_WIDTH:
        return cgroup_unit(systemd_cgroup(field), root), False
    path = systemd_cgroup(field, cut=True)
    if path is not None:
        return cgroup_unit(path, root), False
    unit = cgroup_unit(systemd_cgroup(field), root, whole=False)
    return unit, unit is None


def parse_proc_cgroups(text: str) -> dict[int, str]:
    """``head -v`` of /proc/PID/cgroup files: each process's lines that are not the root,
    joined by commas, as ps's ``cgroup`` column gives them whole (the kernel's text holds no
    ``==>`` header line); a file head could not open is absent."""
    fields: dict[int, list[str]] = {}
    lines: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("==> /proc/") and line.endswith("/cgroup <=="):
            pid = line[len("==> /proc/"):-len("/cgroup <==")]
            lines = fields.setdefault(int(pid), []) if pid.isdigit() else None
        elif lines is not None and line and not line.endswith(":/"):
            lines.append(line)
    return {pid: ",".join(lines) for pid, lines in fields.items()}


def _within(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def manager_root(pid1_cgroup: str | None) -> str:
    """Where the host's service manager keeps its units: PID 1's cgroup less its
    ``init.scope`` (a container without a cgroup namespace of its own sits below the host's)."""
    if not pid1_cgroup:
        return "/"
    root = pid1_cgroup.removesuffix("/init.scope")
    return root or "/"


def cgroup_unit(path: str | None, root: str = "/", whole: bool = True) -> str | None:
    """The unit of the host's service manager that holds a cgroup path, as libsystemd's
    sd_pid_get_unit names it: below the manager's root, the first component that is no
    slice. A user's services read as their ``user@UID.service``, a container's as its scope;
    none for the root (kernel threads) or a cgroup outside the manager's. ``whole``: False
    where the path may have been cut, so that its last component may be part of a name."""
    if not path:
        return None
    if root != "/":
        if path != root and not path.startswith(root + "/"):
            return None
        path = path[len(root):]
    parts = path.split("/")
    for n, part in enumerate(parts):
        if not part or part.endswith(".slice"):
            continue
        if not part.endswith(_PROCESS_UNITS) or (not whole and n == len(parts) - 1):
            return None
        return part
    return None


#: pid -> (start, in seconds since the epoch; CPU seconds used so far) of every process of a
#: listing: a few ints each, where a Process is made for the thirty a check keeps
CpuSeconds = dict[int, tuple[int, int]]


def same_process(start: int, other_start: int) -> bool:
    """Whether two listings' starts of one pid are one process (ps gives the age in whole
    seconds, and the listing's time is read a moment after ps ran)."""
    return abs(start - other_start) <= 2


#: the leading columns of a ps line that choosing the processes, counting zombies and
#: measuring CPU read (pid, ppid, stat, user, pcpu, pmem, rss, etimes, times); the rest (the
#: long cgroup, the command) is split only for the lines a check keeps
_LEAD = 9
#: what is kept of a line past its leading columns: the cgroup and a command's first words
_REST = 4096
#: how wide ps may write a line (``--cols``): the leading columns (under 100 characters:
#: the user's is 32 wide, the numbers' widths are a pid's and a size's) and _REST. A command
#: line is any user's to choose, 128 KiB a process: written whole (``-ww``), 512 of them
#: passed what a remote check's reply may hold, and every section of the check was lost
PS_WIDTH = _REST + 512


class _ProcessTable:
    """A ``ps -eo`` listing (:data:`PS_COLUMNS`, or :data:`PS_CGROUP_COLUMNS` where
    ``cgroups``) split into its lines' fields; a :class:`Process` is made only for a line
    asked for: a host lists hundreds of processes, a check keeps thirty."""

    def __init__(self, text: str, cgroups: bool) -> None:
        self.cgroups = cgroups
        self.fields = 10 if cgroups else 9
        #: each line's leading columns and, last, the rest of the line (cut at _REST where
        #: a process is made of it: its arguments are any user's to choose)
        self.rows: list[list[str]] = [
            parts for parts in (line.split(None, _LEAD) for line in text.splitlines())
            if len(parts) > _LEAD and parts[0].isdigit()]
        try:
            #: each row's pcpu and rss, which choose the top processes
            self.cpu = list(map(float, [parts[4] for parts in self.rows]))
            self.rss = list(map(float, [parts[6] for parts in self.rows]))
        except ValueError:
            # a name with spaces (a directory service's user) shifts the columns after it:
            # such lines are read by the column's width (rare: the listing is split again)
            self.rows = list(filter(None, map(_ps_row, text.splitlines())))
            self.cpu = _numbers([parts[4] for parts in self.rows])
            self.rss = _numbers([parts[6] for parts in self.rows])
        pid1 = None
        if cgroups:
            init = next((self._whole(parts) for parts in self.rows if parts[0] == "1"), None)
            pid1 = systemd_cgroup(init[9]) if init else None
        self.root = manager_root(pid1)
        self._units: dict[str, tuple[str | None, bool]] = {}
        self._cpu_seconds: CpuSeconds | None = None
        self._cpu_at = 0
        #: the same, a row each, in the listing's order
        self._cpu_rows: list[tuple[int, int, int]] = []

    def _whole(self, parts: list[str]) -> list[str] | None:
        """All the line's columns; None where it has fewer than the listing's."""
        rest = parts[_LEAD][:_REST].split(None, self.fields - _LEAD)
        return parts[:_LEAD] + rest if len(rest) > self.fields - _LEAD else None

    def unit(self, field: str) -> tuple[str | None, bool]:
        """The unit :func:`listed_unit` reads, and whether the cut left it unknown."""
        if field not in self._units:
            self._units[field] = listed_unit(field, self.root)
        return self._units[field]

    def process(self, parts: list[str]) -> Process | None:
        """The line's process; None for a line whose numbers are not numbers."""
        whole = self._whole(parts)
        if whole is None:
            return None
        unit, cut = self.unit(whole[9]) if self.cgroups else (None, False)
        try:
            return Process(
                pid=int(whole[0]), user=whole[3], cpu_percent=float(whole[4]),
                mem_percent=float(whole[5]), rss_kb=int(whole[6]),
                elapsed_seconds=int(whole[7]), cpu_seconds=int(whole[8]),
                command=whole[self.fields],
                unit=unit, unit_cut=cut)
        except ValueError:
            return None

    def top(self, count: int, since: CpuSeconds | None = None,
            taken_at: float = 0.0) -> list[Process]:
        """The top ``count`` by CPU (ps's lifetime average), then those of the top ``count`` by
        memory, then, where ``since`` holds an earlier listing's CPU seconds, those of the top
        ``count`` by CPU seconds used since (a daemon up for days that began to spin a minute
        ago: its lifetime average is small), each once (ties in the listing's order)."""
        ranked: list[list[float]] = [self.cpu, self.rss]
        if since:
            self.cpu_seconds(taken_at)
            ranked.append([float(cpu - since[pid][1]) if pid in since
                           and same_process(since[pid][0], start) else -1.0
                           for pid, start, cpu in self._cpu_rows])
        top: dict[str, Process] = {}
        for keys in ranked:
            for n in sorted(range(len(keys)), key=keys.__getitem__, reverse=True)[:count]:
                parts = self.rows[n]
                if keys[n] >= 0 and parts[0] not in top \
                        and (process := self.process(parts)) is not None:
                    top[parts[0]] = process
        return list(top.values())

    def cpu_seconds(self, taken_at: float) -> CpuSeconds:
        """Each listed process's start (``taken_at`` less its age) and CPU seconds so far, in
        the listing's order; a line whose numbers are not numbers reads as a process started
        now that used none."""
        now = round(taken_at)
        if self._cpu_seconds is None or self._cpu_at != now:  # one listing read at two times
            self._cpu_at = now
            pids = [int(parts[0]) for parts in self.rows]
            try:  # each column at once: a host lists hundreds of processes, a check or two
                self._cpu_rows = list(zip(
                    pids, [now - age for age in map(int, [parts[7] for parts in self.rows])],
                    map(int, [parts[8] for parts in self.rows]), strict=True))
            except ValueError:
                self._cpu_rows = [_cpu_row(pid, parts, now)
                                  for pid, parts in zip(pids, self.rows, strict=True)]
            self._cpu_seconds = {pid: (start, cpu) for pid, start, cpu in self._cpu_rows}
        return self._cpu_seconds


def _cpu_row(pid: int, parts: list[str], now: int) -> tuple[int, int, int]:
    """A listing row's pid, start and CPU seconds; one whose numbers are not numbers reads
    as a process started now that used none."""
    try:
        return pid, now - int(parts[7]), int(parts[8])
    except ValueError:
        return pid, now, 0


def _ps_row(line: str) -> list[str] | None:
    """A listing line's leading columns and the rest; where the columns after
    the user do not read as numbers, the user is read as ps pads it (:data:`_USER_WIDTH`);
    None for a line that is no process."""
    parts = line.split(None, _LEAD)
    if len(parts) <= _LEAD or not parts[0].isdigit():
        return None
    if _number(parts[4]) < 0 or _number(parts[6]) < 0:
        lead = line.split(None, 3)
        if len(lead) == 4 and lead[3][_USER_WIDTH:_USER_WIDTH + 1] == " ":
            after = lead[3][_USER_WIDTH:].split(None, _LEAD - 4)
            if len(after) == _LEAD - 3:
                parts = [*lead[:3], lead[3][:_USER_WIDTH].rstrip(), *after]
    return parts


def _numbers(texts: list[str]) -> list[float]:
    """Each text as a number; -1 for one that is none."""
    try:
        return list(map(float, texts))
    except ValueError:
        return [_number(text) for text in texts]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return -1.0


@functools.lru_cache(maxsize=2)  # one host's listing at a time: not a fleet's kept
def _table(text: str, cgroups: bool) -> _ProcessTable:
    """Two rows read one listing (the processes, the zombies): split once."""
    return _ProcessTable(text, cgroups)


def parse_ps(text: str) -> list[Process]:
    """``ps -eo`` :data:`PS_COLUMNS`: the processes, in the listing's order."""
    table = _table(text, False)
    return [p for p in map(table.process, table.rows) if p is not None]


def parse_ps_top(text: str, cgroups: bool = True, count: int = 15,
                 since: CpuSeconds | None = None, taken_at: float = 0.0) -> list[Process]:
    """The processes a check keeps of a listing (:data:`PS_CGROUP_COLUMNS`;
    ``cgroups=False``: :data:`PS_COLUMNS`): the top ``count`` by CPU, by memory and, given
    an earlier listing's :func:`parse_cpu_seconds` (``since``), by CPU used since, each once."""
    return _table(text, cgroups).top(count, since, taken_at)


def parse_cpu_seconds(text: str, taken_at: float, cgroups: bool = True) -> CpuSeconds:
    """Every process's start and CPU seconds (see :data:`CpuSeconds`), the listing taken at
    ``taken_at``."""
    return _table(text, cgroups).cpu_seconds(taken_at)


#: clock ticks a second in /proc/PID/stat (USER_HZ: 100 on every architecture Linux runs
#: on today, whatever the kernel's own HZ)
USER_HZ = 100


def ps_init_age(text: str, cgroups: bool = True) -> int | None:
    """How long PID 1 had run when ps listed it (its ``etimes``); None where the listing
    lacks it (a ``hidepid=`` mount)."""
    table = _table(text, cgroups)
    init = next((table._whole(parts) for parts in table.rows if parts[0] == "1"), None)
    if init is None or not init[7].isdigit():
        return None
    return int(init[7])


def proc_start_ticks(text: str) -> int:
    """A process's start, in clock ticks after boot, from its /proc/PID/stat (field 22,
    counted after the name's closing parenthesis: the name may hold spaces and parens)."""
    fields = text[text.rfind(")") + 2:].split()
    if len(fields) < 20 or not fields[19].isdigit():
        raise ParseError(f"not a /proc/PID/stat line: {text.strip()[:80]!r}")
    return int(fields[19])


def ps_partial_users(text: str, cgroups: bool = True) -> frozenset[str] | None:
    """Where a listing lacks PID 1, which every PID namespace has, the users of the processes
    it lists: /proc showed its user only some of the processes (a ``hidepid=`` mount, see
    :func:`proc_hidepid`). None for a listing with PID 1 in it."""
    rows = _table(text, cgroups).rows
    if any(parts[0] == "1" for parts in rows):
        return None
    return frozenset(parts[3] for parts in rows)


def parse_ps_zombies(text: str, cgroups: bool = True) -> list[ZombieParent]:
    """The processes of a listing (:data:`PS_CGROUP_COLUMNS`; ``cgroups=False``:
    :data:`PS_COLUMNS`) whose children are zombies (state Z: exited, not yet waited for), with
    how many, most first."""
    table = _table(text, cgroups)
    zombies: dict[str, int] = {}
    for parts in table.rows:
        # ppid 0: the parent is outside this pid namespace (a command entered into a
        # container, about to be reaped there); no process here could reap it. "Zl": a
        # process whose main thread ended while its other threads run: alive, nothing to
        # reap yet (ps shows its state by the main thread's)
        state = parts[2]
        if state.startswith("Z") and "l" not in state and parts[1].isdigit() \
                and parts[1] != "0":
            zombies[parts[1]] = zombies.get(parts[1], 0) + 1
    if not zombies:
        return []
    # a parent may have exited between two lines of the listing: no command, no unit
    parents = {parts[0]: table.process(parts) for parts in table.rows if parts[0] in zombies}
    found = []
    for ppid, count in zombies.items():
        parent = parents.get(ppid)
        found.append(ZombieParent(int(ppid), count, parent.command if parent else "",
                                  parent.unit if parent else None,
                                  parent.unit_cut if parent else False))
    return sorted(found, key=lambda p: (-p.zombies, p.pid))


_MONTHS = {name: n for n, name in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def openssl_time(text: str) -> float:
    """``Feb  1 00:00:00 2025 GMT`` (openssl's ASN.1 time, always GMT) -> epoch seconds.

    Read by hand, not by strptime: month names must not follow the locale.
    """
    words = text.split()
    try:
        month, day, clock, year = _MONTHS[words[0]], int(words[1]), words[2], int(words[3])
        hour, minute, second = (int(x) for x in clock.split(":"))
        if words[4:] not in (["GMT"], ["UTC"], []):
            raise ValueError(words[4:])
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()
    except (KeyError, IndexError, ValueError) as exc:
        raise ParseError(f"not an openssl date: {text[:80]!r}") from exc


#: the PEM label ``openssl crl2pkcs7`` writes
_PKCS7_PEM = re.compile(r"-----BEGIN PKCS7-----(.*?)-----END PKCS7-----", re.S)
#: id-signedData (1.2.840.113549.1.7.2), DER-encoded with its tag and length
_SIGNED_DATA = bytes.fromhex("06092a864886f70d010702")
_MONTH_NAMES = {n: name for name, n in _MONTHS.items()}
NO_CERTIFICATE = "no PEM certificate in it"


def _der(data: bytes, at: int, end: int) -> tuple[int, int, int]:
    """The DER element at ``at``: (tag, first byte of its contents, end of its contents)."""
    if at + 2 > end:
        raise ParseError("DER cut short")
    tag, length = data[at], data[at + 1]
    at += 2
    if length & 0x80:
        size = length & 0x7F
        if not 0 < size <= 4 or at + size > end:
            raise ParseError("not DER: a length openssl never writes")
        length = int.from_bytes(data[at : at + size], "big")
        at += size
    if at + length > end:
        raise ParseError("DER cut short")
    return tag, at, at + length


def _der_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, contents start, end) of each element in ``data[start:end]``."""
    found = []
    while start < end:
        tag, body, stop = _der(data, start, end)
        found.append((tag, start, body, stop))
        start = stop
    return found


def _pkcs7_certificates(der: bytes) -> list[bytes]:
    """The DER certificates of a PKCS#7 SignedData (RFC 2315), read by hand: openssl leaves
    their SET OF unsorted, which is BER, not DER, and cryptography's PKCS#7 loader warns of
    such a set that it may refuse it in a later release."""
    tag, body, end = _der(der, 0, len(der))
    if tag != 0x30 or not der.startswith(_SIGNED_DATA, body):
        raise ParseError("not a PKCS#7 SignedData")
    tag, body, end = _der(der, body + len(_SIGNED_DATA), end)  # [0] EXPLICIT content
    if tag != 0xA0:
        raise ParseError("a PKCS#7 SignedData without its content")
    tag, body, end = _der(der, body, end)  # SignedData ::= SEQUENCE
    if tag != 0x30:
        raise ParseError("a PKCS#7 SignedData that is not a SEQUENCE")
    for tag, _, inner, stop in _der_children(der, body, end):
        if tag == 0xA0:  # certificates [0] IMPLICIT SET OF Certificate
            return [der[first:last] for _, first, _, last in _der_children(der, inner, stop)]
    return []  # no certificate in the file: openssl writes the set out


def _openssl_name(name: Any) -> str:
    """A distinguished name as openssl 3 prints it by default: ``C = US, O = Org, CN = host``."""
    return ", ".join(" + ".join(f"{attr.rfc4514_attribute_name} = {attr.value!s}"
                                for attr in rdn) for rdn in name.rdns)


def parse_pkcs7_certificates(text: str, path: str) -> Certificate:
    """``openssl crl2pkcs7 -nocrl -certfile PATH``: every certificate of the file (a
    fullchain.pem holds the leaf, then its intermediates), and no key (one in the file stays
    in openssl). The one that ends first is the file's: its end, subject and place in the
    file. A file with none (empty, only a key, not PEM) is an error of the certificate."""
    from cryptography import x509  # here: loading it costs every command's start time

    found = _PKCS7_PEM.search(text)
    if found is None:
        raise ParseError(f"openssl printed no PKCS#7 for {path}")
    try:
        der = base64.b64decode("".join(found.group(1).split()), validate=True)
    except ValueError as exc:  # binascii.Error is one
        raise ParseError(f"the PKCS#7 openssl printed for {path} is not base64") from exc
    certs = []
    for blob in _pkcs7_certificates(der):
        try:
            cert = x509.load_der_x509_certificate(blob)
        except ValueError as exc:
            raise ParseError(f"a certificate in {path} cannot be read: {exc}") from exc
        end = getattr(cert, "not_valid_after_utc", None)  # cryptography >= 42
        if end is None:
            end = cert.not_valid_after.replace(tzinfo=UTC)
        certs.append((end, cert))
    if not certs:
        return Certificate(path, error=NO_CERTIFICATE)
    position, (end, first) = min(enumerate(certs, 1), key=lambda item: item[1][0])
    printed = (f"{_MONTH_NAMES[end.month]} {end.day:2d} {end.hour:02d}:{end.minute:02d}:"
               f"{end.second:02d} {end.year} GMT")
    return Certificate(path, end.timestamp(), printed, _openssl_name(first.subject),
                       position=position, count=len(certs))


def x509_failure(stderr: str) -> str:
    """Why openssl read no certificate from a file (``crl2pkcs7 -certfile``, as
    ``x509 -in`` before it), in a few words: openssl 1.1 and 3 word it differently, and add
    lines of internal error codes."""
    for marker, reason in (("No such file or directory", "no such file"),
                           ("Permission denied", "permission denied"),
                           ("Is a directory", "a directory, not a file")):
        if marker in stderr:
            return reason
    if "Could not read certificate" in stderr or "Expecting: TRUSTED CERTIFICATE" in stderr:
        return NO_CERTIFICATE
    if "error reading the file" in stderr:  # crl2pkcs7: a PEM block it could not decode
        return "a PEM block in it cannot be read"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[0][:200] if lines else "openssl read no certificate"


def parse_nixos_generation(link_target: str) -> str | None:
    """``system-123-link`` -> ``123``."""
    name = link_target.strip().rsplit("/", 1)[-1]
    if name.startswith("system-") and name.endswith("-link"):
        return name[len("system-") : -len("-link")]
    return name or None


#: the parts of a NixOS system that take effect only at a boot, compared between the booted
#: system (``/run/booted-system``) and the current one (``/run/current-system``)
NIXOS_BOOT_PARTS = ("kernel", "initrd", "kernel-modules")


def parse_nixos_boot(readlink_output: str) -> list[BootChange]:
    """``readlink -e`` of each part of the booted system and of the current one (in
    :data:`NIXOS_BOOT_PARTS` order, booted then current, a line each): the parts that
    differ. ``-e`` says nothing of a path that does not exist (a container's system has no
    kernel): where any is missing, nothing can be paired, and nothing is said."""
    lines = readlink_output.splitlines()
    if len(lines) != 2 * len(NIXOS_BOOT_PARTS):
        return []
    changes = []
    for n, part in enumerate(NIXOS_BOOT_PARTS):
        booted, current = lines[2 * n].strip(), lines[2 * n + 1].strip()
        if booted != current:
            changes.append(BootChange(part, booted, current))
    return changes


def parse_reboot_required(pkgs: str) -> list[BootChange]:
    """Debian's and Ubuntu's ``/run/reboot-required`` is there: the packages its
    ``.pkgs`` names (a line each; none where it names none) wait for a boot."""
    names = sorted({strip_control(line.strip())[:100] for line in pkgs.splitlines()
                    if line.strip()})
    return [BootChange("packages", "", ", ".join(names[:20]) + (
        f" and {len(names) - 20} more" if len(names) > 20 else ""))]


#: the kernel's count of processes its OOM killer killed in a memory cgroup, a line of cgroup
#: v2's memory.events (not ``oom_group_kill``: the same kills, counted again as a group's) or
#: of v1's memory.oom_control (kernel 4.13 and later)
OOM_KILL_LINE = ":oom_kill "


def parse_oom_kills(grep_output: str) -> dict[str, int]:
    """``grep -H '^oom_kill '`` over the memory cgroups of the system's services
    (``/sys/fs/cgroup[/memory]/system.slice/[*.slice/]*.service/``): each service's count.

    The unit is its cgroup directory's name, as systemd names the cgroup of a unit (a name it
    would have to escape starts with ``_``); anything that is no service of system.slice is
    no unit's, and is passed over."""
    counts: dict[str, int] = {}
    for line in grep_output.splitlines():
        path, sep, count = line.rpartition(OOM_KILL_LINE)
        _, slice_, below = path.partition("/system.slice/")
        if not sep or not slice_ or not count.strip().isdigit():
            continue
        unit = cgroup_unit("/" + below.rsplit("/", 1)[0])
        if unit is None or not unit.endswith(".service"):
            continue
        unit = strip_control(unit.removeprefix("_"))[:256]
        counts[unit] = max(int(count), counts.get(unit, 0))
    return counts


#: systemd-timesyncd's runtime directory (its unit's ``RuntimeDirectory=``: made as it starts,
#: removed as it stops), and the file in it that it touches at each synchronisation of the
#: clock (systemd 239 and later; systemd-time-wait-sync waits for it)
TIMESYNC_DIR = "/run/systemd/timesync"
TIMESYNC_STAMP = f"{TIMESYNC_DIR}/synchronized"


def parse_timesync(stat_output: str) -> list[ClockSync]:
    """``stat -c '%Y %n'`` of :data:`TIMESYNC_DIR` and :data:`TIMESYNC_STAMP`: when
    systemd-timesyncd started (the directory's time: made empty then, its stamp not yet in
    it) and when it last synchronised the clock (the stamp's time; None: not since it
    started). Nothing where the directory is not listed: timesyncd does not run."""
    times: dict[str, int] = {}
    for line in stat_output.splitlines():
        mtime, _, path = line.strip().partition(" ")
        if mtime.lstrip("-").isdigit():
            times[path] = int(mtime)
    if TIMESYNC_DIR not in times:
        return []
    synced = times.get(TIMESYNC_STAMP)
    # once the stamp is made, the directory's time is that of the first synchronisation
    started = float(times[TIMESYNC_DIR]) if synced is None else None
    return [ClockSync("systemd-timesyncd", started,
                      None if synced is None else float(synced))]


#: an array's first line: ``md0 : active (auto-read-only) raid1 sdb1[1] sda1[0](F)``
_MD_ARRAY = re.compile(r"^(md\S*) : (active|inactive)((?: \([a-z-]+\))*)((?: \S+)*)\s*$")
_MD_MEMBER = re.compile(r"^(\S+?)\[\d+\]((?:\([A-Z]\))*)$")
#: the counts and slots of a level with redundancy: ``[2/1] [U_]``
_MD_SLOTS = re.compile(r"\[(\d+)/(\d+)\] \[([U_]+)\]")
#: what md is doing, with how far: ``recovery = 12.6% (...) finish=0.6min speed=...``,
#: ``resync=DELAYED``
_MD_SYNC = re.compile(r"\b(recovery|resync|check|reshape|repair|recover)\s*=\s*(\S.*)$")
#: its metadata, on the line of its size: ``super 1.2``, ``super external:imsm``
_MD_SUPER = re.compile(r"\bsuper (\S+)")


def _md_name(text: str) -> str:
    return strip_control(text)[:64]


def _md_members(words: list[str]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The working, failed (``(F)``) and spare (``(S)``) members of a member list."""
    members: list[str] = []
    failed: list[str] = []
    spares: list[str] = []
    for word in words:
        match = _MD_MEMBER.match(word)
        if match is None:
            continue
        flags, name = match.group(2), _md_name(match.group(1))
        (failed if "(F)" in flags else spares if "(S)" in flags else members).append(name)
    return tuple(members), tuple(failed), tuple(spares)


def _md_array(header: re.Match[str], body: list[str]) -> MdArray:
    active = header.group(2) == "active"
    words = header.group(4).split()
    # an active array's first word is its personality; an inactive one has none yet
    level = _md_name(words.pop(0)) if active and words and "[" not in words[0] else ""
    members, failed, spares = _md_members(words)
    slots = working = None
    status = action = progress = metadata = ""
    for line in body:
        if not metadata and (superblock := _MD_SUPER.search(line)) is not None:
            metadata = _md_name(superblock.group(1))
        if (counts := _MD_SLOTS.search(line)) is not None:
            slots, working, status = int(counts.group(1)), int(counts.group(2)), counts.group(3)
        if (sync := _MD_SYNC.search(line)) is not None:
            action, progress = sync.group(1), _md_name(" ".join(sync.group(2).split()))
    return MdArray(_md_name(header.group(1)), level, active, members, failed, spares,
                   slots, working, status, action, progress, metadata)


def parse_mdstat(text: str) -> list[MdArray]:
    """``/proc/mdstat``: each md array, its level, members, working count and slots, and
    what md is doing to it (a rebuild, a resync, a check) with how far it got. The lines
    after an array's first, up to the next array or a blank line, are its own."""
    arrays: list[MdArray] = []
    header: re.Match[str] | None = None
    body: list[str] = []
    for line in [*text.splitlines(), ""]:
        match = _MD_ARRAY.match(line)
        if header is not None and (match is not None or not line.strip()):
            arrays.append(_md_array(header, body))
            header, body = None, []
        if match is not None:
            header = match
        elif header is not None:
            body.append(line)
    return arrays


#: where OpenZFS (0.8 and later) says each imported pool's state, one word a file
ZFS_KSTAT = "/proc/spl/kstat/zfs"


def parse_zfs_pool_states(text: str) -> dict[str, str]:
    """``PATH:STATE`` lines, one a pool's directory (``/proc/spl/kstat/zfs/tank/state:DEGRADED``):
    each pool's state; empty where its state file could not be read (``.../tank/state:``:
    OpenZFS before 0.8 has the pool's directory, with ``txgs`` and ``io``, but no state).
    A pool's name may hold a colon or a space, its state never does."""
    pools: dict[str, str] = {}
    for line in text.splitlines():
        path, sep, state = line.rpartition(":")
        pool = path.removeprefix(f"{ZFS_KSTAT}/").removesuffix("/state")
        state = state.strip()
        if not sep or not pool or "/" in pool or not (state.isalpha() or not state):
            continue
        pools[strip_control(pool)[:256]] = state.upper()
    return pools


#: /proc files a container shows the whole machine's numbers in, unless something is mounted
#: on them (lxcfs mounts its own on the first two): the load average, memory, memory stalls,
#: swapping
LOADAVG, MEMINFO, PSI_MEMORY = "/proc/loadavg", "/proc/meminfo", "/proc/pressure/memory"
VMSTAT = "/proc/vmstat"
#: where systemd, started in a container, says so: the manager's name from its ``container=``
#: environment, as ``systemd-detect-virt --container`` reads it back (systemd 216 and later)
SYSTEMD_CONTAINER = "/run/systemd/container"


def parse_container(text: str) -> str:
    """:data:`SYSTEMD_CONTAINER`: the container manager's name (``lxc``, ``docker``,
    ``systemd-nspawn``); ``unnamed`` where the file holds none, a container all the same."""
    lines = text.strip().splitlines()
    return strip_control(lines[0].strip())[:64] if lines else "unnamed"


def parse_kernel_tainted(text: str) -> int:
    """``/proc/sys/kernel/tainted``: the kernel's taint flags, a decimal bit mask (0: none)."""
    value = text.strip()
    if not value.isdigit():
        raise ParseError(f"unexpected /proc/sys/kernel/tainted: {text[:80]!r}")
    return int(value)


#: where the kernel's file system drivers say what errors they counted (see
#: :class:`FilesystemErrors`): ext4 a directory per mounted block device, btrfs one per
#: file system, with a directory per device (``error_stats``: Linux 5.14 and later)
EXT4_SYSFS, BTRFS_SYSFS = "/sys/fs/ext4", "/sys/fs/btrfs"
#: a block device's number (``MAJOR:MINOR``), what the mount table names ext4's by
BLOCK_SYSFS = "/sys/class/block"


@dataclass
class _Counted:
    """What the files of one file system said, as they are read."""

    values: dict[str, int]
    #: btrfs: each device's counters that are not 0; its member devices' names
    detail: list[str]
    members: set[str]
    #: btrfs: its label (``/sys/fs/btrfs/FSID/label``); None where it has none or it was
    #: not read
    label: str | None = None


def _mount_devices(mountinfo: str, numbers: Collection[str] | None = None
                   ) -> Iterator[tuple[str, str, str, str]]:
    """Each mount of ``/proc/self/mountinfo``: its device number (``MAJOR:MINOR``; a btrfs
    mount's is an anonymous one), point, file system type and source. ``numbers``: only the
    mounts of these devices, and btrfs's (every check reads the table for a few of them)."""
    for line in mountinfo.split("\n"):
        if numbers is not None:
            head = line.split(" ", 3)
            if len(head) < 4 or (head[2] not in numbers and " - btrfs " not in line):
                continue
        mount, dash, fs = line.partition(" - ")
        fields, fs_fields = mount.split(" "), fs.split(" ")
        if not dash or len(fields) < 6 or len(fs_fields) < 3:
            continue
        yield fields[2], _mount_field(fields[4]), fs_fields[0], _mount_field(fs_fields[1])


def _read_fs_error_files(grep_output: str) -> tuple[dict[tuple[str, str], _Counted],
                                                    dict[str, str]]:
    """``grep -H ''`` over the drivers' files: each file system's counts by (driver,
    name), and each block device's number by name. A sysfs path holds no ``:``."""
    counted: dict[tuple[str, str], _Counted] = {}
    numbers: dict[str, str] = {}
    for line in grep_output.splitlines():
        path, sep, value = line.partition(":")
        parts = path.split("/")
        if sep and path.startswith(BLOCK_SYSFS + "/") and parts[-1] == "dev":
            numbers[parts[-2]] = value.strip()
        if not sep or len(parts) < 6 or parts[:3] != ["", "sys", "fs"]:
            continue
        if parts[3] == "ext4" and value.strip().isdigit():
            entry = counted.setdefault(("ext4", parts[4]), _Counted({}, [], set()))
            entry.values[parts[5]] = int(value.strip())
        elif parts[3] == "btrfs":
            _btrfs_line(counted.setdefault(("btrfs", parts[4]), _Counted({}, [], set())),
                        parts[5:], value)
    return counted, numbers


def _btrfs_line(entry: _Counted, below: list[str], value: str) -> None:
    """One line of a btrfs file system's files: ``devinfo/DEVID/error_stats`` (a counter a
    line: ``write_errs 3``), ``devices/NAME/...`` (a member device: its name counts, and
    a device mapper's its name under /dev/mapper, which the mount table gives) or ``label``
    (what a mount by ``/dev/disk/by-label/`` names it by)."""
    if below == ["label"]:
        entry.label = value.rstrip("\n") or None
        return
    if below[0] == "devices" and len(below) > 1:
        entry.members.add(below[1])
        if below[2:] == ["dm", "name"] and value.strip():
            entry.members.add(f"mapper/{value.strip()}")
        return
    name, _, count = value.strip().partition(" ")
    if below[0] != "devinfo" or len(below) < 3 or not count.strip().isdigit():
        return
    entry.values["errors"] = entry.values.get("errors", 0) + int(count)
    if int(count):
        entry.detail.append(f"devid {strip_control(below[1])[:20]}: "
                            f"{strip_control(name)[:40]} {int(count)}")


#: the links udev makes to a file system by its UUID and by its label, which a mount may
#: name as its source (NixOS does): the mount table keeps the path as given
BY_UUID, BY_LABEL = "/dev/disk/by-uuid/", "/dev/disk/by-label/"
#: udev's escape of a byte of a label not safe in a file name (a space: ``\x20``)
_UDEV_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")


def _udev_name(escaped: str) -> str:
    """A label as udev named its link, as the file system holds it."""
    raw = _UDEV_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), escaped.encode())
    return raw.decode(errors="replace")


def _btrfs_mounted(fsid: str, counted: _Counted, source: str) -> bool:
    """Whether a btrfs mount's source is this file system: a member device's path, or a
    udev link to it by its fsid (the file system's UUID) or its label."""
    if source.startswith(BY_UUID):
        return source[len(BY_UUID):].lower() == fsid.lower()
    if source.startswith(BY_LABEL):
        return counted.label is not None and _udev_name(source[len(BY_LABEL):]) == counted.label
    return source in {f"/dev/{member.replace('!', '/')}" for member in counted.members}


def _fs_target(key: tuple[str, str], counted: _Counted, numbers: dict[str, str],
               mounts: list[tuple[str, str, str, str]]) -> tuple[str, str]:
    """Where a file system is mounted (the first mount of it in the table), and its type
    there (an ext4 driver mounts ext2 and ext3 too); ("", driver) where it is not seen.
    ext4's block device is found by its number; btrfs's mounts carry an anonymous one, so
    by its source (:func:`_btrfs_mounted`)."""
    driver, name = key
    number = numbers.get(name)
    for device, point, fstype, source in mounts:
        if driver == "ext4" and number is not None and device == number:
            return point, fstype
        if driver == "btrfs" and fstype == "btrfs" and _btrfs_mounted(name, counted, source):
            return point, fstype
    return "", driver


def unplaced_btrfs_mounts(grep_output: str, mountinfo: str) -> list[str]:
    """The btrfs mounts of ``/proc/self/mountinfo`` (their points) whose source is none of
    the file systems the drivers' files (as :func:`parse_fs_errors` reads them) name: a
    btrfs counting errors may be one of them, mounted by a path the check cannot place."""
    counted, _ = _read_fs_error_files(grep_output)
    btrfs = [(key[1], entry) for key, entry in counted.items() if key[0] == "btrfs"]
    return [point for _, point, fstype, source in _mount_devices(mountinfo)
            if fstype == "btrfs"
            and not any(_btrfs_mounted(fsid, entry, source) for fsid, entry in btrfs)]


def _epoch(seconds: int | None) -> float | None:
    return float(seconds) if seconds else None


def parse_fs_errors(grep_output: str, mountinfo: str = "") -> list[FilesystemErrors]:
    """``grep -H ''`` over what the ext4 and btrfs drivers say of each mounted file system
    (ext4's ``errors_count``, ``first_error_time`` and ``last_error_time`` and its device's
    number under :data:`BLOCK_SYSFS`; btrfs's ``error_stats`` of each device, and its
    member devices), each placed at its mount point by ``/proc/self/mountinfo``. A file
    system whose count was not read (unmounted while read) is left out."""
    counted, numbers = _read_fs_error_files(grep_output)
    mounts = list(_mount_devices(mountinfo, set(numbers.values())))
    found = []
    for key, entry in sorted(counted.items()):
        errors = entry.values.get("errors_count" if key[0] == "ext4" else "errors")
        if errors is None:
            continue
        target, fstype = _fs_target(key, entry, numbers, mounts)
        found.append(FilesystemErrors(
            fstype, strip_control(key[1])[:64], target, errors,
            _epoch(entry.values.get("first_error_time")),
            _epoch(entry.values.get("last_error_time")), tuple(entry.detail[:20])))
    return found


#: the files of a service's pids controller the check reads, each line ``PATH:VALUE`` as
#: ``grep -H`` writes it: the tasks it has, and the most it may have (``max``: no limit)
PIDS_CURRENT, PIDS_MAX = "/pids.current:", "/pids.max:"


def parse_service_tasks(grep_output: str) -> dict[str, TaskCount]:
    """``grep -H ''`` over the pids.current and pids.max of the system's services
    (``/sys/fs/cgroup[/pids]/system.slice/[*.slice/]*.service/``): each service's tasks and
    limit. The unit is its cgroup's name (see :func:`parse_oom_kills`); a service whose two
    files were not both read (it stopped between the glob and the read) is passed over."""
    read: dict[str, dict[str, str]] = {}
    for line in grep_output.splitlines():
        for name in (PIDS_CURRENT, PIDS_MAX):
            path, sep, value = line.rpartition(name)
            _, slice_, below = path.partition("/system.slice/")
            if sep and slice_:
                unit = cgroup_unit("/" + below)
                if unit is not None and unit.endswith(".service"):
                    unit = strip_control(unit.removeprefix("_"))[:256]
                    read.setdefault(unit, {})[name] = value.strip()
                break
    tasks = {}
    for unit, values in read.items():
        current, limit = values.get(PIDS_CURRENT, ""), values.get(PIDS_MAX, "")
        if current.isdigit() and (limit.isdigit() or limit == "max"):
            tasks[unit] = TaskCount(int(current), int(limit) if limit.isdigit() else None)
    return tasks


def parse_kernel_count(text: str) -> int:
    """A count the kernel gives in a file of its own (/proc/sys/kernel/pid_max,
    /proc/sys/kernel/threads-max)."""
    value = text.strip()
    if not value.isdigit():
        raise ParseError(f"unexpected kernel count: {text[:80]!r}")
    return int(value)


def parse_file_nr(text: str) -> tuple[int, int]:
    """/proc/sys/fs/file-nr: the file handles allocated, and the most the kernel allocates
    (fs.file-max). Its middle field, the free ones, is 0 since Linux 2.6."""
    fields = text.split()
    if len(fields) != 3 or not all(f.isdigit() for f in fields):
        raise ParseError(f"unexpected /proc/sys/fs/file-nr: {text[:80]!r}")
    return int(fields[0]), int(fields[2])
