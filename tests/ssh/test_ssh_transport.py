"""The SSH transport against real sshd processes, each in its own network namespace."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ai_sysadmin.aio import within
from ai_sysadmin.errors import CommandTimeout, NotStarted, ProgramMissing, TransportError
from ai_sysadmin.hosts.ssh import HostKeyError, SshTarget, SshTransport
from tests.support.polling import until

from .conftest import Hosts, LabHost, wait_until


def run(coro):
    return asyncio.run(coro)


async def _using(transport: SshTransport, coro):
    try:
        return await coro
    finally:
        await transport.close()


def test_run_keeps_every_argument_and_both_streams(ssh_hosts: Hosts, known_hosts: Path) -> None:
    host = ssh_hosts.alpha
    ssh = SshTransport(host.target(host.write_known_hosts(known_hosts)), name="alpha")

    async def scenario() -> None:
        odd = ["a b", "it's", "$HOME", "`id`", ";rm -rf x", "", "*", "\u00e9"]
        printed = await ssh.run(["printf", "%s|", *odd])
        assert printed.ok and printed.stdout == "".join(f"{a}|" for a in odd)
        both = await ssh.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert (both.returncode, both.stdout, both.stderr) == (3, "out\n", "err\n")
        assert both.argv == ("sh", "-c", "echo out; echo err >&2; exit 3")
        assert await ssh.read_file(str(host.host_key_pub)) == host.host_key_pub.read_text()
        assert await ssh.read_file("/nonexistent/file") is None
        with pytest.raises(ProgramMissing, match="alpha: cannot start 'no-such-program'"):
            await ssh.run(["no-such-program", "x"])
        lines = [line async for line in ssh.stream_lines(["printf", "one\\ntwo\\n"])]
        assert lines == ["one", "two"]

    run(_using(ssh, scenario()))


def test_one_connection_is_reused_and_reopened_when_lost(
    ssh_hosts: Hosts, known_hosts: Path
) -> None:
    host = ssh_hosts.beta
    ssh = SshTransport(host.target(host.write_known_hosts(known_hosts)))
    before = host.accepted_logins()

    async def scenario() -> None:
        for _ in range(3):
            assert (await ssh.run(["true"])).ok
        results = await asyncio.gather(*(ssh.run(["echo", str(i)]) for i in range(12)))
        assert [r.stdout for r in results] == [f"{i}\n" for i in range(12)]
        assert ssh.connects == 1
        assert host.accepted_logins() - before == 1  # what sshd itself saw
        # the connection dies under us (sshd's per-connection process is killed)
        for pid in host.session_pids():
            os.kill(pid, 9)
        wait_until(lambda: not host.session_pids(), "the session process gone")
        assert (await ssh.run(["echo", "again"])).stdout == "again\n"
        assert ssh.connects == 2 and host.accepted_logins() - before == 2

    run(_using(ssh, scenario()))


def test_concurrency_limit_per_host(ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path) -> None:
    host = ssh_hosts.alpha
    ssh = SshTransport(host.target(host.write_known_hosts(known_hosts), max_concurrent=2))
    # the namespace host shares this file system: each command counts who runs beside it
    board = tmp_path / "running"
    board.mkdir()
    probe = f'touch {board}/$$; sleep 0.3; ls {board} | wc -l; rm {board}/$$'

    async def scenario() -> list[int]:
        results = await asyncio.gather(*(ssh.run(["sh", "-c", probe]) for _ in range(6)))
        return [int(r.stdout) for r in results]

    seen = run(_using(ssh, scenario()))
    assert max(seen) == 2, seen


def test_a_followed_stream_leaves_the_command_slots_to_commands(
        ssh_hosts: Hosts, known_hosts: Path) -> None:
    # the journal follower holds its stream for as long as the daemon runs
    host = ssh_hosts.alpha
    ssh = SshTransport(host.target(host.write_known_hosts(known_hosts), max_concurrent=1))

    async def scenario() -> str:
        lines = ssh.stream_lines(["sh", "-c", "echo ready; exec sleep 60"])
        assert await anext(lines) == "ready"  # being followed now
        try:
            # bounded here too: waiting for a slot comes before a command's own timeout
            return (await asyncio.wait_for(ssh.run(["echo", "still runs"], timeout=5),
                                           10)).stdout
        finally:
            await lines.aclose()

    assert run(_using(ssh, scenario())) == "still runs\n"


def _sleeping(seconds: str) -> list[str]:
    """The processes of ``sleep SECONDS`` (the test hosts share this PID namespace)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (entry / "cmdline").read_bytes() == f"sleep\0{seconds}\0".encode():
                found.append(entry.name)
        except OSError:
            continue
    return found


