"""What says a service's restarts follow failures: its Restart= setting, and PID 1's own word
that a run failed (UNIT_RESULT=, which any other sender may forge)."""

from __future__ import annotations

import json

from ai_sysadmin.monitor.parsers import parse_journal_line, parse_show_clean_restarts

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
