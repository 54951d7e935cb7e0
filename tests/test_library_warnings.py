"""What a command shows of the library's warnings: those about the operator's setup, once,
masked, one line each, a few of a kind (see also tests/ssh/test_systems_fleet.py)."""

from __future__ import annotations

import logging

from ai_sysadmin.cli import library_warnings
from ai_sysadmin.logs import channel_logger


def test_a_warning_is_said_once_masked_on_one_line_and_a_flood_is_counted(capsys) -> None:
    log = channel_logger("decisions")
    with library_warnings.shown("ask"):
        # the text a record quotes (git's words, a host's) is the library's to pass on
        for _ in range(2):
            log.warning("config_repo not refreshed: git said \x1b[31mno\x1b[0m\nfatal: "
                        "password=hunter2", extra={"event": "config_repo_failed"})
        for record in range(5):
            log.warning("knowledge base kb: record r%d cannot be read, left out: newer",
                        record, extra={"event": "knowledge_unreadable"})
        # the daemon's own business (a retry) and a record of no event stay in the log
        log.warning("investigation of incident 3 failed; retry in 30 s",
                    extra={"event": "investigation_failed"})
        logging.getLogger("ai_sysadmin.service").warning("LLM request 9: lease lost")
    said = capsys.readouterr().err.splitlines()
    assert said == [
        # no terminal escape, the newline shown, not made
        "warning: config_repo not refreshed: git said no\\nfatal: password=[redacted]",
        *(f"warning: knowledge base kb: record r{n} cannot be read, left out: newer"
          for n in range(3)),
        "warning: 2 more like these (knowledge_unreadable) not shown",
    ]


def test_what_a_command_says_itself_it_says_alone(capsys) -> None:
    log = channel_logger("service")
    with library_warnings.shown("notify"):
        log.warning("notify.apprise_urls_file (/x) is readable by every user: chmod o-r it",
                    extra={"event": "credential_readable"})
    assert capsys.readouterr().err == ""
