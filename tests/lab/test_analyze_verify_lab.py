"""systemd-analyze verify runs man(1) for each Documentation=man:... of the unit file it checks,
with that entry's words as man's arguments (``man:ls(--pager=x)`` runs ``man --pager=x ls``):
a unit file anyone may write in /tmp chooses them. On real systemd in the fault lab, the
model's verify never starts man; a man that records what it was given stands in for the real
one, in /usr/local/bin, ahead of it on the PATH."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ai_sysadmin.agent.context import ToolContext
from ai_sysadmin.agent.tools import REGISTRY
from ai_sysadmin.config import Settings
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.safety.command_policy import check_command

pytestmark = pytest.mark.lab
HOST = "verifylab"
RAN = "/tmp/man-was-run"
#: written by a local user, read by a prompt-injected model
EVIL = ("[Unit]\nDescription=looks harmless\nDocumentation=man:ls(--pager=/tmp/evil-pager)\n"
        "[Service]\nExecStart=/bin/true\n")


@pytest.fixture(scope="module")
def lab() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        sb.write_file("/usr/local/bin/man", f'#!/bin/sh\necho "$*" >> {RAN}\n', 0o755)
        sb.write_file("/tmp/evil.service", EVIL, 0o644)
        yield sb


@pytest.fixture
def ctx(lab: Sandbox, tmp_path) -> ToolContext:
    lab.exec(["rm", "-f", RAN], check=True)
    return ToolContext(Settings(ai_name="labtest", state_dir=tmp_path),
                       {HOST: SandboxTransport(lab)}, HOST)


def man_ran(lab: Sandbox) -> str:
    return lab.exec(["sh", "-c", f"cat {RAN} 2>/dev/null || true"]).stdout


def verify(ctx: ToolContext, *options: str):
    argv = ["systemd-analyze", *options, "verify", "/tmp/evil.service"]
    return asyncio.run(REGISTRY.call("run_readonly", {"argv": argv}, ctx))


def test_a_models_verify_never_runs_man_with_the_unit_files_words(lab, ctx) -> None:
    for options in ((), ("--man",), ("--man=yes",), ("--man=no", "--man=yes")):
        result = verify(ctx, *options)
        assert man_ran(lab) == "", f"{options}: man ran with {man_ran(lab)!r}"
        assert result.status == "refused" and "--man=no" in result.output, result.output
    # as a fix (it would run as root) it is refused alike
    fix = check_command(["systemd-analyze", "verify", "/tmp/evil.service"], "remediate")
    assert not fix.allowed and "--man=no" in fix.reason, fix.reason


def test_verify_with_man_off_checks_the_file_and_runs_nothing_else(lab, ctx) -> None:
    result = verify(ctx, "--man=no")
    assert result.status == "ok", result.output
    assert man_ran(lab) == ""
