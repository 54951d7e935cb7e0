"""On real journald: systemd-coredump keeps a crashed process's environment (COREDUMP_ENVIRON)
and, with Storage=journal, its core (COREDUMP) as fields of its journal entry, which the reading
identity (in systemd-journal) may read. None of the model's tools ever shows them; what a crash
investigation needs (the message, signal, executable, unit) stays readable."""

from __future__ import annotations

import os
import time
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
HOST = "crashlab"
COREDUMP_ID = "fc2e22bc6ee647b6b90729ab34a250b1"
ENVIRON = "environ-marker-4711"
CORE = "core-bytes-marker-0815"
#: the entry as systemd-coredump writes it, fields one a line (logger --journald)
ENTRY = f"""MESSAGE_ID={COREDUMP_ID}
MESSAGE=Process 4242 (crashy) of user 0 dumped core.
PRIORITY=2
SYSLOG_IDENTIFIER=systemd-coredump
COREDUMP_PID=4242
COREDUMP_SIGNAL=11
COREDUMP_SIGNAL_NAME=SIGSEGV
COREDUMP_EXE=/usr/bin/crashy
COREDUMP_COMM=crashy
COREDUMP_UNIT=crashy.service
COREDUMP_CMDLINE=/usr/bin/crashy --serve
COREDUMP_ENVIRON=LAB_SETTING={ENVIRON}
COREDUMP={CORE}
"""
MATCH = f"MESSAGE_ID={COREDUMP_ID}"


@pytest.fixture(scope="module")
def lab() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        # the crashed unit is there, so that systemctl status shows its journal, crash included
        sb.write_file("/etc/systemd/system/crashy.service",
                      "[Service]\nExecStart=/bin/sleep infinity\n")
        sb.exec(["systemctl", "daemon-reload"], check=True)
        sb.exec(["logger", "--journald"], input=ENTRY, check=True)
        deadline = time.monotonic() + 30
        while ENVIRON not in sb.exec(["journalctl", "-o", "verbose", MATCH]).stdout:
            assert time.monotonic() < deadline, "the crash entry never reached the journal"
            time.sleep(0.1)
        yield sb


@pytest.fixture
def ctx(lab: Sandbox, tmp_path) -> ToolContext:
    settings = Settings(ai_name="labtest", state_dir=tmp_path)
    return ToolContext(settings, {HOST: SandboxTransport(lab)}, HOST)


#: what a model might try: every field of the entry, or the secret fields by name
SECRET_READS = [
    ["journalctl", "-o", "verbose", MATCH],
    ["journalctl", "-o", "json", "--all", MATCH],
    ["journalctl", "-o", "json-pretty", "-a", "SYSLOG_IDENTIFIER=systemd-coredump"],
    ["journalctl", "-o", "export", MATCH],
    ["journalctl", "-o", "cat", "--output-fields=COREDUMP_ENVIRON", MATCH],
    ["journalctl", "-o", "cat", "--output-fields=MESSAGE,COREDUMP", MATCH],
    # fields named all empty keep none, and the mode prints every field
    ["journalctl", "-o", "verbose", "--output-fields=,", MATCH],
    ["journalctl", "-o", "json", "-a", "--output-fields=,,", MATCH],
    ["journalctl", "-F", "COREDUMP_ENVIRON"],
    ["journalctl", "-F", "COREDUMP"],
    ["coredumpctl", "-F", "COREDUMP"],
    ["coredumpctl", "-F", "COREDUMP_ENVIRON"],
    # systemctl status shows the unit's crashes from the journal, in the mode -o names
    ["systemctl", "status", "-o", "verbose", "crashy.service"],
    ["systemctl", "status", "--all", "--output=json", "crashy.service"],
    ["systemctl", "-ojson-pretty", "-l", "status", "crashy.service"],
    ["systemctl", "status", "-o", "short", "-o", "export", "crashy.service"],
]


def test_no_tool_shows_the_crashed_process_environment_or_core(ctx) -> None:
    for argv in SECRET_READS:
        result = call(ctx, "run_readonly", argv=argv)
        assert ENVIRON not in result.output and CORE not in result.output, (argv, result.output)
        assert result.status == "refused", (argv, result.output)
    # what a crash investigation needs stays readable, without them
    reads = [
        call(ctx, "journal", priority="crit", since="today"),
        call(ctx, "run_readonly", argv=["journalctl", "-o", "json", "--output-fields="
                                        "MESSAGE,COREDUMP_SIGNAL_NAME,COREDUMP_EXE", MATCH]),
        call(ctx, "run_readonly", argv=["journalctl", "-a", "-o", "short-iso", MATCH]),
        call(ctx, "run_readonly", argv=["journalctl", "-F", "COREDUMP_EXE"]),
        call(ctx, "run_readonly", argv=["coredumpctl", "info", "crashy"]),
        call(ctx, "run_readonly", argv=["coredumpctl", "list"]),
        call(ctx, "run_readonly", argv=["systemctl", "status", "-o", "short-iso", "-l",
                                        "crashy.service"]),
    ]
    for result in reads:
        assert ENVIRON not in result.output and CORE not in result.output, result.output
    journal, fields, short, exe = (r.output for r in reads[:4])
    assert "dumped core" in journal and "dumped core" in short, (journal, short)
    assert "SIGSEGV" in fields and "/usr/bin/crashy" in fields, fields
    assert "/usr/bin/crashy" in exe
    assert "dumped core" in reads[-1].output, reads[-1].output
