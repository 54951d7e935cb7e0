"""A host that speaks German (its login environment has LANG, or LC_ALL, de_DE.UTF-8, as
NixOS's i18n.defaultLocale or Debian's /etc/default/locale give it): every command the project
runs there answers in the C locale, so a program that is not installed is "cannot start" (not
an exit code with a German sentence) and what the model reads is English, with numbers and
dates as C writes them, while the host's UTF-8 stays UTF-8 (a command line with umlauts is not
turned into question marks)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.errors import TransportError
from ai_sysadmin.hosts.ssh import SshTransport
from ai_sysadmin.hosts.transport import LocalTransport, Transport
from ai_sysadmin.monitor.remote_script import ReplayTransport, RoundTrip, run_round_trip

from .conftest import ClientKey, NetLab, SshHost

GERMAN = "de_DE.UTF-8"
#: a process whose command line is not ASCII, as ps must show it
UMLAUTS = "grüße-schläfer"
#: commands whose output a German locale changes (numbers, dates), with what C prints
FORMATS = {("numfmt", "--to=si", "1500"): "1.5K\n",
           ("date", "-u", "-d", "@0", "+%c"): "Thu Jan  1 00:00:00 1970\n"}


@pytest.fixture(scope="module")
def locales(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LOCPATH holding de_DE.UTF-8, made here (this machine compiles no locale but C); the
    German messages themselves come with the programs (/usr/share/locale/de)."""
    if not shutil.which("localedef"):
        pytest.fail("localedef (libc-bin) is needed to make a German locale")
    where = tmp_path_factory.mktemp("locales")
    subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8", str(where / GERMAN)],
                   check=True, capture_output=True)
    # the test means something only where the programs do speak German
    env = {"LOCPATH": str(where), "LANG": GERMAN, "PATH": "/usr/bin:/bin"}
    german = subprocess.run(["ls", "/nothing-here"], capture_output=True, text=True, env=env)
    assert "Datei oder Verzeichnis nicht gefunden" in german.stderr, german.stderr
    number = subprocess.run(["numfmt", "--to=si", "1500"], capture_output=True, text=True,
                            env=env)
    assert number.stdout == "1,5K\n", number.stdout
    return where


@pytest.fixture(scope="module")
def german_hosts(tmp_path_factory: pytest.TempPathFactory, client_key: ClientKey,
                 locales: Path) -> Iterator[dict[str, SshHost]]:
    """Two hosts: one in German by LANG, one by LC_ALL (which overrides every category)."""
    netlab = NetLab(tmp_path_factory.mktemp("localenet"), client_key)
    try:
        hosts = {}
        for name, variable in (("lang", "LANG"), ("lcall", "LC_ALL")):
            netns, address = netlab.namespace()
            hosts[variable] = netlab.sshd(name, netns, [address], extra=[
                f"SetEnv {variable}={GERMAN} LOCPATH={locales}"])
        yield hosts
    finally:
        netlab.close()


@pytest.fixture(scope="module")
def umlauts() -> Iterator[int]:
    """A sleeping process named :data:`UMLAUTS` (the network namespaces share its pids)."""
    proc = subprocess.Popen([UMLAUTS, "600"], executable=shutil.which("sleep"))
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def _remote(host: SshHost, known_hosts: Path) -> SshTransport:
    return SshTransport(host.target(host.write_known_hosts(known_hosts)), name=host.name)


async def _commands(transport: Transport, pid: int
                    ) -> tuple[str, str, TransportError, dict[tuple[str, ...], str]]:
    """What ls says of a missing file, how ps shows ``pid``, a missing program's error, and
    what :data:`FORMATS`' commands print."""
    try:
        missing_file = await transport.run(["ls", "/nothing-here"])
        listing = await transport.run(["ps", "-o", "args=", "-p", str(pid)])
        with pytest.raises(TransportError) as missing_program:
            await transport.run(["no-such-program", "--version"])
        formats = {argv: (await transport.run(argv)).stdout for argv in FORMATS}
        return missing_file.stderr, listing.stdout, missing_program.value, formats
    finally:
        await transport.close()


@pytest.mark.parametrize("variable", ["LANG", "LC_ALL"])
def test_a_german_hosts_commands_answer_in_c_in_utf8(
        variable: str, german_hosts: dict[str, SshHost], known_hosts: Path,
        umlauts: int) -> None:
    missing_file, listing, missing_program, formats = asyncio.run(
        _commands(_remote(german_hosts[variable], known_hosts), umlauts))
    assert missing_file == "ls: cannot access '/nothing-here': No such file or directory\n"
    assert listing == f"{UMLAUTS} 600\n"
    assert str(missing_program).startswith(
        f"{german_hosts[variable].name}: cannot start 'no-such-program': ")
    assert formats == FORMATS


@pytest.mark.parametrize("careful", [True, False], ids=["careful", "plain"])
@pytest.mark.parametrize("variable", ["LANG", "LC_ALL"])
def test_a_german_hosts_check_script_answers_in_c_in_utf8(
        variable: str, careful: bool, german_hosts: dict[str, SshHost], known_hosts: Path,
        umlauts: int) -> None:
    """The same through a check's one script (careful: each command under timeout(1))."""
    listing = ("ps", "-o", "args=", "-p", str(umlauts))
    trip = RoundTrip.plan([("ls", "/nothing-here"), ("no-such-program", "--version"), listing,
                           *FORMATS], 10, careful=careful)
    transport = _remote(german_hosts[variable], known_hosts)

    async def check() -> ReplayTransport:
        try:
            return await run_round_trip(transport, trip)
        finally:
            await transport.close()

    replay = asyncio.run(check())
    assert replay.answer(("ls", "/nothing-here")).stderr == \
        "ls: cannot access '/nothing-here': No such file or directory\n"
    assert replay.answer(listing).stdout == f"{UMLAUTS} 600\n"
    assert {argv: replay.answer(argv).stdout for argv in FORMATS} == FORMATS
    with pytest.raises(TransportError, match=f"^{german_hosts[variable].name}: cannot start "
                       "'no-such-program': "):
        replay.answer(("no-such-program", "--version"))


def test_this_machine_in_german_runs_its_commands_in_c_in_utf8(
        locales: Path, umlauts: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's own environment (systemd gives it the system's LANG) is German here."""
    monkeypatch.setenv("LOCPATH", str(locales))
    monkeypatch.setenv("LC_ALL", GERMAN)
    transport = LocalTransport("here")

    async def go() -> tuple[str, str, str, dict[tuple[str, ...], str]]:
        missing_file = await transport.run(["ls", "/nothing-here"])
        listing = await transport.run(["ps", "-o", "args=", "-p", str(umlauts)])
        script = await transport.run_script("timeout 5 no-such-program; echo done; "
                                            "echo done >&2", "done", 10)
        formats = {argv: (await transport.run(argv)).stdout for argv in FORMATS}
        return missing_file.stderr, listing.stdout, script.stderr, formats

    missing_file, listing, script, formats = asyncio.run(go())
    assert missing_file == "ls: cannot access '/nothing-here': No such file or directory\n"
    assert listing == f"{UMLAUTS} 600\n"
    assert script.startswith("timeout: failed to run command"), script
    assert formats == FORMATS
