"""Every argv reaches the remote program as it was given, whatever the login's shell is (sshd
hands the command line to it): over real SSH, to accounts whose login shell is bash, fish,
zsh, tcsh and csh. fish reads ``\\'`` and ``\\\\`` inside single quotes as escapes, so a POSIX-only
quoting lets a path that ends in a backslash close the quote early and the next argument run as
a command; zsh replaces an unquoted word that starts with ``=`` by a program's path (``=ls``);
csh and tcsh expand history inside single quotes (``!#`` is the line so far, its quotes
included) and refuse a line break there."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.agent.context import ToolContext
from ai_sysadmin.agent.tools import REGISTRY
from ai_sysadmin.config import Settings
from ai_sysadmin.errors import TransportError
from ai_sysadmin.hosts.ssh import SshTransport

from .conftest import Account, ClientKey, SshHost, accounts, accounts_lab

FISH = shutil.which("fish") or "/usr/bin/fish"
ZSH = shutil.which("zsh") or "/usr/bin/zsh"
TCSH = shutil.which("tcsh") or "/usr/bin/tcsh"
#: the BSD csh (Debian's csh package), not tcsh under another name
CSH = shutil.which("bsd-csh") or "/usr/bin/bsd-csh"
#: a python every account may run (this one's may live in root's home)
PYTHON = "/usr/bin/python3"
USERS = (Account("posixy", 3311), Account("fishy", 3312, FISH), Account("zshy", 3313, ZSH),
         Account("tcshy", 3314, TCSH), Account("cshy", 3315, CSH))

#: arguments each shell reads in its own way unless quoted for all of them
TRICKY = ["a\\", "b\\\\c", "it's", "\\'", "'", "\\", "", " ", "$HOME", "~", "*", "{a,b}",
          "(echo x)", "a;b", "#c", "%self", "x\"y", "é ü", "--", "-n", "=ls", "a=b", "a!b", "!#",
          "!!", "^a^b", "two\nlines", "ends in a line break\n", "\\0101", "%b", "\\c"]


@pytest.fixture(scope="module")
def shells_host(client_key: ClientKey) -> Iterator[tuple[SshHost, Path]]:
    for shell in (FISH, ZSH, TCSH, CSH):
        assert Path(shell).exists(), f"{shell} is needed (scripts/test.sh installs it)"
    with accounts_lab(client_key, "aisa-shells-") as (netlab, ns, address, homes):
        yield netlab.sshd("shells", ns, [address], setup=accounts(homes, USERS)), homes


@pytest.mark.parametrize("user", [u.name for u in USERS])
def test_every_argument_reaches_the_program_as_given(
        shells_host: tuple[SshHost, Path], known_hosts: Path, user: str) -> None:
    host, _ = shells_host
    transport = SshTransport(host.target(host.write_known_hosts(known_hosts), user=user),
                             name="web1")
    show = "import json, sys; print(json.dumps(sys.argv[1:]))"

    async def go() -> tuple[str, list[str]]:
        try:
            ran = (await transport.run([PYTHON, "-c", show, *TRICKY])).stdout
            # a streamed command (a journal follower's) runs under sh's watch of its stdin
            streamed = [line async for line in transport.stream_lines([PYTHON, "-c", show,
                                                                       *TRICKY])]
            return ran, streamed
        finally:
            await transport.close()

    ran, streamed = asyncio.run(go())
    assert json.loads(ran) == TRICKY
    assert [json.loads(line) for line in streamed] == [TRICKY]


@pytest.mark.parametrize("user", [u.name for u in USERS])
@pytest.mark.parametrize("trick", ["backslash", "history"])
def test_a_models_read_never_runs_a_command_it_spelt_into_its_arguments(
        shells_host: tuple[SshHost, Path], known_hosts: Path, tmp_path: Path,
        user: str, trick: str) -> None:
    """What a prompt-injected model tries: a path that ends in a backslash (fish), then a
    "path" that is a command line; or that "path", then one that repeats the line so far
    (csh's history: ``!#:$`` is the last word before it, quotes and all, which unquotes
    it). The policy allows them all as paths for ls; the host must run ls."""
    host, homes = shells_host
    proof = homes / user / f"injected-{trick}"
    command = f"/ ; touch {proof} ; #"
    argv = (["ls", f"{homes / user}/a\\", command] if trick == "backslash"
            else ["ls", command, "/!#:$"])
    transport = SshTransport(host.target(host.write_known_hosts(known_hosts), user=user),
                             name="web1")
    ctx = ToolContext(Settings(ai_name="hal", state_dir=tmp_path / "state"),
                      {"web1": transport}, "web1")

    async def go() -> str:
        try:
            return (await REGISTRY.call("run_readonly", {"argv": argv}, ctx)).output
        finally:
            await transport.close()

    said = asyncio.run(go())
    assert not proof.exists(), f"the model's argument ran as a command: {said}"
    # ls was given both names, each whole
    assert argv[1] in said and argv[2] in said, said


def _argv_seen(host: SshHost, known_hosts: Path, user: str, args: list[str]) -> list[str]:
    """What a program run over SSH as ``user`` was given, each argument as its bytes."""
    transport = SshTransport(host.target(host.write_known_hosts(known_hosts), user=user),
                             name="web1")
    show = "import json, sys; print(json.dumps(sys.argv[1:]))"

    async def go() -> str:
        try:
            return (await transport.run([PYTHON, "-c", show, *args])).stdout
        finally:
            await transport.close()

    return json.loads(asyncio.run(go()))


@pytest.mark.parametrize("user", [u.name for u in USERS])
def test_a_file_name_that_is_no_utf8_reaches_the_program_byte_for_byte(
        shells_host: tuple[SshHost, Path], known_hosts: Path, user: str) -> None:
    """A Latin-1 file name (b'caf\\xe9', held as Python's surrogate escape) runs as it does
    on the local transport, where the SSH command line (UTF-8 only) raised
    UnicodeEncodeError."""
    host, _ = shells_host
    args = ["/srv/caf\udce9.txt", "it's caf\udce9!"]
    assert _argv_seen(host, known_hosts, user, args) == args


@pytest.mark.parametrize("user", [u.name for u in USERS])
def test_a_few_kilobytes_with_a_line_break_reach_the_program(
        shells_host: tuple[SshHost, Path], known_hosts: Path, user: str) -> None:
    """An argument with a line break goes encoded; encoded byte by byte, 3 KB grew past the
    8 KB word BSD csh takes ("Word too long.") and the command never ran."""
    host, _ = shells_host
    args = ["a b, c\\d! " * 300 + "\n", "second\n"]
    assert _argv_seen(host, known_hosts, user, args) == args


def test_an_argument_no_program_can_be_given_is_refused_in_words(
        shells_host: tuple[SshHost, Path], known_hosts: Path) -> None:
    """A lone surrogate (a model's JSON may hold one) is no bytes at all: a clear refusal,
    not a UnicodeEncodeError from the SSH library."""
    host, _ = shells_host
    with pytest.raises(TransportError, match="invalid argument in argv"):
        _argv_seen(host, known_hosts, "posixy", ["\ud800"])
