"""The fleet end to end over SSH: a remote failed unit fixed at auto-safe and verified, while an
unreachable host becomes its own incident without holding the sweep up."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ai_sysadmin.hosts.ssh import SshTransport
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.store import ActionStore
from tests.lab.daemon_runner import run_daemon
from tests.lab.test_remediation_lab import TRANSIENT, propose_restart, settings_for
from tests.support.scripted_model import ScriptedModel

from .conftest import Hosts, LabHost

pytestmark = pytest.mark.lab


def test_remote_failed_unit_is_fixed_over_ssh_and_verified(
    lab_host: LabHost, ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    sb, host = lab_host.sandbox, lab_host.ssh
    sb.exec(["rm", "-f", "/var/tmp/ran-once"])
    apply(sb, "install_unit", {"name": "remote-flaky.service", "text": TRANSIENT})
    apply(sb, "start_unit", {"name": "remote-flaky.service"})
    kh = host.write_known_hosts(known_hosts)
    remote = SshTransport(host.target(kh), name="sshlab")
    dead = SshTransport(host.target(kh, host=ssh_hosts.blackhole, connect_timeout=3),
                        name="blackhole")
    with ScriptedModel([propose_restart("remote-flaky.service")] * 20) as model:
        settings = settings_for(tmp_path, model.url, "auto-safe")
        started = time.monotonic()
        store, _ = run_daemon(settings, None, lambda s: any(
            a.state in ("succeeded", "failed") and a.params.get("unit") == "remote-flaky.service"
            and a.host == "sshlab" for a in ActionStore(s.db).find()) and any(
            i.rule == "host_unreachable" for i in s.incidents(None)),
            transports=[remote, dead])
        took = time.monotonic() - started
    # the scripted model answers every investigation alike; only this incident's fix matters
    flaky = next(i for i in store.incidents(None) if i.subject == "remote-flaky.service")
    mine = [a for a in ActionStore(store.db).find() if a.incident_id == flaky.id]
    (action,) = mine
    assert (action.host, action.kind, action.state) == ("sshlab", "restart_unit", "succeeded")
    assert "remote-flaky.service active" in action.result["verification"]
    assert sb.exec(["systemctl", "is-active", "remote-flaky.service"]).stdout.strip() == "active"
    by_rule = {i.rule: i for i in store.incidents(None)}
    assert by_rule["failed_unit"].state == "resolved" and by_rule["failed_unit"].host == "sshlab"
    unreachable = by_rule["host_unreachable"]
    assert unreachable.host == "blackhole" and unreachable.state in ("open", "investigating",
                                                                     "awaiting_approval")
    assert took < 60
