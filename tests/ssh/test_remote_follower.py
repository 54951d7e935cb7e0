"""A unit that fails on a remote host while the daemon runs is seen through the journal
follower over SSH, long before the next interval check."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_sysadmin.hosts.ssh import SshTransport
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.store import HostStore
from tests.lab.daemon_runner import run_daemon
from tests.lab.test_remediation_lab import settings_for
from tests.support.scripted_model import ScriptedModel, say

from .conftest import LabHost

pytestmark = pytest.mark.lab

CRASHES = """
[Service]
ExecStart=/bin/sh -c 'echo "<3>remote crash" >&2; exit 1'
"""


def test_a_remote_unit_failure_is_seen_by_the_follower_within_the_interval(
    lab_host: LabHost, known_hosts: Path, tmp_path: Path
) -> None:
    sb, host = lab_host.sandbox, lab_host.ssh
    remote = SshTransport(host.target(host.write_known_hosts(known_hosts)), name="sshlab")
    injected: list[bool] = []

    def until(store) -> bool:
        checked = any(h["name"] == "sshlab" and h["last_check"] for h in HostStore(store.db).all())
        following = sb.exec(["pgrep", "-f", "journalctl .*--follow"]).returncode == 0
        if not injected and checked and following:
            # the first interval check is done, the next one is an hour away, and the follower's
            # journalctl runs on the remote host: only the follower can see what comes now
            apply(sb, "install_unit", {"name": "remote-crash.service", "text": CRASHES})
            sb.exec(["systemctl", "start", "--no-block", "remote-crash.service"])
            injected.append(True)
        return any(i.subject == "remote-crash.service" for i in store.incidents(None))

    with ScriptedModel([say("DIAGNOSIS: it crashed. PROPOSALS: none")] * 20) as model:
        settings = settings_for(tmp_path, model.url, "observe")
        assert settings.check_interval == 3600 and settings.journal_follow
        store, _ = run_daemon(settings, None, until, timeout=60, transports=[remote])
    (incident,) = [i for i in store.incidents(None) if i.subject == "remote-crash.service"]
    assert incident.host == "sshlab" and incident.rule == "failed_unit"