def test_a_stopped_stream_ends_its_remote_command_on_a_root_login(
        ssh_hosts: Hosts, known_hosts: Path) -> None:
    # sshd sends the commands of a root login no signal, and a follower's journalctl on a
    # quiet host writes nothing for days (no SIGPIPE either): each stop (a host renewed, a
    # daemon restarted) would leave one more running on the host
    host = ssh_hosts.alpha
    ssh = SshTransport(host.target(host.write_known_hosts(known_hosts)), name="alpha")
    quiet = "31.71"  # a sleep no one else runs

    async def scenario() -> None:
        for _ in range(2):
            lines = ssh.stream_lines(["sh", "-c", f"echo ready; exec sleep {quiet}"])
            assert await anext(lines) == "ready"
            await until(lambda: _sleeping(quiet), what="the streamed command to run")
            await lines.aclose()

    run(_using(ssh, scenario()))
    wait_until(lambda: not _sleeping(quiet), "the stopped streams' commands to end",
               timeout=5)


def test_command_timeout_kills_the_remote_command(ssh_hosts: Hosts, known_hosts: Path) -> None:
    host = ssh_hosts.alpha
    ssh = SshTransport(host.target(host.write_known_hosts(known_hosts)), name="alpha")
    marker = "41.73"  # a sleep no one else runs

    def remote_sleeps() -> list[str]:
        return _sleeping(marker)

    async def scenario() -> float:
        started = time.monotonic()
        with pytest.raises(TransportError,
                           match=r"alpha: 'sleep 41.73' timed out after 0.5 s") as caught:
            await ssh.run(["sleep", marker], timeout=0.5)
        # it was sent, and ran: a fix that hung is one that ran (and failed)
        assert not isinstance(caught.value, NotStarted)
        elapsed = time.monotonic() - started
        assert (await ssh.run(["echo", "still usable"])).ok
        return elapsed

    elapsed = run(_using(ssh, scenario()))
    assert elapsed < 3
    wait_until(lambda: not remote_sleeps(), "the remote sleep killed", timeout=5)


def test_a_frozen_host_times_out_a_command_and_is_connected_afresh_after(
    ssh_hosts: Hosts, known_hosts: Path
) -> None:
    """A host that froze (or a partition that sends no reset) on an open connection: the
    session is never opened, and only the keepalive would notice, minutes later. A command
    and a check script still end at their timeout; once the host answers again, the next
    command connects afresh instead of waiting on the dead connection."""
    host = ssh_hosts.beta
    kh = host.write_known_hosts(known_hosts)
    command = SshTransport(host.target(kh), name="beta")
    check = SshTransport(host.target(kh), name="beta")
    frozen: list[int] = []

    async def scenario() -> None:
        assert (await command.run(["true"])).ok
        assert (await check.run(["true"])).ok  # connected, its check shell not started yet
        frozen.extend(host.session_pids())  # sshd's process of each connection
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        # 30 s: far below the keepalive's 90 s, far above the 2 s asked
        ran, checked = await within(asyncio.gather(
            command.run(["echo", "x"], timeout=2), check.run_script("echo", "done", 2),
            return_exceptions=True), 30)
        assert isinstance(ran, CommandTimeout), ran
        assert str(ran).startswith("beta: 'echo x' timed out after 2 s")
        assert isinstance(checked, CommandTimeout), checked
        assert str(checked).startswith("beta: the check script timed out after 2 s")
        assert time.monotonic() - started < 30
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        assert (await command.run(["echo", "again"])).stdout == "again\n"
        assert command.connects == 2

    try:
        run(_using(command, _using(check, scenario())))
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def test_an_unreachable_host_does_not_slow_the_others(
    ssh_hosts: Hosts, known_hosts: Path
) -> None:
    good = ssh_hosts.alpha
    kh = good.write_known_hosts(known_hosts)
    healthy = SshTransport(good.target(kh), name="healthy")
    # the dead host's connect timeout is what the others would wait out if they waited: long
    # enough that a busy machine's slow healthy check stays well clear of it
    dead = SshTransport(good.target(kh, host=ssh_hosts.blackhole, connect_timeout=3.0),
                        name="dead")
    refused = SshTransport(good.target(kh, host=ssh_hosts.refused), name="refused")
    started = time.monotonic()
    finished: dict[str, float] = {}

    async def timed(name: str, transport: SshTransport) -> object:
        try:
            return await transport.run(["echo", "ok"])
        except TransportError as exc:
            return exc
        finally:
            finished[name] = time.monotonic() - started
            await transport.close()

    async def scenario() -> list[object]:
        return await asyncio.gather(
            timed("dead", dead), timed("refused", refused), timed("healthy", healthy)
        )

    dead_result, refused_result, healthy_result = run(scenario())
    assert healthy_result.stdout == "ok\n"  # type: ignore[union-attr]
    # neither got the command: a fix that meets one ran nothing
    assert isinstance(dead_result, NotStarted)
    assert str(dead_result).startswith("dead: no SSH connection to root@")
    assert "within 3 s" in str(dead_result)
    assert isinstance(refused_result, NotStarted)
    assert str(refused_result).startswith("refused: connection refused (root@")
    assert finished["healthy"] < 2.5 < 2.9 < finished["dead"] < 6.0, finished
    assert finished["refused"] < 2.5, finished


