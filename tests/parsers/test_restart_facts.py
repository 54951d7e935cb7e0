"""What says a service's restarts follow failures: its Restart= setting, and PID 1's own word
that a run failed (UNIT_RESULT=, which any other sender may forge)."""

from __future__ import annotations

import json
from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import CommandResult
from ai_sysadmin.monitor import parsers
from ai_sysadmin.monitor.parsers import parse_journal_line, parse_show_clean_restarts
from ai_sysadmin.monitor.sections import SECTIONS_BY_NAME, JournalQuery, Plan
from ai_sysadmin.monitor.snapshot import ServiceResult, Snapshot

SHOW = """\
Id=getty@tty1.service
NRestarts=5
Restart=always

Id=poller.service
NRestarts=9
Restart=on-success

Id=nginx.service
NRestarts=4
Restart=on-failure

Id=oneshot.service
NRestarts=0
Restart=no
"""


def test_services_restarted_after_clean_exits_too() -> None:
    assert parse_show_clean_restarts(SHOW) == {"getty@tty1.service", "poller.service"}


def line(pid: str, **fields: str) -> str:
    return json.dumps({"__CURSOR": "s=1;i=1", "__REALTIME_TIMESTAMP": "1700000000000000",
                       "PRIORITY": "4", "_PID": pid, **fields})


def test_pid_1_says_how_a_run_failed() -> None:
    said = parse_journal_line(line("1", MESSAGE="crashy.service: Failed with result "
                                   "'exit-code'.", UNIT="crashy.service",
                                   UNIT_RESULT="exit-code", _SYSTEMD_UNIT="init.scope"))
    assert said is not None
    assert (said.unit, said.unit_result) == ("crashy.service", "exit-code")


def test_anyone_else_writing_unit_result_is_not_believed() -> None:
    forged = parse_journal_line(line("4242", MESSAGE="crashy.service: Failed with result "
                                     "'exit-code'.", UNIT="crashy.service",
                                     UNIT_RESULT="exit-code",
                                     _SYSTEMD_UNIT="prankster.service"))
    assert forged is not None
    assert (forged.unit, forged.unit_result) == ("prankster.service", None)


def test_the_four_facts_of_2000_services_come_from_one_split_of_the_text(
        tmp_path: Path) -> None:
    # every check reads restarts, results, restart settings and reloads from one
    # `systemctl show '*.service'`: each is right for every service, and the text is split once
    blocks = [f"Id=s{n}.service\nNRestarts={n % 7}\n"
              f"Result={'core-dump' if n % 100 == 3 else 'success'}\nExecMainCode=3\n"
              f"ExecMainStatus=11\nExecMainPID={1000 + n}\n"
              f"Restart={('no', 'always', 'on-failure')[n % 3]}\n"
              f"NeedDaemonReload={'yes' if n % 50 == 0 else 'no'}\n" for n in range(2000)]
    shown = CommandResult(("systemctl", "show"), 0, "\n".join(blocks), "", 0.0)
    plan = Plan(Settings(ai_name="hal", state_dir=tmp_path / "state"), JournalQuery(), True)
    snap = Snapshot("here", 1.0)
    snap.systemd_running = True
    parsers._show_blocks.cache_clear()

    SECTIONS_BY_NAME["restarts"].take([shown], snap, plan)

    assert snap.restarts == {f"s{n}.service": n % 7 for n in range(2000)}
    assert snap.service_results == {
        f"s{n}.service": ServiceResult("core-dump", "dumped", 11, 1000 + n)
        for n in range(3, 2000, 100)}
    assert snap.clean_restarts == {f"s{n}.service" for n in range(1, 2000, 3)}
    assert snap.needs_reload == {f"s{n}.service" for n in range(0, 2000, 50)}
    assert parsers._show_blocks.cache_info().misses == 1
