"""How a check's costs grow with the host: each parser, rule and host-side sh body at n, 2n
and 4n of realistic large inputs, side by side in one run.

    .venv/bin/python bench/scaling.py [--repeats 5] [--base 1000]

A host of 4000 units, services or journal entries should cost four times one of 1000, no
more: "growth" is the time at 4n over the time at n (4.0: linear), and a row growing past
``SUPERLINEAR`` is marked. Each time is the best of ``--repeats`` runs, in CPU seconds of
this process (the parsers and rules, the sweeper's side) or of dash run over a tree laid
out as a host's /sys (the counters script, the host's side). The inputs are synthetic but
shaped as the real commands write them (systemctl's JSON, ps's columns, the journal's JSON,
the kernel's counter files); nothing is read from this machine, nothing leaves it. On a
machine others share, a row can be marked by a moment's load: run it again before looking.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ai_sysadmin import redact as masking
from ai_sysadmin.config import Settings, Thresholds
from ai_sysadmin.monitor import parsers, sections
from ai_sysadmin.monitor.rules import RuleContext
from ai_sysadmin.monitor.rules.crash_loop import CrashLoop
from ai_sysadmin.monitor.rules.failed_unit import FailedUnit
from ai_sysadmin.monitor.rules.unit_load_error import UnitLoadError
from ai_sysadmin.monitor.snapshot import JournalEntry, Snapshot, Unit

#: growth from n to 4n past which a row is marked (4.0 is linear; timing noise and the
#: allocator's and garbage collector's work on thousands of new objects add some: systemctl
#: show's 8000 dicts measure ~5.3x)
SUPERLINEAR = 6.0
NOW = 1_750_000_000.0
_STATES = [("loaded", "active", "running"), ("loaded", "inactive", "dead"),
           ("loaded", "active", "exited"), ("not-found", "inactive", "dead"),
           ("loaded", "failed", "failed"), ("loaded", "activating", "auto-restart")]


# -- inputs at size n -----------------------------------------------------------------------

def list_units(n: int) -> str:
    return json.dumps([{"unit": f"unit-{i}.service", "load": load, "active": active,
                        "sub": sub, "description": f"Worker {i} of the fleet"}
                       for i, (load, active, sub) in
                       ((i, _STATES[i % len(_STATES)]) for i in range(n))])


def list_unit_files(n: int) -> str:
    states = ["enabled", "disabled", "static", "masked", "bad", "indirect"]
    return json.dumps([{"unit_file": f"unit-{i}.service", "state": states[i % len(states)],
                        "preset": "enabled"} for i in range(n)])


def show(n: int) -> str:
    results = ["success"] * 9 + ["exit-code", "core-dump", "signal"]
    return "\n".join(
        f"Id=svc-{i}.service\nNRestarts={i % 7}\nResult={results[i % len(results)]}\n"
        f"ExecMainCode={i % 4}\nExecMainStatus={i % 3}\nExecMainPID={1000 + i}\n"
        f"Restart={['no', 'always', 'on-failure'][i % 3]}\n"
        f"NeedDaemonReload={'yes' if i % 50 == 0 else 'no'}\n" for i in range(n))


def ps(n: int) -> str:
    """``ps -eo`` of :data:`~ai_sysadmin.monitor.parsers.PS_CGROUP_COLUMNS`, n processes."""
    rnd = random.Random(7)
    lines = []
    for i in range(n):
        pid, ppid = (1, 0) if i == 0 else (100 + i, 1 if i % 10 else 99 + i)
        user = ["root", "www-data", "postgres", "user1000"][i % 4]
        cgroup = ("0::/init.scope" if i == 0 else f"0::/system.slice/svc-{i % 300}.service")
        lines.append(f"{pid:7d} {ppid:7d} {'Z' if i % 97 == 5 else 'Ss':4s} {user:32s} "
                     f"{rnd.random() * 100:5.1f} {rnd.random():4.1f} {rnd.randrange(1, 10**6):5d} "
                     f"{rnd.randrange(1, 10**6):8d} {rnd.randrange(0, 10**5):8d} {cgroup:239s} "
                     f"/usr/bin/worker --id {i} --flag value")
    return "\n".join(lines) + "\n"


def mountinfo(n: int) -> str:
    lines = ["22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw"]
    lines += [f"{100 + i} 22 254:{i} / /srv/data{i} rw,relatime shared:{i} - ext4 /dev/vdc{i} rw"
              for i in range(n - 1)]
    return "\n".join(lines) + "\n"


def bind_mounts(n: int) -> str:
    """The root disk and ``n`` bind mounts of directories of it, as a kubelet's pods make."""
    lines = ["29 1 8:17 / / rw,relatime shared:1 - ext4 /dev/sda1 rw"]
    lines += [f"{100 + i} 29 8:17 /var/lib/data/d{i} /var/lib/kubelet/pods/p{i}/volume/c "
              "rw,relatime - ext4 /dev/sda1 rw" for i in range(n)]
    return "\n".join(lines) + "\n"


