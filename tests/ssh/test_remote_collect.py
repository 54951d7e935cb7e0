"""A whole check over SSH in one round trip: the fault lab's real systemd behind a real sshd."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import TransportError
from ai_sysadmin.hosts.ssh import SshTransport
from ai_sysadmin.hosts.transport import CommandResult
from ai_sysadmin.lab.sandbox import Sandbox
from ai_sysadmin.lab.transport import SandboxTransport
from ai_sysadmin.monitor.collector import Collector, JournalQuery
from ai_sysadmin.monitor.rules import RuleContext, evaluate
from ai_sysadmin.monitor.snapshot import Snapshot
from tests.lab.conftest import judged_in

from .conftest import Hosts, LabHost, wait_until

BROKEN_UNIT = """\
[Unit]
Description=a unit that fails on start (SSH test)

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo cannot open /etc/remote-broken.conf >&2; exit 3'
"""


class CountingSsh(SshTransport):
    """The real transport, counting the remote commands and scripts a check costs."""

    calls: int = 0

    async def run(self, argv: Sequence[str], timeout: float = 20.0) -> CommandResult:
        self.calls += 1
        return await super().run(argv, timeout)

    async def run_script(self, script: str, done: str, timeout: float,
                         answer_within: float | None = None) -> CommandResult:
        self.calls += 1
        return await super().run_script(script, done, timeout, answer_within)


def collect(transport: SshTransport | SandboxTransport, settings: Settings,
            journal: JournalQuery | None = None) -> Snapshot:
    async def go() -> Snapshot:
        try:
            return await Collector(transport, settings).collect(journal)
        finally:
            await transport.close()

    return asyncio.run(go())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(ai_name="sshtest", state_dir=tmp_path / "state")


@pytest.mark.lab
def test_a_failed_unit_on_a_remote_host_is_detected_in_one_round_trip(
    lab_host: LabHost, known_hosts: Path, settings: Settings
) -> None:
    sb, host = lab_host.sandbox, lab_host.ssh
    sb.write_file("/etc/systemd/system/remote-broken.service", BROKEN_UNIT)
    sb.exec(["systemctl", "daemon-reload"], check=True)
    sb.exec(["systemctl", "start", "remote-broken.service"])  # fails, as it should
    ssh = CountingSsh(host.target(host.write_known_hosts(known_hosts)), name="sshlab")
    snapshot = collect(ssh, settings)
    assert ssh.calls == 1  # the whole Snapshot in one remote command
    assert snapshot.errors == {} and snapshot.host == "sshlab" and snapshot.systemd_running
    # judged against an earlier look, as every check after a checker's first is
    later = collect(ssh, settings)
    assert ssh.calls == 2
    # as every interval check is once the checker has looked runaway_min_seconds (a second
    # at the least) long
    snapshot.taken_at -= max(settings.thresholds.runaway_min_seconds, 1.0)
    findings, judged = evaluate(RuleContext(later, settings.thresholds, previous=snapshot))
    assert judged == judged_in(sb)
    failed = [f for f in findings if f.rule == "failed_unit"]
    assert [f.subject for f in failed] == ["remote-broken.service"]
    assert failed[0].host == "sshlab"


def _warn(sb: Sandbox, text: str) -> str:
    """Log a warning in the lab and wait until journald has it; returns its cursor."""
    sb.exec(["logger", "-p", "user.warning", "-t", "ssh-equivalence", text], check=True)
    found: list[str] = []

    def logged() -> bool:
        out = sb.exec(["journalctl", "--no-pager", "-o", "json", "--output-fields=MESSAGE",
                       "-t", "ssh-equivalence", f"MESSAGE={text}"]).stdout
        found[:] = [line for line in out.splitlines() if line.strip()]
        return bool(found)

    wait_until(logged, f"{text!r} in the lab's journal")
    return str(json.loads(found[-1])["__CURSOR"])


@pytest.mark.lab
def test_one_round_trip_gives_the_snapshot_of_the_per_command_path(
    lab_host: LabHost, known_hosts: Path, settings: Settings
) -> None:
    sb, host = lab_host.sandbox, lab_host.ssh
    start = _warn(sb, "equivalence start")
    _warn(sb, "equivalence one")
    _warn(sb, "equivalence two")
    query = JournalQuery(after_cursor=start)
    kh = host.write_known_hosts(known_hosts)
    # a certificate that is there and one that is not: both are facts, read alike
    sb.exec(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
             "-subj", "/CN=twin.lab", "-keyout", "/etc/twin.key", "-out", "/etc/twin.pem"],
            check=True)
    settings = settings.model_copy(update={"certificates": ["/etc/twin.pem", "/etc/gone.pem"]})
    over_ssh = collect(SshTransport(host.target(kh), name="sdtest-twin"), settings, query)
    local = collect(SandboxTransport(sb), settings, query)

    assert over_ssh.errors == {} and local.errors == {}
    # the same facts, read by the same parsers
    for name in ("os", "systemd_running", "nixos_generation", "journal", "journal_cursor",
                 "restarts", "service_results", "core_dumps", "zombies", "certificates"):
        assert getattr(over_ssh, name) == getattr(local, name), name
    assert [(c.subject, c.error) for c in over_ssh.certificates or []] == [
        ("CN = twin.lab", None), ("", "no such file")]
    assert [e.message for e in over_ssh.journal or []][-2:] == ["equivalence one",
                                                               "equivalence two"]
    assert over_ssh.units == local.units
    assert over_ssh.cpu and local.cpu and over_ssh.cpu.cores == local.cpu.cores
    assert over_ssh.memory and local.memory
    assert over_ssh.memory.total_kb == local.memory.total_kb
    assert (over_ssh.memory.psi_some_avg60 is None) == (local.memory.psi_some_avg60 is None)
    assert over_ssh.swap is not None and over_ssh.load is not None
    assert abs((over_ssh.uptime_seconds or 0) - (local.uptime_seconds or 0)) < 60
    mounts = lambda s: [(m.target, m.fstype, m.size_bytes) for m in s.mounts or []]  # noqa: E731
    assert mounts(over_ssh) == mounts(local)
    # processes: the same ones, but for sshd's sessions and the commands of each path
    ssh_pids = {p.pid: p.command for p in over_ssh.processes or []}
    local_pids = {p.pid: p.command for p in local.processes or []}
    assert 1 in ssh_pids and ssh_pids[1] == local_pids.get(1)
    script_parts = [c for c in ssh_pids.values()
                    if "@@ai-sysadmin-" in c or c.startswith("timeout -k ")]
    assert not script_parts


@pytest.mark.lab
def test_first_check_takes_a_journal_position_over_ssh(
    lab_host: LabHost, known_hosts: Path, settings: Settings
) -> None:
    host = lab_host.ssh
    snapshot = collect(SshTransport(host.target(host.write_known_hosts(known_hosts))), settings)
    assert snapshot.errors == {}
    assert snapshot.journal is not None and snapshot.journal_cursor


def test_an_unreachable_host_is_one_finding_and_fast(
    ssh_hosts: Hosts, known_hosts: Path, settings: Settings
) -> None:
    good = ssh_hosts.alpha
    dead = SshTransport(
        good.target(good.write_known_hosts(known_hosts), host=ssh_hosts.blackhole,
                    connect_timeout=1.0),
        name="gone",
    )
    started = time.monotonic()
    snapshot = collect(dead, settings)
    assert time.monotonic() - started < 2.5
    assert {"cpu", "memory", "units", "processes", "mounts"} <= set(snapshot.errors)
    assert "no SSH connection" in snapshot.errors["cpu"]
    findings, judged = evaluate(RuleContext(snapshot, settings.thresholds))
    # no certificate is configured: none is unknown (the only rule that needs no answer)
    assert judged == {"host_unreachable", "certificate_expiry"}
    assert [(f.rule, f.subject) for f in findings] == [("host_unreachable", "gone")]


def _shells(sb: Sandbox) -> list[str]:
    """The pids of long-lived check shells on the lab host."""
    return sb.exec(["pgrep", "-x", "-f", "sh -s"]).stdout.split()


@pytest.mark.lab
def test_checks_share_one_remote_shell_which_is_replaced_when_it_dies(
    lab_host: LabHost, known_hosts: Path, settings: Settings
) -> None:
    sb, host = lab_host.sandbox, lab_host.ssh
    ssh = SshTransport(host.target(host.write_known_hosts(known_hosts)), name="sshlab")

    async def checks() -> list[tuple[Snapshot, list[str]]]:
        seen = []
        try:
            for n in range(3):
                if n == 2:
                    sb.exec(["pkill", "-x", "-f", "sh -s"], check=True)  # killed between checks
                snapshot = await Collector(ssh, settings).collect()
                seen.append((snapshot, _shells(sb)))
        finally:
            await ssh.close()
        return seen

    (first, one), (second, same), (third, fresh) = asyncio.run(checks())
    assert first.errors == second.errors == third.errors == {}
    assert len(one) == 1 and same == one  # no new SSH session for the second check
    assert len(fresh) == 1 and fresh != one  # a dead shell is replaced, the check goes on
    listed = " ".join(p.command for p in first.processes or [])
    assert "sh -s" not in listed  # the check's own shell is not one of the host's processes
    wait_until(lambda: not _shells(sb), "the shell to end with its connection")


def _fails_then_next_runs(lab_host: LabHost, known_hosts: Path, script: str, timeout: float,
                          match: str) -> tuple[str, str]:
    """``script`` fails over the lab's SSH with ``match``; then a plain script's output on a
    fresh shell."""
    host = lab_host.ssh
    ssh = SshTransport(host.target(host.write_known_hosts(known_hosts)), name="sshlab")
    done = "@@test done"
    ending = f"printf '\\n%s\\n' '{done}'; printf '\\n%s\\n' '{done}' >&2\n"

    async def go() -> tuple[str, str]:
        try:
            with pytest.raises(TransportError, match=match):
                await ssh.run_script(script + ending, done, timeout)
            result = await ssh.run_script("echo out; echo err >&2\n" + ending, done, 10)
        finally:
            await ssh.close()
        return result.stdout, result.stderr

    return asyncio.run(go())


@pytest.mark.lab
def test_a_script_that_overruns_costs_its_shell_and_the_next_one_runs(
    lab_host: LabHost, known_hosts: Path
) -> None:
    out, err = _fails_then_next_runs(lab_host, known_hosts, "timeout 3 sleep 30\n", 0.5,
                                     "timed out after 0.5 s")
    assert out == "out\n\n" and err == "err\n\n"


@pytest.mark.lab
def test_a_reply_past_its_limit_fails_the_check_and_the_next_one_runs(
    lab_host: LabHost, known_hosts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a host's users choose what ps lists (128 KiB of arguments a process): a reply is
    # bounded, or one check could take the daemon's memory (the limit made small here)
    from ai_sysadmin.hosts import ssh as ssh_module

    monkeypatch.setattr(ssh_module, "MAX_REPLY", 256 * 1024)
    out, err = _fails_then_next_runs(lab_host, known_hosts,
                                     "head -c 4000000 /dev/zero | tr '\\0' x\n", 20,
                                     "the check's reply passed 0.25 MiB")
    assert out == "out\n\n" and err == "err\n\n"


@pytest.mark.lab
def test_a_hung_command_over_ssh_costs_its_section_and_makes_the_next_checks_careful(
    lab_host: LabHost, known_hosts: Path, tmp_path: Path
) -> None:
    sb, host = lab_host.sandbox, lab_host.ssh
    # a remote host runs programs by their bare names (programs.* are this machine's paths):
    # a hung df first on the remote PATH (sshd's default puts /usr/local/bin before /usr/bin)
    sb.write_file("/usr/local/bin/df", "#!/bin/sh\nexec sleep 31\n", 0o755)
    # long enough for every other command on a busy machine (systemctl list-unit-files in
    # the lab takes over a second there), far shorter than the hung one
    settings = Settings(ai_name="sshtest", state_dir=tmp_path / "state", command_timeout=3)
    ssh = CountingSsh(host.target(host.write_known_hosts(known_hosts)), name="sshlab")
    collector = Collector(ssh, settings)

    async def two_checks() -> list[tuple[Snapshot, int]]:
        seen = []
        try:
            for _ in range(2):
                before = ssh.calls
                seen.append((await collector.collect(), ssh.calls - before))
        finally:
            await ssh.close()
        return seen

    try:
        (first, first_scripts), (second, second_scripts) = asyncio.run(two_checks())
    finally:
        sb.exec(["rm", "-f", "/usr/local/bin/df"])
        sb.exec(["pkill", "-f", "sleep 31"])
    for snapshot in (first, second):
        assert set(snapshot.errors) == {"mounts"}
        assert "timed out after 3 s" in snapshot.errors["mounts"]
        assert snapshot.units and snapshot.processes and snapshot.cpu is not None
    # the first check ran without per-command timeouts, overran, and was run again carefully;
    # the next one is careful from the start
    assert (first_scripts, second_scripts) == (2, 1)
