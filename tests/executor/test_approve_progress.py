"""``approve approve N`` says each step on stderr as it happens (what runs, that it ran and
its exit status, that it verifies and for how long), and a fix whose commands ran but whose
verification failed is said to have run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from ai_sysadmin.config import Settings, short_hostname
from ai_sysadmin.executor import Executor
from ai_sysadmin.hosts.transport import LocalTransport

#: a systemctl that lists one failed unit, for ever: a finding no fix here makes go away
SYSTEMCTL = ('#!/bin/sh\n'
             'if [ "$1" = list-units ]; then echo \'[{"unit": "stub-broken.service", '
             '"load": "loaded", "active": "failed", "sub": "failed", "description": "stub"}]\'; '
             'elif [ "$1" = show ]; then :; else echo "[]"; fi\n')


def _journalctl(tmp_path: Path) -> tuple[Path, Path]:
    """journalctl as the fix runs it: a real program that only notes its argv."""
    ran = tmp_path / "ran"
    journalctl = tmp_path / "journalctl"
    journalctl.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {ran}\n')
    journalctl.chmod(0o755)
    return journalctl, ran


def test_approve_says_each_step_as_it_happens(
        cli, config_file, settings: Settings, store, tmp_path: Path) -> None:
    journalctl, ran = _journalctl(tmp_path)
    config_file(f'ai_name = "hal"\n[programs]\njournalctl = "{journalctl}"\n'
                "[safety]\nverify_settle_seconds = 0\nverify_timeout = 30\n")
    host = short_hostname()
    action = asyncio.run(Executor(settings, store, {host: LocalTransport(host)}).propose(
        host, "vacuum_journal", {"max_size": "500M"}))

    code, out, err = cli("approve", "approve", str(action.id))
    assert code == 0, err
    assert ran.read_text() == "--vacuum-size=500M\n"
    where = f"action {action.id} on {host}"
    assert err.splitlines() == [
        f"{where}: running journalctl --vacuum-size=500M",
        f"{where}: ran journalctl --vacuum-size=500M: exit status 0",
        f"{where}: verifying the fix: checking the host again for up to 30 s (the finding "
        "must stay gone 0 s)"]
    assert "state succeeded" in out  # the outcome stays on stdout


def test_a_fix_that_ran_but_did_not_verify_is_said_to_have_run(
        cli, config_file, settings: Settings, store, tmp_path: Path) -> None:
    journalctl, ran = _journalctl(tmp_path)
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(SYSTEMCTL)
    systemctl.chmod(0o755)
    config_file(f'ai_name = "hal"\n[programs]\njournalctl = "{journalctl}"\n'
                f'systemctl = "{systemctl}"\n'
                "[safety]\nverify_settle_seconds = 0\nverify_timeout = 1\n")
    assert cli("check")[0] == 1
    [incident] = [i for i in json.loads(cli("issues", "list", "--json")[1])
                  if i["subject"] == "stub-broken.service"]
    host = short_hostname()
    # a fix that does not touch the finding: it runs to exit 0, the unit stays failed
    action = asyncio.run(Executor(settings, store, {host: LocalTransport(host)}).propose(
        host, "vacuum_journal", {"max_size": "500M"}, incident_id=incident["id"]))

    code, out, err = cli("approve", "approve", str(action.id))
    assert code == 1
    assert "--vacuum-size=500M" in ran.read_text().splitlines()  # the checks read it too
    lines = err.splitlines()
    assert f"action {action.id} on {host}: ran journalctl --vacuum-size=500M: exit status 0" \
        in lines
    assert lines[-1].startswith(f"error: action {action.id} ran (its commands exited 0), but "
                                "its verification failed: ")
    assert lines[-1].endswith("after 1 s; a person must look")
    assert f"action {action.id} is failed" not in err
