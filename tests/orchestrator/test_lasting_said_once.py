"""A condition that lasts (a section a host cannot give for a week) is said in the daemon's log as
it begins, when it changes and when it is over, not again at every check: at the default
interval that was 288 warnings a day per section, thirteen sections of a host that is down,
pushing weeks of the log's history out of its rotated files."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.inventory import parse_target
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.findings import Finding
from ai_sysadmin.monitor.rules import RuleContext
from ai_sysadmin.monitor.rules.disk_space import DiskSpace
from ai_sysadmin.orchestrator.checker import HostChecker
from ai_sysadmin.orchestrator.fleet import remote_transport
from ai_sysadmin.store import Database, IncidentStore

#: df as a host whose df fails while the file ``broken`` holds a reason, then works
DF = """#!/bin/sh
if [ -s {broken} ]; then cat {broken} >&2; exit 1; fi
echo "Filesystem Type 1B-blocks Used Avail Inodes IUsed Mounted on"
echo "/dev/vdb ext4 1000000000 100000000 900000000 1000 10 /srv"
"""


def test_a_section_that_keeps_failing_is_said_once_until_it_changes_or_works_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken, df = tmp_path / "broken", tmp_path / "df"
    df.write_text(DF.format(broken=broken))
    df.chmod(0o755)
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", programs={"df": str(df)})
    store = IncidentStore(Database(settings.db_path))
    checker = HostChecker(LocalTransport("web1"), settings, store)

    def checks(times: int, why: str) -> list[str]:
        broken.write_text(why)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="ai_sysadmin.orchestrator"):
            for _ in range(times):
                report = asyncio.run(checker.check("interval"))
                assert ("mounts" in report.errors) == bool(why)
        return [r.getMessage() for r in caplog.records if "mounts" in r.getMessage()]

    said = checks(6, "df: /srv: Input/output error\n")
    assert len(said) == 1 and said[0].startswith("web1: section mounts not collected: ")
    assert "Input/output error" in said[0]
    # something new about it is said, once, even where the two take turns
    said = checks(3, "df: /srv: Stale file handle\n")
    assert len(said) == 1 and "Stale file handle" in said[0]
    assert checks(1, "df: /srv: Input/output error\n") == []
    assert checks(1, "df: /srv: Stale file handle\n") == []
    # its end is said once, and nothing while it works
    assert checks(3, "") == ["web1: section mounts collected again"]
    # and a new episode of the same error is said again
    said = checks(2, "df: /srv: Stale file handle\n")
    assert len(said) == 1 and "Stale file handle" in said[0]
    # the host's state shows it at each check all the same
    assert "Stale file handle" in (store.hosts()[0]["last_error"] or "")


def test_a_host_that_answers_nothing_is_one_line_not_one_a_section(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listens on 127.0.0.1:1: every section fails for the one reason. It was two
    dozen warnings, one a section, and a check record of kilobytes holding each, at every
    check of a host that is down; now one warning, and the record holds the reason once."""
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                        ssh={"use_ssh_config": False, "connect_timeout": 2})
    store = IncidentStore(Database(settings.db_path))
    checker = HostChecker(remote_transport(parse_target("127.0.0.1:1"), settings), settings,
                          store)
    with caplog.at_level(logging.INFO, logger="ai_sysadmin.orchestrator"):
        for _ in range(2):
            report = asyncio.run(checker.check("interval"))
    assert len(report.errors) > 20  # each section still says why, for `check` and `systems`
    said = [r for r in caplog.records if "not collected" in r.getMessage()]
    assert [r.getMessage() for r in said] == [
        "127.0.0.1: every section not collected: no answer: connection refused "
        "(root@127.0.0.1:1)"]
    checked = [r for r in caplog.records if r.getMessage().startswith("checked 127.0.0.1")]
    assert len(checked) == 2
    assert all(r.errors == {"every": "no answer: connection refused (root@127.0.0.1:1)"}
               for r in checked)


