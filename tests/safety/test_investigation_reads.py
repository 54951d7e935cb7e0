"""Commands and files a model asks for the way people write them (issue 8): they pass the
policy, run without a pager, and files behind /proc/self links are read where they are."""

from __future__ import annotations

import ast
import asyncio
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ai_sysadmin.agent.context import ToolContext
from ai_sysadmin.agent.tools import REGISTRY
from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.transport import CommandResult, LocalTransport
from ai_sysadmin.safety import read_script
from ai_sysadmin.safety.command_policy import PAGERS, as_run, check_command, check_readonly
from ai_sysadmin.safety.file_policy import check_read, path_to_read

CORPUS = tomllib.loads((Path(__file__).parent / "corpus.toml").read_text(encoding="utf-8"))


def test_the_run_readonly_example_passes_the_policy() -> None:
    tool = REGISTRY.get("run_readonly")
    assert tool is not None
    text = tool.spec.parameters["properties"]["argv"]["description"]
    found = re.search(r"e\.g\. (\[[^\]]*\])", text)
    assert found, text
    example = ast.literal_eval(found.group(1))
    decision = check_readonly(example)
    assert decision.allowed, decision.reason


@pytest.mark.parametrize("program", sorted(PAGERS))
def test_systemd_tools_run_without_a_pager(program: str) -> None:
    assert as_run([program, "status"]) == [program, "--no-pager", "status"]
    assert as_run([program, "--no-pager", "status"]) == [program, "--no-pager", "status"]
    # after "--" the word is an operand, not the option
    assert as_run([program, "status", "--", "--no-pager"])[:2] == [program, "--no-pager"]


def test_other_programs_run_as_given() -> None:
    argv = ["hostnamectl", "status"]  # hostnamectl has no --no-pager and would fail on it
    assert as_run(argv) == argv and as_run(argv) is not argv
    assert as_run(["ls", "-la", "/var/log"]) == ["ls", "-la", "/var/log"]
    assert as_run(("df", "-h")) == ["df", "-h"]


def test_adding_no_pager_never_makes_an_allowed_command_refused() -> None:
    allowed = [c["argv"] for c in CORPUS["case"]
               if c["expect"] == "allowed" and c["purpose"] == "investigate"]
    assert sum(1 for a in allowed if a[0] in PAGERS) > 20
    for argv in allowed:
        assert check_readonly(as_run(argv)).allowed, argv


@pytest.mark.parametrize(("requested", "resolved", "read"), [
    ("/proc/net/dev", "/proc/4242/net/dev", "/proc/net/dev"),
    ("/proc/net", "/proc/4242/net", "/proc/net"),
    ("/proc/mounts", "/proc/4242/mounts", "/proc/mounts"),
    ("/etc/mtab", "/proc/4242/mounts", "/etc/mtab"),
    # a link into another process's files is read where it points, as any other link
    ("/tmp/x", "/proc/4242/status", "/proc/4242/status"),
    ("/proc/net/dev", "/proc/4242/net/tcp", "/proc/4242/net/tcp"),
    ("/etc/os-release", "/usr/lib/os-release", "/usr/lib/os-release"),
    ("/sys/class/net/eth0/statistics/rx_bytes",
     "/sys/devices/pci0000:00/0000:00:03.0/net/eth0/statistics/rx_bytes",
     "/sys/devices/pci0000:00/0000:00:03.0/net/eth0/statistics/rx_bytes"),
])
def test_which_path_is_read(requested: str, resolved: str, read: str) -> None:
    assert check_read(requested, resolved).allowed
    assert path_to_read(requested, resolved) == read


def test_letters_beyond_ascii_only_in_paths() -> None:
    assert check_readonly(["ls", "-la", "/srv/my files/na\u00efve.txt"]).allowed
    assert check_readonly(["find", "/srv/\u65e5\u672c", "-type", "f"]).allowed
    for argv in (["systemctl", "status", "ngin\u0445"], ["\u0455ystemctl", "status"],
                 ["ls", "--\u0430ll", "/srv"], ["journalctl", "-u", "/srv/ngin\u0445"],
                 ["ls", "/srv/my\u200bfiles"], ["ls", "/srv/\u202egol"]):
        decision = check_readonly(argv)
        assert not decision.allowed and "U+" in decision.reason, argv
        assert not check_command(argv, "remediate").allowed, argv


