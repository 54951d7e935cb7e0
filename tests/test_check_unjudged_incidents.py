"""A live incident of a rule a check could not judge (one that measures against an earlier
look, which a fresh `check` has not had) stays open, and the check does not call the host
healthy: it says "not judged" and exits 2, as for a mount df could not read."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.hosts.transport import LocalTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.checker import HostChecker
from ai_sysadmin.store import Database, IncidentStore
from tests.support.machine import QUIET_THRESHOLDS

#: levels no busy machine reaches: what the check finds of the machine running the suite is
#: no matter here
QUIET = 'ai_name = "hal"\n' + QUIET_THRESHOLDS

#: what the daemon's interval checks found on this host: a hog measured over minutes, and
#: swap thrashing measured from the look before
FOUND = {("runaway_process", "stuck.service"), ("swap_thrash", "swap")}


def daemon_found(store: IncidentStore, host: str) -> None:
    found = [Finding(host, rule, subject, Severity.WARNING, f"{rule} of {subject}", ("x",))
             for rule, subject in sorted(FOUND)]
    opened = store.record_check(host, found, {rule for rule, _ in FOUND},
                                consumer="daemon").opened
    assert len(opened) == 2


def live(store: IncidentStore, host: str) -> set[tuple[str, str]]:
    """Those of FOUND still open: what a check finds of the machine running the suite
    besides (its load, another test's zombies or hog) is no matter here."""
    return FOUND & {(i.rule, i.subject) for i in store.incidents(None)
                    if i.host == host and i.state == "open"}


def test_check_with_open_incidents_its_rules_could_not_judge_is_not_healthy(
        cli, config_file, tmp_path: Path) -> None:
    config_file(QUIET)
    store = IncidentStore(Database(tmp_path / "state" / "state.db"))
    host = short_hostname()
    daemon_found(store, host)

    code, out, _ = cli("check", "--json")
    report = json.loads(out)
    kept = {(k["rule"], k["subject"]) for k in report["kept"]}
    assert FOUND <= kept, report
    assert report["healthy"] is False
    # findings outrank; else what went unjudged is exit 2, never 0
    assert code == (1 if report["findings"] else 2)
    assert live(store, host) == FOUND  # nothing resolved on a look that could not judge

    code, out, _ = cli("check")
    lines = out.splitlines()
    for rule, subject in sorted(FOUND):
        assert f"not judged {rule} {subject}: found before, its rule could not judge this " \
               "check; its incident stays as it was" in lines, out
    assert "healthy: no findings" not in out

    code, out, _ = cli("check", "--all")
    assert " 0 healthy," in out.splitlines()[-1], out
    assert code in (1, 2)
    assert live(store, host) == FOUND


def test_an_unjudged_rule_resolves_nothing_and_is_kept_until_it_judges(tmp_path: Path) -> None:
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                        thresholds={"swap_thrash_pages_per_second": 1e12})
    store = IncidentStore(Database(settings.db_path))
    daemon_found(store, "web1")
    checker = HostChecker(LocalTransport("web1"), settings, store)

    first = asyncio.run(checker.check("interval"))
    assert "swap_thrash" not in first.judged_rules  # no earlier look to measure from
    assert ("swap_thrash", "swap") in first.kept and not first.healthy
    assert not first.judged("swap_thrash", "swap")
    assert live(store, "web1") == FOUND

    # the next look measures from the first: judged, no thrashing, resolved, kept no more
    second = asyncio.run(checker.check("interval"))
    assert "swap_thrash" in second.judged_rules
    assert ("swap_thrash", "swap") not in second.kept
    assert ("swap_thrash", "swap") not in live(store, "web1")
