"""``systemctl disable U`` also disables every unit U's [Install] ``Also=`` names, and theirs,
in the unit file and its drop-ins; ``systemctl show`` reports none of it. A disable is judged
with all of them: a protected one among them refuses it, and the person who approves one is
shown every unit it disables. Real systemd in the fault lab; the executor reads, plans,
decides and runs as the daemon does."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.executor import Executor
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.store import Database, IncidentStore

pytestmark = pytest.mark.lab

SERVICE = "[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n"
UNITS = "/etc/systemd/system"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Sandbox, Executor, str]]:
    settings = Settings(ai_name="hal", state_dir=tmp_path, autonomy_level="auto-full")
    with Sandbox() as sb:
        for name in ("sshd.service", "bar.service"):
            sb.write_file(f"{UNITS}/{name}", SERVICE)
        transport = SandboxTransport(sb)
        executor = Executor(settings, IncidentStore(Database(settings.db_path)),
                            {transport.host: transport})
        yield sb, executor, transport.host


def _install(sb: Sandbox, files: dict[str, str]) -> None:
    for path, text in files.items():
        sb.write_file(f"{UNITS}/{path}", text)
    sb.exec(["systemctl", "daemon-reload"], check=True)
    for name in ("sshd.service", "bar.service", "foo.service"):
        sb.exec(["systemctl", "enable", name], check=True)


def _enabled(sb: Sandbox, *units: str) -> list[str]:
    return sb.exec(["systemctl", "is-enabled", *units]).stdout.split()


def _disable_foo(executor: Executor, host: str):
    return asyncio.run(executor.propose(host, "run_command",
                                        {"argv": ["systemctl", "disable", "foo.service"]}))


@pytest.mark.parametrize("files", [
    {"foo.service": f"{SERVICE}Also=sshd.service\n"},
    # in a drop-in: systemd follows it there too
    {"foo.service": SERVICE, "foo.service.d/also.conf": "[Install]\nAlso=sshd.service\n"},
    # through another unit's Also=
    {"foo.service": f"{SERVICE}Also=bar.service\n",
     "bar.service": f"{SERVICE}Also=sshd.service\n"},
    # a line that goes on in the next, with a comment between
    {"foo.service": f"{SERVICE}Also=bar.service \\\n# the daemon\n  sshd.service\n"},
    # a line in the file that reads like the header systemctl cat gives the next file
    {"foo.service": f"{SERVICE}\n# {UNITS}/foo.service.d/x.conf\nAlso=sshd.service\n"},
], ids=["file", "drop-in", "chain", "continued", "forged-header"])
def test_a_disable_that_also_disables_a_protected_unit_is_refused(lab, files) -> None:
    sb, executor, host = lab
    _install(sb, files)
    action = _disable_foo(executor, host)
    assert action.state == "refused", action
    assert "also disables sshd.service (Also=sshd.service in " in action.reason
    assert "sshd.service is protected" in action.reason
    assert _enabled(sb, "sshd.service", "foo.service") == ["enabled", "enabled"]


def test_a_disable_the_person_approves_names_every_unit_it_disables(lab) -> None:
    sb, executor, host = lab
    _install(sb, {"foo.service": f"{SERVICE}Also=bar.service\n"})
    action = _disable_foo(executor, host)
    assert (action.state, action.risk) == ("pending", "high"), action
    assert "disabling foo.service also disables bar.service (Also=bar.service in " \
           "foo.service)" in action.reason
    done = asyncio.run(executor.approve(action.id, "alice"))
    assert done.state == "succeeded", done.result
    assert _enabled(sb, "foo.service", "bar.service", "sshd.service") == [
        "disabled", "disabled", "enabled"]


def test_a_disable_whose_also_cannot_be_told_is_refused(lab) -> None:
    sb, executor, host = lab
    # %p is foo: which unit it names is systemd's to resolve, not this reading's
    _install(sb, {"foo.service": f"{SERVICE}Also=%p-helper.service\n",
                  "foo-helper.service": SERVICE})
    action = _disable_foo(executor, host)
    assert action.state == "refused", action
    assert "could not be read" in action.reason and "a specifier" in action.reason
    assert _enabled(sb, "foo.service") == ["enabled"]
