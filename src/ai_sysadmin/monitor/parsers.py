"""Pure parsers: the raw text of one command or file -> typed data. No I/O here.

Each is tested on fixture files holding the command, its raw output and the expected result.
"""

from __future__ import annotations

import json
from typing import Any

from .snapshot import CpuTimes, JournalEntry, Load, Memory, Mount, Process, SwapCounters, Unit

#: file systems that are kernel views, not storage: never a "disk full" subject
PSEUDO_FS = frozenset(
    "proc sysfs cgroup cgroup2 devpts devtmpfs mqueue debugfs tracefs securityfs pstore bpf "
    "autofs configfs fusectl hugetlbfs binfmt_misc nsfs ramfs efivarfs rpc_pipefs selinuxfs "
    "squashfs iso9660 fuse.lxcfs fuse.portal fuse.gvfsd-fuse none".split()
)


class ParseError(ValueError):
    """Raw output that does not have the expected shape."""


def parse_proc_stat(text: str) -> CpuTimes:
    busy = total = cores = 0
    for line in text.splitlines():
        if line.startswith("cpu "):
            fields = [int(x) for x in line.split()[1:]]
            idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
            # guest time is already counted in user/nice
            total = sum(fields[:8])
            busy = total - idle
        elif line.startswith("cpu"):
            cores += 1
    if not total:
        raise ParseError("no aggregate 'cpu' line in /proc/stat")
    return CpuTimes(busy=busy, total=total, cores=max(cores, 1))


