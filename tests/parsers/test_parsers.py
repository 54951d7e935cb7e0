"""Every parser against fixture files: the command, its real raw output and the expected result.

A fixture is ``tests/fixtures/parsers/<case>.json`` holding ``parser`` (a name in
:mod:`ai_sysadmin.monitor.parsers`, or ``<module>.<function>`` under ``ai_sysadmin``), ``command``,
``raw``, optional ``kwargs``, and either ``expected`` (the result as JSON; dataclasses as dicts)
or ``raises`` (the exception class name).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.hosts import osinfo
from ai_sysadmin.monitor import parsers
from ai_sysadmin.monitor.rules import RuleContext, evaluate
from ai_sysadmin.monitor.snapshot import Snapshot

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "parsers"
CASES = sorted(FIXTURES.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def resolve(name: str) -> Callable[..., Any]:
    if "." in name:
        module, function = name.rsplit(".", 1)
        return getattr(importlib.import_module(f"ai_sysadmin.{module}"), function)
    return getattr(parsers, name)


def plain(value: Any) -> Any:
    """The result as JSON would hold it."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, frozenset | set):
        return sorted(plain(item) for item in value)
    return value


def test_fixtures_exist():
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_parser_fixture(path: Path):
    case = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(case["command"], str) and case["command"]
    assert isinstance(case["raw"], str)
    parse = resolve(case["parser"])
    kwargs = case.get("kwargs", {})

    if "raises" in case:
        error = getattr(parsers, case["raises"])
        assert issubclass(error, ValueError)  # the collector records these per section
        with pytest.raises(error):
            parse(case["raw"], **kwargs)
        return

    assert plain(parse(case["raw"], **kwargs)) == case["expected"]


def test_every_parser_has_a_fixture():
    parser_names = {
        name
        for name, function in inspect.getmembers(parsers, inspect.isfunction)
        if name.startswith("parse_") and function.__module__ == parsers.__name__
    }
    parser_names.add("hosts.osinfo.parse_os_release")
    covered = {json.loads(p.read_text(encoding="utf-8"))["parser"] for p in CASES}
    assert parser_names - covered == set()


def test_restart_counts_are_of_services_only():
    restarts = parsers.parse_show_restarts(load("show_restarts")["raw"])

    assert restarts["flappy.service"] == 10
    assert restarts["webapp.service"] == 0
    assert "home.mount" not in restarts  # not a service: nothing to count


def test_fault_lab_outputs_give_the_findings_a_person_expects():
    units = parsers.parse_list_units(load("list_units")["raw"])
    restarts = parsers.parse_show_restarts(load("show_restarts")["raw"])
    journal = parsers.parse_journal(load("journal")["raw"])
    snap = Snapshot(
        host="sdtest",
        taken_at=journal[-1].timestamp + 1,
        systemd_running=True,
        units=units,
        unit_files=parsers.parse_list_unit_files(load("list_unit_files")["raw"]),
        restarts=restarts,
        journal=journal,
        mounts=parsers.parse_df(load("df_target_with_spaces")["raw"]),
    )

    findings, _ = evaluate(RuleContext(snap))

    assert sorted((f.rule, f.subject) for f in findings) == [
        ("crash_loop", "flappy.service"),
        ("disk_space", "/tmp/dfx/Backup Disk"),
        ("failed_unit", "colour.service"),
        ("failed_unit", "webapp.service"),
        ("inode_exhaustion", "/tmp/dfx/Backup Disk"),
        ("unit_load_error", "orphan.service"),
        ("unit_load_error", "typo.service"),
    ]
    webapp = next(f for f in findings if f.subject == "webapp.service")
    assert webapp.evidence == (
        "webapp.service: load=loaded active=failed sub=failed",
        "webapp: cannot read /etc/webapp.conf: No such file or directory",
        "webapp.service: Failed with result 'exit-code'.",
    )


def test_a_check_keeps_the_top_by_cpu_and_by_memory_once_each():
    def line(pid: int, cpu: float, rss: int) -> str:
        return f"{pid} 1 S root {cpu} 0.0 {rss} 100 1 - prog{pid} --flag\n"

    listing = "".join([line(1, 90.0, 10), line(2, 50.0, 900), line(3, 0.1, 800),
                       line(4, 0.0, 1), "5 1 S root x 0.0 1 100 1 - not a number\n"])

    top = parsers.parse_ps_top(listing, count=2)

    assert [(p.pid, p.command) for p in top] == [(1, "prog1 --flag"), (2, "prog2 --flag"),
                                                 (3, "prog3 --flag")]


