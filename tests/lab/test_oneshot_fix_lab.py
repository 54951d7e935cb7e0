"""A oneshot job (RemainAfterExit=no) is inactive again once it ran: a restart that fixed it
never leaves it active. Its fix is verified by its run after the fix: a new run that ended
with Result=success and status 0, not failed. Real systemd, the scripted model proposes, the
policy and the executor decide, run and verify."""

from __future__ import annotations

import pytest

from ai_sysadmin.knowledge.learning import lesson
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.store import ActionStore
from tests.lab.daemon_runner import run_daemon
from tests.lab.test_remediation_lab import propose_restart
from tests.lab.test_reset_failed_lab import settings_for
from tests.support.scripted_model import ScriptedModel

pytestmark = [pytest.mark.lab, pytest.mark.slow]

# fails at every run until its config is there
JOB = """
[Service]
Type=oneshot
RemainAfterExit=no
ExecStart=/bin/sh -c 'test -e /etc/export.conf || { echo "<3>cannot open /etc/export.conf" >&2; exit 1; }; echo exported'
"""  # noqa: E501


def _ran(store) -> bool:
    return any(a.state in ("succeeded", "failed") for a in ActionStore(store.db).find())


def _failed_job(sb: Sandbox, wanted_by: str | None) -> None:
    unit = {"name": "export.service", "text": JOB}
    if wanted_by:
        unit["wanted_by"] = wanted_by
    apply(sb, "install_unit", unit)
    sb.exec(["systemctl", "start", "--no-block", "export.service"], check=True)
    apply(sb, "wait_unit", {"name": "export.service", "value": "failed"})


@pytest.mark.parametrize(("wanted_by", "words"), [
    # wanted by a target, systemd keeps the unit loaded: its new run is told by its
    # InvocationID and its Result
    ("multi-user.target", "export.service ran after the fix and succeeded "
                          "(Result=success, status 0)"),
    # nothing refers to it: systemd unloads it once it ended without failing
    (None, "export.service ran and ended without failing"),
])
def test_a_restart_of_a_oneshot_job_that_then_runs_to_success_resolves_it(
        tmp_path, wanted_by: str | None, words: str) -> None:
    with Sandbox() as sb, ScriptedModel([propose_restart("export.service")] * 20) as model:
        _failed_job(sb, wanted_by)
        sb.write_file("/etc/export.conf", "target=/srv\n")  # the cause went before anyone looked
        store, _ = run_daemon(settings_for(tmp_path, model.url), sb, _ran, timeout=90)
        state = sb.exec(["systemctl", "is-active", "export.service"]).stdout.strip()
    assert state == "inactive"  # its healthy end: it ran and ended
    (action,) = ActionStore(store.db).find()
    assert (action.kind, action.state) == ("restart_unit", "succeeded"), action.result
    assert action.result["verification"] == f"finding gone and {words} for 1 s"
    (incident,) = store.incidents(None)
    assert incident.state == "resolved"
    taught = lesson(incident, action)
    assert taught is not None and taught.entry.verified


def test_a_restart_of_a_oneshot_job_that_fails_again_leaves_it_open(tmp_path) -> None:
    with Sandbox() as sb, ScriptedModel([propose_restart("export.service")] * 20) as model:
        _failed_job(sb, "multi-user.target")
        store, _ = run_daemon(settings_for(tmp_path, model.url), sb, _ran, timeout=90)
    (action, *_) = ActionStore(store.db).find()
    assert (action.kind, action.state) == ("restart_unit", "failed"), action.result
    # systemctl answers a oneshot's start once its run ended, and fails with it
    assert "exited 1" in action.result["error"], action.result
    (incident,) = store.incidents(None)
    assert incident.state in ("open", "reopened", "investigating", "awaiting_approval")
    assert any(e["detail"].startswith(f"action {action.id} failed")
               for e in store.audit_log(200) if e["action"] == "escalated")