def df(n: int) -> str:
    lines = ["Filesystem Type 1B-blocks Used Avail Inodes IUsed Mounted on"]
    lines += [f"/dev/vdc{i} ext4 {10**12} {10**11 + i} {9 * 10**11} 1000000 {i} /srv/data{i}"
              for i in range(n)]
    return "\n".join(lines) + "\n"


def journal(n: int) -> str:
    return "\n".join(json.dumps({
        "__CURSOR": f"s=c9549d;i={i:x}", "__REALTIME_TIMESTAMP": str(1795654784715691 + i * 1000),
        "PRIORITY": str(i % 5), "MESSAGE": f"unit-{i % 50}.service: failed, request {i}",
        "_PID": "1" if i % 5 == 0 else str(2000 + i), "SYSLOG_IDENTIFIER": "worker",
        "_SYSTEMD_UNIT": "init.scope" if i % 5 == 0 else f"unit-{i % 50}.service",
        "UNIT": f"unit-{i % 50}.service", "_HOSTNAME": "host1", "UNIT_RESULT": "exit-code"})
        for i in range(n)) + "\n"


def counters(n: int) -> str:
    """The counters script's reply of n services (OOM kills, tasks) and one ext4."""
    base = "/sys/fs/cgroup/system.slice"
    lines = [f"{base}/svc-{i}.service/memory.events:oom_kill {i % 3}" for i in range(n)]
    lines.append(f"{base}/:")
    for i in range(n):
        lines += [f"{base}/svc-{i}.service/pids.current:{i % 40}",
                  f"{base}/svc-{i}.service/pids.max:{'max' if i % 2 else 4915}"]
    lines += ["/sys/fs/ext4/vda/errors_count:2", "/sys/fs/ext4/vda/first_error_time:1700000000",
              "/sys/fs/ext4/vda/last_error_time:1700000100", "/sys/class/block/vda/dev:254:0"]
    return "\n".join(lines) + "\n"


def entry(message: str, priority: int, unit: str | None, n: int,
          unit_result: str | None = None) -> JournalEntry:
    return JournalEntry(f"s=abc;i={n:x}", NOW - 10.0, priority, message, unit, pid=1234,
                        unit_result=unit_result)


def failed_units(n: int) -> RuleContext:
    """n units of which a fifth failed, a window of n entries over them."""
    units = [Unit(f"u{i}.service", "loaded", *(("failed", "failed") if i % 5 == 0
                                                 else ("active", "running")), "")
             for i in range(n)]
    window = [entry(f"error {i} password=hunter2", 3, f"u{(i * 5) % n}.service", i)
              for i in range(n)]
    return RuleContext(Snapshot("h", NOW, units=units), Thresholds(), journal_window=window)