def test_os_release_of_nixos_is_recognised():
    info = osinfo.parse_os_release(load("os_release_nixos")["raw"])
    assert info.is_nixos
    assert not osinfo.parse_os_release(load("os_release_debian")["raw"]).is_nixos


def test_each_process_is_named_with_its_unit_from_its_cgroup():
    top = parsers.parse_ps_top(load("ps_with_cgroups")["raw"])
    units = {p.command: p.unit for p in top}
    assert units["/bin/sh -c while :; do :; done"] == "spin.service"
    assert units["/usr/lib/systemd/systemd --show-status=false"] == "init.scope"
    # a cgroup longer than ps's default column width is there whole
    assert units["/bin/sleep 1000"] == (
        "a-service-whose-name-is-longer-than-the-unit-column-of-the-process-listing-"
        "which-is-one-hundred-wide.service")
    # the listing's own ps ran from outside the lab's cgroup namespace ("0::/.."): no unit
    assert units[next(c for c in units if c.startswith("ps "))] is None
    # the listing without cgroups reads processes by pid only
    assert all(p.unit is None for p in parsers.parse_ps(load("ps")["raw"]))


@pytest.mark.parametrize(("cgroup", "unit"), [
    ("0::/system.slice/nginx.service", "nginx.service"),
    ("0::/init.scope", "init.scope"),
    # a user's services, and the processes they start, are their user manager's
    ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/app.service",
     "user@1000.service"),
    ("0::/user.slice/user-1000.slice/session-3.scope", "session-3.scope"),
    # a container's own units read as its scope on the host
    ("0::/machine.slice/machine-web.scope/payload/system.slice/nginx.service",
     "machine-web.scope"),
    # a hybrid or legacy host: systemd's own hierarchy, whatever its number
    ("12:pids:/system.slice/cron.service,9:name=systemd:/system.slice/cron.service",
     "cron.service"),
    # nothing of the service manager's: kernel threads, cgroups it did not make, and a
    # path outside this cgroup namespace
    ("-", None),
    ("4:memory:/process_api/e335cb97", None),
    ("0::/process_api/e335cb97", None),
    ("0::/..", None),
])
def test_a_process_unit_is_read_from_its_cgroup_as_systemd_names_it(cgroup: str,
                                                                   unit: str | None) -> None:
    assert parsers.cgroup_unit(parsers.systemd_cgroup(cgroup)) == unit


def test_units_are_read_below_the_service_manager_of_a_container_without_its_own_cgroups():
    # PID 1 sits in the host's tree (no cgroup namespace): its units are below its cgroup
    root = parsers.manager_root("/machine.slice/machine-web.scope/init.scope")
    assert root == "/machine.slice/machine-web.scope"
    assert parsers.cgroup_unit("/machine.slice/machine-web.scope/system.slice/nginx.service",
                               root) == "nginx.service"
    assert parsers.cgroup_unit("/system.slice/other.service", root) is None
    assert parsers.manager_root(None) == parsers.manager_root("/init.scope") == "/"


def test_a_unit_name_that_ps_may_have_cut_is_not_trusted():
    cut = "/system.slice/" + "a" * 40
    assert parsers.cgroup_unit(cut + ".service", whole=False) is None
    # a cut below the unit leaves the unit whole
    assert parsers.cgroup_unit(cut + ".service/inner", whole=False) == "a" * 40 + ".service"


def test_a_hybrid_hosts_cut_cgroup_column_names_its_unit_only_from_whole_entries():
    """ps joins a path per hierarchy and cuts the column at 239 characters: an entry followed
    by a comma is whole; the last one may be part of one."""
    service = "/system.slice/system-postgresql.slice/postgresql@14-main.service"
    # RHEL 8's order: the controllers first, name=systemd and 0:: last, past the cut
    rhel = ",".join(f"{n}:{c}:{service}" for n, c in (
        (11, "pids"), (10, "memory"), (7, "devices"), (1, "name=systemd"), (0, "")))[:239]
    assert parsers.listed_unit(rhel) == (None, True)
    # name=systemd listed first (a higher hierarchy number), whole before the cut: known
    first = ",".join(f"{n}:{c}:{service}" for n, c in (
        (9, "name=systemd"), (8, "pids"), (7, "blkio"), (5, "devices")))[:239]
    assert parsers.listed_unit(first) == ("postgresql@14-main.service", False)
    # a whole column, and one of v2 alone cut below its unit's name, as before
    assert parsers.listed_unit(f"0::{service}") == ("postgresql@14-main.service", False)
    deep = f"0::/user.slice/user-1000.slice/user@1000.service/app.slice/{'c' * 300}"[:239]
    assert parsers.listed_unit(deep) == ("user@1000.service", False)