def test_a_changed_host_key_is_refused_and_nothing_runs(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    alpha, beta = ssh_hosts.alpha, ssh_hosts.beta
    # known_hosts holds beta's key under alpha's address: alpha's real key is "wrong"
    forged = beta.known_hosts_line.replace(beta.address, alpha.address, 1)
    known_hosts.write_text(forged)
    ran = tmp_path / "ran"
    for tofu in (False, True):  # trust on first use never overrides a known key
        ssh = SshTransport(alpha.target(known_hosts, trust_on_first_use=tofu), name="alpha")
        with pytest.raises(HostKeyError) as caught:
            run(_using(ssh, ssh.run(["touch", str(ran)])))
        message = str(caught.value)
        assert isinstance(caught.value, NotStarted)  # a fix it stops ran nothing
        assert message.startswith("alpha: HOST KEY MISMATCH for 10.231.")
        assert alpha.fingerprint in message and alpha.address in message
        assert f"ssh-keygen -R '{alpha.address}' -f {known_hosts}" in message
    assert not ran.exists()
    assert known_hosts.read_text() == forged


def test_a_host_key_of_another_type_is_refused(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    alpha = ssh_hosts.alpha
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", str(tmp_path / "other")],
                   check=True, timeout=10)
    alg, b64 = (tmp_path / "other.pub").read_text().split()[:2]
    known_hosts.write_text(f"{alpha.address} {alg} {b64}\n")
    ssh = SshTransport(alpha.target(known_hosts, trust_on_first_use=True), name="alpha")
    with pytest.raises(HostKeyError) as caught:
        run(_using(ssh, ssh.run(["true"])))
    assert str(caught.value).startswith("alpha: HOST KEY MISMATCH for 10.231.")
    assert alpha.fingerprint in str(caught.value)


def test_unknown_host_refused_unless_trust_on_first_use(
    ssh_hosts: Hosts, known_hosts: Path
) -> None:
    host = ssh_hosts.beta
    ssh = SshTransport(host.target(known_hosts), name="beta")
    with pytest.raises(HostKeyError) as caught:
        run(_using(ssh, ssh.run(["true"])))
    assert "beta: unknown host key for" in str(caught.value)
    assert host.fingerprint in str(caught.value)
    assert not known_hosts.exists()  # nothing recorded

    tofu = SshTransport(host.target(known_hosts, trust_on_first_use=True))
    assert run(_using(tofu, tofu.run(["echo", "hi"]))).stdout == "hi\n"
    assert known_hosts.read_text() == host.known_hosts_line  # recorded, port 22 plain
    assert oct(known_hosts.stat().st_mode & 0o777) == "0o600"
    # from now on the recorded key is simply trusted
    strict = SshTransport(host.target(known_hosts))
    assert run(_using(strict, strict.run(["echo", "again"]))).stdout == "again\n"


def test_a_stray_line_in_known_hosts_is_skipped_as_ssh_skips_it(
    ssh_hosts: Hosts, known_hosts: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One host name alone on a line (a half-deleted entry), a comment in Latin-1 and a
    misspelt marker: ssh ignores them, and so must every check of every host."""
    host = ssh_hosts.alpha
    known_hosts.write_bytes(b"oldhost.example.com\n# caf\xe9 in the basement\n"
                            + host.known_hosts_line.encode()
                            + b"@cert-authorty *.example.com ssh-ed25519 AAAAC3NzaC1lZDI1\n")
    ssh = SshTransport(host.target(known_hosts), name="alpha")
    with caplog.at_level(logging.WARNING, logger="ai_sysadmin.service"):
        assert run(_using(ssh, ssh.run(["echo", "ok"]))).stdout == "ok\n"
    said = [r.getMessage() for r in caplog.records if str(known_hosts) in r.getMessage()]
    # the file and the lines, never a key
    assert said == [f"{known_hosts}: skipped line(s) 1, 4: not a known_hosts entry"]

    # the key check itself is as strict as ever: the stray lines trust nothing
    known_hosts.write_text("oldhost.example.com\n")
    with pytest.raises(HostKeyError, match="alpha: unknown host key for"):
        run(_using(ssh, ssh.run(["true"])))


def test_a_key_file_under_an_unknown_home_is_the_hosts_error(
    ssh_hosts: Hosts, known_hosts: Path
) -> None:
    host = ssh_hosts.alpha
    ssh = SshTransport(host.target(host.write_known_hosts(known_hosts),
                                   key_files=("~no-such-user-aisa/.ssh/id_ed25519",)),
                       name="alpha")
    said = "alpha: the SSH key file ~no-such-user-aisa/.ssh/id_ed25519 cannot be used: "
    with pytest.raises(TransportError, match=f"{said}.*home directory"):
        run(_using(ssh, ssh.run(["true"])))


def test_jump_host_from_an_ssh_config_file(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    jump, inner = ssh_hosts.jump, ssh_hosts.inner
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host inner-box\n  Hostname {inner.address}\n  User root\n"
        f"  IdentityFile {inner.client.private}\n  ProxyJump jumpbox\n"
        f"Host jumpbox\n  Hostname {jump.address}\n  User root\n"
        f"  IdentityFile {jump.client.private}\n"
    )
    inner.write_known_hosts(known_hosts, jump)
    ssh = SshTransport(SshTarget(host="inner-box", ssh_config=config, known_hosts=known_hosts,
                                 connect_timeout=5.0))
    addresses = run(_using(ssh, ssh.run(["ip", "-o", "-4", "addr", "show"]))).stdout
    # only reachable through the jump host's namespace: this ran on the inner host
    assert inner.address in addresses and jump.address not in addresses

    # the jump host's key is checked as strictly as the target's
    inner.write_known_hosts(known_hosts)
    ssh = SshTransport(SshTarget(host="inner-box", ssh_config=config, known_hosts=known_hosts,
                                 connect_timeout=5.0))
    with pytest.raises(HostKeyError, match=rf"inner-box \(via jump host jumpbox\): unknown host "
                       rf"key for {jump.address}: .*{re.escape(jump.fingerprint)}"):
        run(_using(ssh, ssh.run(["true"])))


def test_explicit_jump_host(ssh_hosts: Hosts, known_hosts: Path) -> None:
    jump, inner = ssh_hosts.jump, ssh_hosts.inner
    kh = inner.write_known_hosts(known_hosts, jump)
    ssh = SshTransport(inner.target(kh, jump=f"root@{jump.address}:22"))
    assert run(_using(ssh, ssh.run(["echo", "via"]))).stdout == "via\n"


def test_a_jump_host_written_as_an_ssh_uri(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    """``ProxyJump ssh://root@host:22``, as ssh_config(5) allows: the login is root's, not
    a user called "ssh://root"; a port that is no port names the jump host, no traceback."""
    jump, inner = ssh_hosts.jump, ssh_hosts.inner
    kh = inner.write_known_hosts(known_hosts, jump)
    config = tmp_path / "ssh_config"

    def through(proxy_jump: str) -> SshTransport:
        config.write_text(f"Host inner-box\n  Hostname {inner.address}\n  User root\n"
                          f"  IdentityFile {inner.client.private}\n  ProxyJump {proxy_jump}\n")
        return SshTransport(SshTarget(host="inner-box", ssh_config=config, known_hosts=kh,
                                      key_files=(str(inner.client.private),),
                                      connect_timeout=5.0), name="inner-box")

    ssh = through(f"ssh://root@{jump.address}:22")
    addresses = run(_using(ssh, ssh.run(["ip", "-o", "-4", "addr", "show"]))).stdout
    assert inner.address in addresses  # it ran on the host behind the jump host
    ssh = through(f"root@{jump.address}:22x")
    with pytest.raises(TransportError, match=rf"^inner-box: invalid jump host "
                       rf"'root@{re.escape(jump.address)}:22x': the port is not a number"):
        run(_using(ssh, ssh.run(["true"])))


@pytest.mark.lab
def test_sudo_on_the_remote_side(lab_host: LabHost, known_hosts: Path) -> None:
    sb, host = lab_host.sandbox, lab_host.ssh
    # "*": no password, yet not a locked account (sshd refuses those without PAM)
    sb.exec(["useradd", "--create-home", "--password", "*", "halops"], check=True)
    sb.write_file("/etc/sudoers.d/halops", "halops ALL=(ALL) NOPASSWD: ALL\n", 0o440)
    kh = host.write_known_hosts(known_hosts)
    plain = SshTransport(host.target(kh, user="halops"))
    assert run(_using(plain, plain.run(["id", "-un"]))).stdout == "halops\n"
    elevated = SshTransport(host.target(kh, user="halops", sudo=True))

    async def scenario() -> tuple[str, str, tuple[str, ...]]:
        # checks and reads run as the login user: sudo = true is for fixes alone
        who = await elevated.run(["id", "-un"])
        fixing = await elevated.run([*elevated.fix_prefix, "id", "-un"])
        return who.stdout, fixing.stdout, elevated.fix_prefix

    assert run(_using(elevated, scenario())) == ("halops\n", "root\n", ("sudo", "-n", "--"))
    # root needs no sudo: a fix goes as it is
    as_root = SshTransport(host.target(kh, sudo=True))

    async def root_scenario() -> tuple[str, tuple[str, ...]]:
        out = (await as_root.run(["id", "-un"])).stdout
        return out, as_root.fix_prefix

    assert run(_using(as_root, root_scenario())) == ("root\n", ())


def test_connections_do_not_outlive_their_event_loop(
    ssh_hosts: Hosts, known_hosts: Path
) -> None:
    host = ssh_hosts.alpha
    ssh = SshTransport(host.target(host.write_known_hosts(known_hosts)))
    assert run(ssh.run(["echo", "1"])).stdout == "1\n"
    # a second asyncio.run (as a CLI command would do) gets a fresh connection, not a dead one
    assert run(_using(ssh, ssh.run(["echo", "2"]))).stdout == "2\n"



def test_the_cipher_setting_is_used_and_a_bad_one_is_named(
    ssh_hosts: Hosts, known_hosts: Path
) -> None:
    host = ssh_hosts.alpha
    known = host.write_known_hosts(known_hosts)
    only_ctr = SshTransport(host.target(known, ciphers="aes128-ctr"), name="alpha")
    done = run(_using(only_ctr, only_ctr.run(["echo", "over aes128-ctr"])))
    assert done.stdout == "over aes128-ctr\n"

    unknown = SshTransport(host.target(known, ciphers="rot13"), name="alpha")
    with pytest.raises(TransportError, match=r"alpha: invalid SSH settings: .*rot13"):
        run(_using(unknown, unknown.run(["true"])))


def test_a_command_that_prints_without_end_is_stopped_at_the_output_limit(
        ssh_hosts: Hosts, known_hosts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model's bare `journalctl` on a host with years of journal: what a command prints is
    read up to MAX_OUTPUT, then the command is stopped; memory holds no more, and the
    connection serves the next command."""
    from ai_sysadmin.hosts import transport

    monkeypatch.setattr(transport, "MAX_OUTPUT", 1 << 20)
    host = ssh_hosts.alpha
    ssh = SshTransport(host.target(host.write_known_hosts(known_hosts)), name="alpha")

    async def scenario() -> None:
        printing = ["sh", "-c", "head -c 3000000 /dev/zero; exec sleep 58.31"]
        with pytest.raises(TransportError, match=r"alpha: 'sh -c head .*' printed more than 1 MiB"):
            await ssh.run(printing, timeout=30)
        assert (await ssh.run(["echo", "still usable"])).stdout == "still usable\n"
        under = await ssh.run(["head", "-c", "1000000", "/dev/zero"])
        assert under.ok and len(under.stdout) == 1_000_000

    started = time.monotonic()
    run(_using(ssh, scenario()))
    assert time.monotonic() - started < 10


def test_a_lower_limit_a_caller_sets_stops_a_command_over_ssh_too(
        ssh_hosts: Hosts, known_hosts: Path) -> None:
    """The model's reads keep a megabyte of an output: within ``output_limit`` a command is
    stopped at its limit, not at MAX_OUTPUT, and the limit ends with the block."""
    from ai_sysadmin.hosts.transport import output_limit

    host = ssh_hosts.alpha
    ssh = SshTransport(host.target(host.write_known_hosts(known_hosts)), name="alpha")

    async def scenario() -> None:
        printing = ["head", "-c", "3000000", "/dev/zero"]
        with output_limit(1 << 20), pytest.raises(
                TransportError, match=r"alpha: 'head -c 3000000 /dev/zero' printed more than "
                                      r"1 MiB: stopped; ask for less"):
            await ssh.run(printing, timeout=30)
        whole = await ssh.run(printing, timeout=30)
        assert whole.ok and len(whole.stdout) == 3_000_000

    run(_using(ssh, scenario()))