# -- the tools, on a host that records what runs ----------------------------------------------
class RecordingHost(LocalTransport):
    """Answers readlink -f from a table of links and records every argv; runs nothing."""

    def __init__(self, links: dict[str, str]) -> None:
        super().__init__("testhost")
        self.runs_as_root = False  # reads need no change of identity here
        self.links = links
        self.ran: list[tuple[str, ...]] = []

    async def run(self, argv: Sequence[str], timeout: float = 20.0) -> CommandResult:
        argv = tuple(argv)
        self.ran.append(argv)
        if argv[0].endswith("readlink"):
            return CommandResult(argv, 0, self.links.get(argv[-1], argv[-1]) + "\n", "", 0.0)
        if len(argv) > 3 and argv[3] == read_script.NAME:  # says the opened file's path first
            return CommandResult(argv, 0, f"{argv[-1]}\0output of {argv[-1]}\n", "", 0.0)
        return CommandResult(argv, 0, f"output of {argv[-1]}\n", "", 0.0)


def _call(ctx: ToolContext, name: str, **args: Any) -> Any:
    return asyncio.run(REGISTRY.call(name, args, ctx))


@pytest.fixture
def recording(settings: Settings, store: Any) -> tuple[ToolContext, RecordingHost]:
    host = RecordingHost({
        "/proc/net/dev": "/proc/4242/net/dev",
        "/proc/mounts": "/proc/4242/mounts",
        "/sys/class/net/eth0/statistics/rx_bytes":
            "/sys/devices/pci0000:00/0000:00:03.0/net/eth0/statistics/rx_bytes",
    })
    return ToolContext(settings, {"testhost": host}, "testhost", store), host


@pytest.mark.parametrize(("argv", "runs"), [
    (["systemctl", "status", "nginx"], ["--no-pager", "status", "nginx"]),
    (["journalctl", "-xeu", "nginx"], ["--no-pager", "-xeu", "nginx"]),
    (["systemctl", "--failed"], ["--no-pager", "--failed"]),
    (["uname", "-a"], ["-a"]),
])
def test_run_readonly_runs_it_without_a_pager(recording, argv, runs) -> None:
    ctx, host = recording
    result = _call(ctx, "run_readonly", argv=argv)
    assert result.status == "ok", result.output
    assert list(host.ran[-1][1:]) == runs


@pytest.mark.parametrize(("path", "reads"), [
    ("/proc/net/dev", "/proc/net/dev"),
    ("/proc/mounts", "/proc/mounts"),
    ("/proc/mdstat", "/proc/mdstat"),
    ("/sys/fs/cgroup/system.slice/nginx.service/memory.current",
     "/sys/fs/cgroup/system.slice/nginx.service/memory.current"),
    ("/sys/class/net/eth0/statistics/rx_bytes",
     "/sys/devices/pci0000:00/0000:00:03.0/net/eth0/statistics/rx_bytes"),
    ("/srv/my files/na\u00efve.txt", "/srv/my files/na\u00efve.txt"),
])
def test_read_file_reads_the_right_path(recording, path: str, reads: str) -> None:
    ctx, host = recording
    result = _call(ctx, "read_file", path=path)
    assert result.status == "ok", result.output
    assert host.ran[-1][3] == read_script.NAME and host.ran[-1][-1] == reads


def test_list_directory_of_a_name_with_spaces(recording) -> None:
    ctx, host = recording
    result = _call(ctx, "list_directory", path="/var/log/app log")
    assert result.status == "ok", result.output
    assert host.ran[-1][-1] == "/var/log/app log"


@pytest.mark.parametrize("path", ["/sys/class/net/eth0/device/config", "/sys/kernel/notes",
                                  "/srv/my\u200bfiles/x", "/dev/sda"])
def test_the_rest_of_sys_and_dev_and_invisible_characters_stay_refused(recording,
                                                                      path) -> None:
    ctx, _host = recording
    result = _call(ctx, "read_file", path=path)
    assert result.status == "refused"


# -- this machine ------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "text"), [("/proc/net/dev", "Inter-|"),
                                            ("/proc/mounts", " / ")])
def test_proc_self_links_are_read_on_this_machine(settings, store, path, text) -> None:
    ctx = ToolContext(settings, {"testhost": LocalTransport("testhost")}, "testhost", store)
    result = _call(ctx, "read_file", path=path)
    assert result.status == "ok", result.output
    assert text in result.output