def restart_loops(n: int) -> RuleContext:
    """A tenth of n workers under Restart=always rising, PID 1's results in a window of n."""
    loops = [Unit(f"w@{i}.service", "loaded", "activating", "auto-restart", "")
             for i in range(n // 10)]
    window = [entry("failed", 3, f"w@{i % len(loops)}.service", i, unit_result="exit-code")
              for i in range(n)]
    always = frozenset(u.name for u in loops)
    snap = Snapshot("h", NOW, units=loops, restarts={u.name: 10 for u in loops},
                    clean_restarts=always, service_results={}, journal=[])
    before = Snapshot("h", NOW - 60, units=loops, restarts={u.name: 5 for u in loops},
                      clean_restarts=always)
    return RuleContext(snap, Thresholds(), previous=before, journal_window=window)


def parse_warnings(n: int) -> RuleContext:
    """n of systemd's warnings about the bad lines of n/10 unit files."""
    files = max(n // 10, 1)
    window = [JournalEntry(f"s=abc;i={i:x}", NOW - 10.0, 4,
                           f"/etc/systemd/system/u{i % files}.service:{i % 30 + 1}: Unknown "
                           "key name 'Foo' in section 'Service', ignoring.", "init.scope",
                           "systemd", 1) for i in range(n)]
    units = [Unit(f"u{i}.service", "bad-setting", "inactive", "dead", "") for i in range(files)]
    return RuleContext(Snapshot("h", NOW, units=units, unit_files={}, journal=window),
                       Thresholds(), journal_window=window)


# -- the host's side: the counters script over a /sys laid out as a host's -------------------

def sys_tree(root: Path, n: int) -> None:
    """n services of cgroup v2 under ``root``, and one ext4."""
    for i in range(n):
        unit = root / f"sys/fs/cgroup/system.slice/svc{i}.service"
        unit.mkdir(parents=True)
        (unit / "pids.current").write_text("12\n")
        (unit / "pids.max").write_text("max\n")
        (unit / "memory.events").write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
    (root / "sys/fs/cgroup/system.slice/pids.current").write_text("90\n")
    ext4 = root / "sys/fs/ext4/vda"
    ext4.mkdir(parents=True)
    for name in ("errors_count", "first_error_time", "last_error_time"):
        (ext4 / name).write_text("0\n")


def counters_script(roots: dict[int, Path]) -> Callable[[int], object]:
    """Runs the counters script of a check with dash over the tree of n services."""
    plan = sections.Plan(Settings(ai_name="bench", state_dir=Path(tempfile.gettempdir())),
                         sections.JournalQuery(), True)
    (argv,) = {source.argv for source in sections.SECTIONS_BY_NAME["oom_kills"].sources(plan)}

    def run(n: int) -> object:
        body = argv[2].replace("/sys/", f"{roots[n]}/sys/")
        return subprocess.run(["dash", "-c", body, *argv[3:]], capture_output=True,
                              check=True, timeout=120)
    return run


# -- measuring -----------------------------------------------------------------------------

def best_of(work: Callable[[], object], repeats: int, children: bool = False) -> float:
    """The least CPU seconds ``work`` took over ``repeats`` runs (of the child processes it
    ran, with ``children``)."""
    best = float("inf")
    for _ in range(repeats):
        if children:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            work()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            spent = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        else:
            started = time.process_time()
            work()
            spent = time.process_time() - started
        best = min(best, spent)
    return best


def row(name: str, sizes: Sequence[int], times: Sequence[float]) -> bool:
    growth = times[-1] / times[0] if times[0] > 0 else float("nan")
    marked = growth > SUPERLINEAR
    print(f"  {name:58s} n={sizes[0]:<5d} " + " ".join(f"{t * 1e3:8.2f}" for t in times)
          + f" ms   growth {growth:4.1f}x" + ("   <- superlinear" if marked else ""),
          flush=True)
    return marked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--base", type=int, default=1000, help="n (default 1000)")
    args = parser.parse_args()
    if args.base < 10 or args.repeats < 1:  # a tenth of n loops in a unit's restart row
        parser.error("--base must be 10 or more, --repeats 1 or more")
    n = args.base
    sizes = [n, 2 * n, 4 * n]

    def clear() -> None:  # one listing or show text is kept between calls: none here
        parsers._table.cache_clear()
        parsers._show_blocks.cache_clear()

    def show_facts(text: str) -> None:
        clear()
        for parse in (parsers.parse_show_restarts, parsers.parse_show_results,
                      parsers.parse_show_clean_restarts, parsers.parse_show_need_reload):
            parse(text)

    def listing(text: str) -> None:
        clear()
        parsers.parse_ps_top(text, since=parsers.parse_cpu_seconds(text, NOW), taken_at=NOW)
        parsers.parse_ps_zombies(text)

    def masked(text: str) -> None:
        masking._newlines.cache_clear()  # each text is new to it, as each check's is
        masking.redact(text)

    sweeper: list[tuple[str, Callable[[int], object], Callable[[object], object]]] = [
        ("systemctl list-units (JSON), n units", list_units, parsers.parse_list_units),
        ("systemctl list-unit-files (JSON), n files", list_unit_files,
         parsers.parse_list_unit_files),
        ("systemctl show, its four facts, n services", show, show_facts),
        ("ps: top, CPU history, zombies, n/2 processes", lambda m: ps(m // 2), listing),
        ("df + mount table, n/4 mounts", lambda m: (df(m // 4), mountinfo(m // 4)),
         lambda both: (parsers.parse_df(both[0]), parsers.mount_flags(both[1]))),
        # which file system each line is: one disk bound n/4 times asked the points of
        # the disk at each (24x growth)
        ("mount table: n/4 bind mounts of one disk", lambda m: bind_mounts(m // 4),
         parsers.mount_places),
        ("journalctl JSON, n entries", journal, parsers.parse_journal),
        ("counters: OOM kills, tasks, file systems, n services", counters,
         lambda text: (parsers.parse_oom_kills(text), parsers.parse_service_tasks(text),
                       parsers.parse_fs_errors(text, mountinfo(4)))),
        ("rule failed_unit: n/5 failed, a window of n", failed_units, FailedUnit().evaluate),
        ("rule crash_loop: n/10 loops rising, a window of n", restart_loops,
         CrashLoop().evaluate),
        ("rule unit_load_error: n warnings of n/10 files", parse_warnings,
         UnitLoadError().evaluate),
        # host text is masked before anyone reads it; one line of a host's that names a
        # secret at every other word walked back to its start at each (7.6x growth)
        ("masking host text: one line, a secret named 10n times", lambda m:
         "password=abc token " * (10 * m), masked),
    ]
    print(f"the sweeper's CPU (best of {args.repeats}) at n, 2n, 4n; growth 4.0x is linear")
    marked = []
    for name, make, work in sweeper:
        inputs = {m: make(m) for m in sizes}
        times = [best_of(functools.partial(work, inputs[m]), args.repeats) for m in sizes]
        if row(name, sizes, times):
            marked.append(name)
    if shutil.which("dash") is None:
        print("the host's side: no dash here, not measured")
    else:
        print(f"the host's CPU (dash, best of {args.repeats}) at n, 2n, 4n services")
        with tempfile.TemporaryDirectory() as tmp:
            roots = {m: Path(tmp) / str(m) for m in sizes}
            for m, root in roots.items():
                sys_tree(root, m)
            run = counters_script(roots)
            times = [best_of(functools.partial(run, m), args.repeats, children=True)
                     for m in sizes]
            if row("counters script over /sys, n services", sizes, times):
                marked.append("counters script")
    print(f"superlinear: {', '.join(marked) if marked else 'none'}")


if __name__ == "__main__":
    main()
