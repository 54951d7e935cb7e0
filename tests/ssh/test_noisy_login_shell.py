"""Accounts whose login shell prints before every command (a ~/.bashrc that echoes, which bash
sources for sshd's commands too), over real SSH: the model still reads as the unprivileged
identity on a root login, a root login still needs no sudo, and a shell that runs commands is
not called one that refuses them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.agent.context import ToolContext
from ai_sysadmin.agent.tools import REGISTRY
from ai_sysadmin.config import Settings
from ai_sysadmin.errors import CommandRefused
from ai_sysadmin.hosts.ssh import SshTarget, SshTransport

from .conftest import Account, ClientKey, SshHost, accounts, accounts_lab

#: a second uid 0 (a "toor") and an ordinary user, both with bash and a .bashrc that talks
USERS = (Account("loudroot", 0), Account("loud", 3201))
BANNER = 'echo "Last backup: OK"\necho "have a nice day" >&2\n'


@pytest.fixture(scope="module")
def loud_host(client_key: ClientKey) -> Iterator[SshHost]:
    with accounts_lab(client_key, "aisa-loud-") as (netlab, ns, address, homes):
        setup = accounts(homes, USERS)
        for user in USERS:
            (homes / user.name / ".bashrc").write_text(BANNER)
        yield netlab.sshd("loud", ns, [address], setup=setup)


def _model_reads(host: SshHost, known_hosts: Path, tmp_path: Path) -> tuple[str, str]:
    """What the model gets for `id -u` and for listing a directory only root may list, on
    a login as loudroot whose user comes from ~/.ssh/config (as with `use_ssh_config`):
    whether it is root, is asked of the host."""
    kh = host.write_known_hosts(known_hosts)
    assert host.log is not None
    private = host.log.parent / "private"  # in a directory anyone may enter
    private.mkdir(mode=0o700, exist_ok=True)
    (private / "root-only-name-4711").touch()
    config = tmp_path / "ssh_config"
    config.write_text(f"Host web1\n  Hostname {host.address}\n  User loudroot\n"
                      f"  IdentityFile {host.client.private}\n")
    transport = SshTransport(SshTarget(host="web1", ssh_config=config, known_hosts=kh,
                                       connect_timeout=5.0), name="web1")
    ctx = ToolContext(Settings(ai_name="hal", state_dir=tmp_path / "state"),
                      {"web1": transport}, "web1")

    async def go() -> tuple[str, str]:
        try:
            who = await REGISTRY.call("run_readonly", {"argv": ["id", "-u"]}, ctx)
            listed = await REGISTRY.call("run_readonly", {"argv": ["ls", str(private)]}, ctx)
            return who.output, listed.output
        finally:
            await transport.close()

    return asyncio.run(go())


def test_the_model_reads_as_nobody_on_a_root_login_whose_shell_prints(
    loud_host: SshHost, known_hosts: Path, tmp_path: Path
) -> None:
    who, listed = _model_reads(loud_host, known_hosts, tmp_path)
    assert "65534" in who.split() and "0" not in who.split(), who
    # the command's output alone: not what the login shell printed before it
    assert "Last backup" not in who and "nice day" not in who, who
    assert "Permission denied" in listed and "root-only-name" not in listed


def test_a_host_whose_uid_cannot_be_read_is_not_read_at_all(
    client_key: ClientKey, known_hosts: Path, tmp_path: Path
) -> None:
    """An `id` that answers no number (replaced, broken): the model reads nothing there,
    rather than read as whoever the login is."""
    with accounts_lab(client_key, "aisa-noid-") as (netlab, ns, address, homes):
        fake_id = homes.parent / "id"
        fake_id.write_text("#!/bin/sh\necho 'id: cannot find name for user ID 0'\n")
        fake_id.chmod(0o755)
        setup = accounts(homes, USERS) + f"mount --bind {fake_id} /usr/bin/id && "
        host = netlab.sshd("noid", ns, [address], setup=setup)
        who, listed = _model_reads(host, known_hosts, tmp_path)
    for answer in (who, listed):
        assert "web1: cannot tell which user reads there" in answer, answer
    assert "root-only-name" not in listed


def test_a_secret_the_quote_of_a_broken_id_cuts_is_masked_whole(
    client_key: ClientKey, known_hosts: Path, tmp_path: Path
) -> None:
    """The refusal quotes the end of what `id` wrote: a password whose name falls before the
    quoted end is masked, where the cut left "WORD=" and its value in clear."""
    value = "Zq9-Hunter2-s3cr3t"
    # the quote keeps the last 200 characters: the cut falls inside "DB_PASSWORD"
    said = f"id: cannot read /etc/passwd with DB_PASSWORD={value}"
    tail = "WORD=" + said.partition("WORD=")[2]
    filler = " " + "x" * (200 - len(tail) - 1)
    with accounts_lab(client_key, "aisa-noid-") as (netlab, ns, address, homes):
        fake_id = homes.parent / "id"
        fake_id.write_text(f"#!/bin/sh\necho '{said}{filler}'\n")
        fake_id.chmod(0o755)
        setup = accounts(homes, USERS) + f"mount --bind {fake_id} /usr/bin/id && "
        host = netlab.sshd("noid", ns, [address], setup=setup)
        who, _ = _model_reads(host, known_hosts, tmp_path)
    assert "web1: cannot tell which user reads there" in who, who
    assert "Hunter2" not in who and "[redacted]" in who, who


def test_a_secret_the_quote_of_a_refusing_login_shell_cuts_is_masked_whole(
    client_key: ClientKey, known_hosts: Path
) -> None:
    """A login shell that refuses commands is quoted by the end of what it wrote: a password
    whose name falls before the quoted end is masked, where the cut left "WORD=" and its value
    in clear (in `check`'s errors, the daemon's log, a notification)."""
    value = "Zq9-Hunter2-s3cr3t"
    said = f"This account is closed, ask ops (DB_PASSWORD={value}"
    tail = "WORD=" + said.partition("WORD=")[2]
    filler = " " + "x" * (299 - len(tail) - 1)  # the quote keeps "…" and 299 characters
    with accounts_lab(client_key, "aisa-closed-") as (netlab, ns, address, homes):
        shell = homes.parent / "closed-shell"
        shell.write_text(f"#!/bin/sh\necho '{said}{filler}'\nexit 1\n")
        shell.chmod(0o755)
        closed = Account("closed", 3202, str(shell))
        host = netlab.sshd("closed", ns, [address], setup=accounts(homes, [closed]))
        transport = SshTransport(host.target(host.write_known_hosts(known_hosts),
                                             user="closed"), name="web1")

        async def go() -> str:
            try:
                await transport.run(["true"])
            except CommandRefused as exc:
                return str(exc)
            finally:
                await transport.close()
            return "ran"

        refusal = asyncio.run(go())
    assert "the login shell of closed refuses to run commands" in refusal, refusal
    assert "Hunter2" not in refusal and "[redacted]" in refusal, refusal


def test_a_root_login_whose_shell_prints_needs_no_sudo(
    loud_host: SshHost, known_hosts: Path
) -> None:
    kh = loud_host.write_known_hosts(known_hosts)
    as_root = SshTransport(loud_host.target(kh, user="loudroot", sudo=True), name="web1")

    async def go() -> tuple[str, str, tuple[str, ...], list[str]]:
        try:
            done = await as_root.run(["id", "-u"])
            streamed = [line async for line in as_root.stream_lines(["printf", "a\\nb\\n"])]
            return done.stdout, done.stderr, as_root.fix_prefix, streamed
        finally:
            await as_root.close()

    out, err, prefix, streamed = asyncio.run(go())
    # what the command wrote, on each stream, without the banner the shell printed first
    assert (out, err) == ("0\n", "")
    assert streamed == ["a", "b"]
    assert prefix == ()


@pytest.mark.parametrize("user", [u.name for u in USERS])
def test_a_shell_that_prints_and_runs_commands_is_not_called_refusing(
    loud_host: SshHost, known_hosts: Path, user: str
) -> None:
    kh = loud_host.write_known_hosts(known_hosts)
    transport = SshTransport(loud_host.target(kh, user=user), name="web1")

    async def go() -> int:
        try:
            # the connection's first command fails (an inactive unit's exit 3): its own
            # answer, not the login shell refusing
            return (await transport.run(["sh", "-c", "exit 3"])).returncode
        finally:
            await transport.close()

    assert asyncio.run(go()) == 3


#: a uid 0 and an ordinary user whose ~/.bashrc sets the terminal's title, as many do: text
#: with no line break of its own, so the first line of every command's output starts with it
TITLED = (Account("titledroot", 0), Account("titled", 3203))
TITLE = "printf '\\033]0;%s@%s\\007' \"$USER\" \"$(hostname)\"\n"


@pytest.fixture(scope="module")
def titled_host(client_key: ClientKey) -> Iterator[SshHost]:
    with accounts_lab(client_key, "aisa-titled-") as (netlab, ns, address, homes):
        setup = accounts(homes, TITLED)
        for user in TITLED:
            (homes / user.name / ".bashrc").write_text(TITLE)
        yield netlab.sshd("titled", ns, [address], setup=setup)


@pytest.mark.parametrize("user", [u.name for u in TITLED])
def test_a_first_command_that_fails_under_a_shell_that_sets_a_title_gives_its_own_answer(
    titled_host: SshHost, known_hosts: Path, user: str
) -> None:
    """The connection's first command fails: the shell is asked to echo once, and its echo
    comes on the title's line. The command's exit status and output are the answer, not a
    login shell said to refuse to run commands."""
    kh = titled_host.write_known_hosts(known_hosts)
    transport = SshTransport(titled_host.target(kh, user=user), name="web1")

    async def go() -> tuple[int, str, str]:
        try:
            done = await transport.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
            return done.returncode, done.stdout, done.stderr
        finally:
            await transport.close()

    assert asyncio.run(go()) == (3, "out\n", "err\n")


def test_a_root_login_whose_shell_sets_a_title_needs_no_sudo(
    titled_host: SshHost, known_hosts: Path
) -> None:
    """Whether the login is root is read after a marker the title's text comes before."""
    kh = titled_host.write_known_hosts(known_hosts)
    as_root = SshTransport(titled_host.target(kh, user="titledroot", sudo=True), name="web1")

    async def go() -> tuple[str, tuple[str, ...], list[str]]:
        try:
            done = await as_root.run(["id", "-u"])
            streamed = [line async for line in as_root.stream_lines(["printf", "a\\nb\\n"])]
            return done.stdout, as_root.fix_prefix, streamed
        finally:
            await as_root.close()

    assert asyncio.run(go()) == ("0\n", (), ["a", "b"])
