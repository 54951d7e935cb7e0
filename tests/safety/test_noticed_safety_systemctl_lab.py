"""On real systemd: ``systemctl show`` prints every property of a unit, its Environment= with
the values too, and the service manager hands those to any client, the reading identity
included, whatever the mode of the unit file. So show must name the properties it prints, and
those that hold environments or credentials are never among them; the rest of a unit's state
stays readable."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ai_sysadmin.agent.context import ToolContext
from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from tests.lab.test_least_privilege_lab import call

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("CI"),
                       reason="the fault lab needs root (namespaces, mounts, cgroups)"),
]
HOST = "envlab"
ENV_VALUE = "letmein-4711"
UNSET_VALUE = "unset-value-0815"
#: a unit file only root may read: its environment is not the reader's to see
UNIT = f"""[Service]
Environment=LAB_UPSTREAM={ENV_VALUE}
UnsetEnvironment=LAB_OLD={UNSET_VALUE}
ExecStart=/bin/sleep infinity
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        sb.write_file("/etc/systemd/system/envy.service", UNIT, 0o600)
        sb.exec(["systemctl", "daemon-reload"], check=True)
        sb.exec(["systemctl", "start", "envy.service"], check=True)
        yield sb


@pytest.fixture
def ctx(lab: Sandbox, tmp_path) -> ToolContext:
    settings = Settings(ai_name="labtest", state_dir=tmp_path)
    return ToolContext(settings, {HOST: SandboxTransport(lab)}, HOST)


SECRET_SHOWS = [
    ["systemctl", "show", "envy.service"],
    ["systemctl", "show", "--all", "envy"],
    ["systemctl", "show"],
    ["systemctl", "show", "-p", "Environment", "envy.service"],
    ["systemctl", "show", "--property=ActiveState,UnsetEnvironment", "envy.service"],
    ["systemctl", "show", "-P", "Environment", "envy.service"],
    ["systemctl", "show", "-pEnvironment", "--value", "envy.service"],
    # names that are all empty keep none, and systemctl prints every property
    ["systemctl", "show", "-p", ",", "envy.service"],
    ["systemctl", "show", "--property=,,", "--value", "envy"],
    ["systemctl", "show", "-P", ",", "envy.service"],
]


def test_systemctl_show_never_prints_a_units_environment(ctx) -> None:
    for argv in SECRET_SHOWS:
        result = call(ctx, "run_readonly", argv=argv)
        assert ENV_VALUE not in result.output and UNSET_VALUE not in result.output, \
            (argv, result.output)
        assert result.status == "refused", (argv, result.output)
        assert "environment" in result.output.lower(), (argv, result.output)
    # the file itself is root's: the reading identity may not read it
    assert call(ctx, "read_file", path="/etc/systemd/system/envy.service").status != "ok"
    # the unit's state stays readable
    shown = call(ctx, "run_readonly", argv=["systemctl", "show", "-p",
                                            "ActiveState,SubState,EnvironmentFiles",
                                            "envy.service"])
    assert shown.status == "ok" and "ActiveState=active" in shown.output, shown.output
    status = call(ctx, "unit_status", unit="envy.service")
    assert "ActiveState=active" in status.output and "NRestarts=0" in status.output
    for result in (shown, status):
        assert ENV_VALUE not in result.output and UNSET_VALUE not in result.output