def _kv_numbers(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def parse_meminfo(text: str, pressure: str | None = None) -> Memory:
    values = _kv_numbers(text)
    try:
        total = values["MemTotal"]
    except KeyError as exc:
        raise ParseError("MemTotal missing from /proc/meminfo") from exc
    available = values.get("MemAvailable", values.get("MemFree", 0))
    return Memory(
        total_kb=total,
        available_kb=available,
        swap_total_kb=values.get("SwapTotal", 0),
        swap_free_kb=values.get("SwapFree", 0),
        psi_some_avg60=parse_psi_some_avg60(pressure) if pressure else None,
    )


def parse_psi_some_avg60(text: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("some "):
            for item in line.split()[1:]:
                key, _, value = item.partition("=")
                if key == "avg60":
                    return float(value)
    return None


def parse_vmstat(text: str) -> SwapCounters:
    values = _kv_numbers(text)
    return SwapCounters(values.get("pswpin", 0), values.get("pswpout", 0))


def parse_loadavg(text: str) -> Load:
    parts = text.split()
    if len(parts) < 3:
        raise ParseError(f"unexpected /proc/loadavg: {text[:80]!r}")
    return Load(float(parts[0]), float(parts[1]), float(parts[2]))


def parse_uptime(text: str) -> float:
    try:
        return float(text.split()[0])
    except (IndexError, ValueError) as exc:
        raise ParseError(f"unexpected /proc/uptime: {text[:80]!r}") from exc


#: ``df -B1 --output=source,fstype,size,used,avail,itotal,iused,target``
DF_COLUMNS = "source,fstype,size,used,avail,itotal,iused,target"


def _int_or_zero(value: str) -> int:
    return int(value) if value.isdigit() else 0


def parse_df(text: str) -> list[Mount]:
    # a target listed twice was mounted over: the later mount is the one in use there
    mounts: dict[str, Mount] = {}
    for line in text.splitlines()[1:]:
        parts = line.split(None, 7)
        if len(parts) < 8:
            continue
        source, fstype, size, used, avail, itotal, iused, target = parts
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


def _systemctl_list(text: str) -> list[Any]:
    """The JSON list ``systemctl ... --output=json`` prints."""
    try:
        data: Any = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise ParseError(f"systemctl did not print JSON: {exc}") from exc
    if not isinstance(data, list):
        raise ParseError("systemctl JSON is not a list")
    return data


def parse_list_units(text: str) -> list[Unit]:
    """``systemctl list-units --all --output=json``."""
    data = _systemctl_list(text)
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
    """``systemctl list-unit-files --output=json``: each unit file's state."""
    data = _systemctl_list(text)
    return {str(item["unit_file"]): str(item.get("state", ""))
            for item in data if isinstance(item, dict) and item.get("unit_file")}


def parse_show_restarts(text: str) -> dict[str, int]:
    """``systemctl show '*.service' -p Id,NRestarts``: blocks of ``Key=value`` lines."""
    restarts: dict[str, int] = {}
    for block in text.split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        unit, count = props.get("Id"), props.get("NRestarts")
        if unit and count and count.isdigit():
            restarts[unit] = int(count)
    return restarts


JOURNAL_FIELDS = "MESSAGE,PRIORITY,_SYSTEMD_UNIT,UNIT,SYSLOG_IDENTIFIER,_PID,_COMM,_HOSTNAME"


def _message_text(value: Any) -> str:
    # journald gives binary-unsafe messages as a list of byte values
    if isinstance(value, list):
        return bytes(v for v in value if isinstance(v, int) and 0 <= v < 256).decode(
            "utf-8", "replace"
        )
    return "" if value is None else str(value)


def parse_journal_line(line: str) -> JournalEntry | None:
    """One line of ``journalctl -o json``; anything else is None."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        item = json.loads(line)
    except json.JSONDecodeError:
        return None
    cursor = item.get("__CURSOR")
    if not isinstance(cursor, str):
        return None
    try:
        priority = int(item.get("PRIORITY", 6))
    except (TypeError, ValueError):
        priority = 6
    try:
        timestamp = int(item.get("__REALTIME_TIMESTAMP", 0)) / 1e6
    except (TypeError, ValueError):
        timestamp = 0.0
    pid = item.get("_PID")
    # systemd's own messages about a unit carry UNIT=; a unit's output carries _SYSTEMD_UNIT=
    unit = item.get("UNIT") or item.get("_SYSTEMD_UNIT")
    return JournalEntry(
        cursor=cursor,
        timestamp=timestamp,
        priority=priority,
        message=_message_text(item.get("MESSAGE")),
        unit=str(unit) if unit else None,
        identifier=item.get("SYSLOG_IDENTIFIER") or item.get("_COMM"),
        pid=int(pid) if isinstance(pid, str) and pid.isdigit() else None,
        hostname=item.get("_HOSTNAME") if isinstance(item.get("_HOSTNAME"), str) else None,
    )


def parse_journal(text: str) -> list[JournalEntry]:
    return [e for e in map(parse_journal_line, text.splitlines()) if e is not None]


#: ``ps -eo`` columns; args last because it holds spaces
PS_COLUMNS = "pid=,user:32=,pcpu=,pmem=,rss=,etimes=,times=,args="
#: ps cuts every column but the last to its width, so the cgroup needs a listing of its own
PS_CGROUP_COLUMNS = "pid=,cgroup="
#: unit types a process can run in (slices only group them)
_PROCESS_UNIT_TYPES = (".service", ".scope")


def cgroup_unit(field: str) -> str | None:
    """The innermost service or scope of ps's cgroup column (the unit a process belongs to).

    cgroup v2 reads ``0::/system.slice/x.service``; a hybrid host lists every hierarchy, comma
    separated, and systemd's own is ``N:name=systemd:``.
    """
    entries = [entry.split(":", 2) for entry in field.split(",") if entry.count(":") >= 2]
    paths = [path for number, controllers, path in entries if number == "0" and not controllers]
    paths += [path for _, controllers, path in entries if controllers == "name=systemd"]
    for path in paths:
        units = [part for part in path.split("/") if part.endswith(_PROCESS_UNIT_TYPES)]
        if units:
            return units[-1]
    return None


def parse_ps_units(text: str) -> dict[int, str]:
    """``ps -eo pid=,cgroup=``: the unit of each process that runs in one."""
    units: dict[int, str] = {}
    for line in text.splitlines():
        pid, _, field = line.strip().partition(" ")
        unit = cgroup_unit(field.strip()) if pid.isdigit() else None
        if unit is not None:
            units[int(pid)] = unit
    return units


def parse_ps(text: str) -> list[Process]:
    processes: list[Process] = []
    for line in text.splitlines():
        parts = line.split(None, 7)
        if len(parts) < 8:
            continue
        try:
            processes.append(
                Process(
                    pid=int(parts[0]),
                    user=parts[1],
                    cpu_percent=float(parts[2]),
                    mem_percent=float(parts[3]),
                    rss_kb=int(parts[4]),
                    elapsed_seconds=int(parts[5]),
                    cpu_seconds=int(parts[6]),
                    command=parts[7],
                )
            )
        except ValueError:
            continue
    return processes


def top_processes(processes: list[Process], count: int = 15) -> list[Process]:
    """The top ``count`` by CPU and the top ``count`` by memory, without duplicates."""
    by_cpu = sorted(processes, key=lambda p: p.cpu_percent, reverse=True)[:count]
    by_mem = sorted(processes, key=lambda p: p.rss_kb, reverse=True)[:count]
    seen: dict[int, Process] = {p.pid: p for p in by_cpu}
    for p in by_mem:
        seen.setdefault(p.pid, p)
    return list(seen.values())


def parse_nixos_generation(link_target: str) -> str | None:
    """``system-123-link`` -> ``123``."""
    name = link_target.strip().rsplit("/", 1)[-1]
    if name.startswith("system-") and name.endswith("-link"):
        return name[len("system-") : -len("-link")]
    return name or None