def test_an_older_systemds_tables_are_judged_as_its_json_would_be():
    """systemd before 246 (RHEL 8 and its rebuilds, Ubuntu 20.04) prints its tables whatever
    --output says: its failed and misconfigured units are still found."""
    snap = Snapshot(
        host="rhel8", taken_at=1.0, systemd_running=True,
        units=parsers.parse_list_units(load("list_units_table_systemd239")["raw"]),
        unit_files=parsers.parse_list_unit_files(
            load("list_unit_files_table_systemd239")["raw"]),
    )
    findings, judged = evaluate(RuleContext(snap))
    assert {"failed_unit", "unit_load_error"} <= judged
    assert sorted((f.rule, f.subject) for f in findings) == [
        ("failed_unit", "httpd.service"), ("unit_load_error", "typo.service")]


def test_a_disk_past_full_whose_free_space_df_prints_negative_is_judged_full():
    # an NFS or FUSE server that reports less than nothing free: GNU df prints the count with
    # its sign, and the line was dropped, so the fullest disk was judged by no rule
    text = ("Filesystem Type 1B-blocks Used Avail Inodes IUsed Mounted on\n"
            "/dev/sda1 ext4 10737418240 5368709120 5368709120 655360 1000 /\n"
            "nas:/export/backup nfs4 1099511627776 1100585369600 -1073741824 - - "
            "/srv/backup\n")
    mounts = {m.target: m for m in parsers.parse_df(text)}
    assert set(mounts) == {"/", "/srv/backup"}
    backup = mounts["/srv/backup"]
    assert (backup.avail_bytes, backup.used_percent) == (0, 100.0)
    findings, judged = evaluate(RuleContext(Snapshot(host="web1", taken_at=0.0,
                                                     mounts=list(mounts.values()))))
    assert "disk_space" in judged
    assert [(f.rule, f.subject) for f in findings] == [("disk_space", "/srv/backup")]


def test_a_df_line_of_junk_holding_a_long_run_of_spaces_is_skipped_and_the_rest_read():
    # a line that did not fit, with a long run of spaces, made the parser try every place
    # the source could end: 40,000 spaces held the daemon's loop, every host's check with
    # it, for 14 seconds, and this line for hours
    text = ("Filesystem Type 1B-blocks Used Avail Inodes IUsed Mounted on\n"
            "/dev/sda1 ext4 10737418240 5368709120 5368709120 655360 1000 /\n"
            "x" + " " * 200_000 + "y\n"
            "//nas/My Share cifs 2000 1000 1000 - - /mnt/my share\n")
    assert {(m.source, m.target) for m in parsers.parse_df(text)} == {
        ("/dev/sda1", "/"), ("//nas/My Share", "/mnt/my share")}


#: lines no journalctl writes but any host may print: numbers no int holds, nesting deeper
#: than the interpreter's stack, an integer of more digits than int() reads
_HOSTILE_JOURNAL_FIELDS = {
    "priority infinite": '"PRIORITY": Infinity',
    "priority 1e400": '"PRIORITY": 1e400',
    "timestamp 1e400": '"__REALTIME_TIMESTAMP": 1e400',
    "timestamp -1e400": '"__REALTIME_TIMESTAMP": -1e400',
    "timestamp of 4000 digits": '"__REALTIME_TIMESTAMP": "' + "9" * 4000 + '"',
}


@pytest.mark.parametrize("field", _HOSTILE_JOURNAL_FIELDS.values(),
                         ids=_HOSTILE_JOURNAL_FIELDS.keys())
def test_a_journal_entry_with_a_number_no_int_holds_is_read_with_defaults(field: str):
    entry = parsers.parse_journal_line('{"__CURSOR": "s=1;i=7", "MESSAGE": "odd", ' + field + "}")
    assert entry is not None
    assert (entry.cursor, entry.message, entry.priority, entry.timestamp) == (
        "s=1;i=7", "odd", 6, 0.0)


@pytest.mark.parametrize("line", [
    '{"__CURSOR": "s=1;i=7", "X": ' + "[" * 100_000 + "]" * 100_000 + "}",
    '{"__CURSOR": "s=1;i=7", "X": ' + "9" * 5000 + "}",
], ids=["nested arrays", "integer of 5000 digits"])
def test_a_journal_line_json_cannot_hold_is_no_entry(line: str):
    assert parsers.parse_journal_line(line) is None
