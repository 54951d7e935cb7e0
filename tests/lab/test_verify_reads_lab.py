"""A fix's verification looks at the host every second or so for up to a minute. What those
looks read is what the incident's rule judges from: the unit files (systemd works out every
file's state for the listing, half a second of its CPU here) are read afresh only for an
incident of the unit files; a restarted service's looks read them once, after the fix (which
may have changed them), and keep that reading. The model's snapshot of a host, which shows
no unit file, lists none. Real systemd in the fault lab; the executor runs and verifies a
real restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ai_sysadmin.agent.context import ToolContext
from ai_sysadmin.agent.tools import REGISTRY
from ai_sysadmin.config import Settings
from ai_sysadmin.executor import Executor
from ai_sysadmin.lab.injectors import apply
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.store import Database, IncidentStore
from tests.lab.daemon_runner import QUIET_HOST_WIDE

pytestmark = pytest.mark.lab
HOST = "sdtest"
READS = "/run/unit-file-reads"
COUNTED = "/usr/local/bin/counted-systemctl"
# fails on its first start only: a restart fixes it
TRANSIENT = """
[Service]
ExecStart=/bin/sh -c 'if [ -e /var/tmp/ran-once ]; then exec sleep infinity; fi; touch /var/tmp/ran-once; exit 1'
"""  # noqa: E501


def counted_and_failed(sb: Sandbox) -> None:
    """A systemctl that counts the unit-file listings (COUNTED), and flaky.service failed."""
    sb.write_file(COUNTED, f'#!/bin/sh\n[ "$1" = list-unit-files ] && echo read >> {READS}'
                           '\nexec systemctl "$@"\n', 0o755)
    apply(sb, "install_unit", {"name": "flaky.service", "text": TRANSIENT})
    apply(sb, "start_unit", {"name": "flaky.service"})
    apply(sb, "wait_unit", {"name": "flaky.service", "value": "failed"})


def reads(sb: Sandbox) -> int:
    return len(sb.exec(["sh", "-c", f"cat {READS} 2>/dev/null; true"]).stdout.split())


def test_a_restart_is_verified_without_the_unit_files_and_a_unit_file_incident_with(
        tmp_path: Path) -> None:
    with Sandbox() as sb:
        counted_and_failed(sb)
        settings = Settings(
            ai_name="hal", state_dir=tmp_path / "state", autonomy_level="auto-safe",
            thresholds=QUIET_HOST_WIDE, programs={"systemctl": COUNTED},
            safety={"verify_settle_seconds": 2, "verify_timeout": 20})
        store = IncidentStore(Database(settings.db_path))
        executor = Executor(settings, store, {HOST: SandboxTransport(sb)})
        checker = executor.checker_for(HOST)

        async def fix(incident: int, unit: str) -> dict[str, object]:
            action = await executor.propose(HOST, "restart_unit", {"unit": unit},
                                            incident_id=incident)
            assert action.state == "approved", action
            done = await executor.run(action.id)
            assert done.state == "succeeded", done
            return done.result or {}

        report = asyncio.run(checker.check("interval"))  # the daemon's own: reads them
        assert reads(sb) == 1 and "unit_load_error" in report.judged_rules
        (incident,) = [i for i in store.incidents() if i.subject == "flaky.service"]
        looks: list[str] = []  # each look's reason
        seen = checker.check

        async def counted(reason, *args, **kwargs):  # type: ignore[no-untyped-def]
            looks.append(reason)
            return await seen(reason, *args, **kwargs)

        checker.check = counted  # type: ignore[method-assign]
        result = asyncio.run(fix(incident.id, "flaky.service"))
        assert "finding gone and flaky.service active" in str(result["verification"])
        # two seconds of verification's looks (how many fit depends on how busy the
        # machine is: at least the first and one past the two seconds) and the check after
        assert looks.count("verify") >= 2 and looks[-1] == "verified", looks
        # the first look after the restart read them (a fix may change them), no other
        assert reads(sb) == 2
        assert store.get(incident.id, history=0).state == "resolved"

        # an incident of the unit files: each of its fix's looks reads them
        finding = Finding(HOST, "unit_load_error", "flaky.service", Severity.WARNING,
                          "flaky.service: a unit file systemd could not load")
        store.record_check(HOST, [finding], {"unit_load_error"})
        (broken,) = [i for i in store.incidents() if i.rule == "unit_load_error"]
        looks.clear()
        before = reads(sb)
        asyncio.run(fix(broken.id, "flaky.service"))
        assert looks.count("verify") >= 2 and looks[-1] == "verified", looks
        assert reads(sb) - before == len(looks), (looks, reads(sb) - before)


def test_a_fix_whose_command_failed_makes_the_next_check_read_the_unit_files(
        tmp_path: Path) -> None:
    """A fix that fails part way (its restart exits 1) is not verified, yet its commands
    ran and may have changed the unit files: the daemon's next check reads them again."""
    with Sandbox() as sb:
        counted_and_failed(sb)
        apply(sb, "install_unit", {"name": "broken.service", "text": (
            "[Service]\nType=oneshot\nExecStart=/bin/false\n")})
        settings = Settings(
            ai_name="hal", state_dir=tmp_path / "state", autonomy_level="auto-safe",
            thresholds=QUIET_HOST_WIDE, programs={"systemctl": COUNTED})
        store = IncidentStore(Database(settings.db_path))
        executor = Executor(settings, store, {HOST: SandboxTransport(sb)})
        checker = executor.checker_for(HOST)

        async def failed_fix() -> None:
            await checker.check("interval")
            await checker.check("interval")
            assert reads(sb) == 1  # the second kept the first's listing
            finding = Finding(HOST, "failed_unit", "broken.service", Severity.WARNING,
                              "broken.service failed")
            store.record_check(HOST, [finding], {"failed_unit"})
            (incident,) = [i for i in store.incidents() if i.subject == "broken.service"]
            action = await executor.propose(HOST, "restart_unit", {"unit": "broken.service"},
                                            incident_id=incident.id)
            done = await executor.run(action.id)
            assert done.state == "failed", done
            before = reads(sb)
            await checker.check("interval")
            assert reads(sb) == before + 1

        asyncio.run(failed_fix())


def test_the_models_snapshot_of_a_host_lists_no_unit_files(tmp_path: Path) -> None:
    """The snapshot tool shows load, memory, disks and failed units: the unit files' listing
    it never showed cost systemd half a second of CPU a call."""
    with Sandbox() as sb:
        counted_and_failed(sb)
        settings = Settings(ai_name="hal", state_dir=tmp_path / "state",
                            programs={"systemctl": COUNTED})
        ctx = ToolContext(settings, {HOST: SandboxTransport(sb)}, HOST)
        result = asyncio.run(REGISTRY.call("snapshot", {}, ctx))
        assert result.status == "ok", result.output
        assert "failed units: flaky.service" in result.output
        assert "load: " in result.output and "disk /: " in result.output
        assert "not collected" not in result.output
        assert reads(sb) == 0