def test_a_healthy_checks_line_repeats_no_note_it_said_before(
        caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """A host without systemd says so in a note at every check: carried on every check's
    line, it was most of the log of a healthy fleet, whose capped files then held a day."""
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state")
    checker = HostChecker(LocalTransport("here"), settings,
                          IncidentStore(Database(settings.db_path)))
    with caplog.at_level(logging.INFO, logger="ai_sysadmin.orchestrator"):
        for _ in range(3):
            report = asyncio.run(checker.check("interval"))
    assert report.notes  # systemd does not run here: the units' note, at every check
    checked = [r for r in caplog.records if r.getMessage().startswith("checked here")]
    assert [getattr(r, "notes", None) for r in checked] == [report.notes, None, None]
    assert all(hasattr(r, "errors") for r in checked)


FULL = """#!/bin/sh
echo "Filesystem Type 1B-blocks Used Avail Inodes IUsed Mounted on"
echo "/dev/vdb ext4 1000000000 990000000 10000000 1000 10 /srv"
echo "/dev/vdc ext4 1000000000 995000000 5000000 1000 10 /data"
"""


def test_each_incident_opened_is_logged_with_its_own_finding(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`logs decisions` gave every "incident N opened" line all the check's findings (two
    full disks: each line named both), so a line did not say which incident it was."""
    df = tmp_path / "df"
    df.write_text(FULL)
    df.chmod(0o755)
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", programs={"df": str(df)})
    store = IncidentStore(Database(settings.db_path))
    with caplog.at_level(logging.INFO, logger="ai_sysadmin.decisions"):
        report = asyncio.run(HostChecker(LocalTransport("web1"), settings, store).check())
    opened = {r.incident: r for r in caplog.records  # type: ignore[attr-defined]
              if getattr(r, "event", "") == "opened"}
    disks = {i.id: i.subject for i in store.incidents() if i.rule == "disk_space"}
    assert set(disks.values()) == {"/srv", "/data"}, report.findings
    for incident_id, mount in disks.items():
        record = opened[incident_id]
        (summary,) = record.findings  # type: ignore[attr-defined]
        assert mount in summary and summary in record.getMessage()
        other = "/data" if mount == "/srv" else "/srv"
        assert other not in record.getMessage()


def test_a_rule_that_raises_is_said_as_a_failed_rule_with_its_traceback_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in a rule was logged as "section rule:disk_space not collected: ZeroDivisionError:
    division by zero", with nothing to find the bug by. The other rules still judge, and the
    host is not called healthy, as before."""
    broken, df = tmp_path / "broken", tmp_path / "df"
    df.write_text(DF.format(broken=broken))
    df.chmod(0o755)
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", programs={"df": str(df)})
    checker = HostChecker(LocalTransport("web1"), settings,
                          IncidentStore(Database(settings.db_path)))
    judge = DiskSpace.evaluate

    def divide(self: DiskSpace, ctx: RuleContext) -> list[Finding]:
        return [] if len(ctx.snapshot.mounts or []) / 0 else []

    def checks(times: int, failing: bool) -> list[logging.LogRecord]:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="ai_sysadmin.orchestrator"):
            for _ in range(times):
                report = asyncio.run(checker.check("interval"))
                assert "inode_exhaustion" in report.judged_rules
                assert ("disk_space" in report.judged_rules) is not failing
                assert not (failing and report.healthy)
        return [r for r in caplog.records if "disk_space" in r.getMessage()]

    monkeypatch.setattr(DiskSpace, "evaluate", divide)
    (said,) = checks(3, failing=True)
    assert said.levelno == logging.ERROR
    assert said.getMessage().startswith(
        "web1: rule disk_space failed: ZeroDivisionError: division by zero; it judged nothing")
    assert said.exc_info is not None and said.exc_info[0] is ZeroDivisionError
    assert "/ 0" in caplog.text  # the traceback, down to the line that raised
    monkeypatch.setattr(DiskSpace, "evaluate", judge)
    assert [r.getMessage() for r in checks(2, failing=False)] == [
        "web1: rule disk_space judges again"]
