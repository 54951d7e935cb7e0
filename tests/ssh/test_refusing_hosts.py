"""Hosts that answer but will not run, or show, what a check asks, over real SSH: an account
whose login shell is no shell (nologin, /bin/false), a /proc mounted ``hidepid=2`` for a user
who is not root; and a fix that sudo would run only with a password. Each is said in the host's
own words; none is taken for a host that cannot be reached, nor for a healthy one."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import TransportError
from ai_sysadmin.hosts.ssh import SshTransport
from ai_sysadmin.hosts.transport import CommandRefused
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.snapshot import Snapshot
from tests.lab.daemon_runner import QUIET_HOST_WIDE

from .conftest import Account, ClientKey, SshHost, accounts, accounts_lab, wait_until
from .test_remote_approve import _cli, _propose

USERS = (Account("alice", 3101), Account("nolog", 3102, "/usr/sbin/nologin"),
         Account("fuser", 3103, "/bin/false"), Account("pwsudo", 3104))
#: pwsudo may run anything as root, with its password: `sudo -n` cannot
SUDOERS = "root ALL=(ALL:ALL) ALL\npwsudo ALL=(ALL:ALL) ALL\n"
#: the managed hosts: one sshd, reached as each of its users, each at a port of its own
#: (remote_systems refuses one machine twice: at one port they would be one machine)
SYSTEMS = {"as-root": ("root", False), "as-alice": ("alice", False),
           "no-login": ("nolog", False), "false-shell": ("fuser", False),
           "sudo-pw": ("pwsudo", True)}
PORTS = dict(zip(SYSTEMS, range(2201, 2201 + len(SYSTEMS)), strict=True))
SUDO_WORDS = "sudo on sudo-pw needs a password: `sudo -n` failed: a password is required"
HIDDEN = re.compile(r"/proc is mounted hidepid=(2|invisible): as alice the process table holds "
                    r"only alice's processes; check as root or mount /proc with gid= a group "
                    r"the checking user is in")


@pytest.fixture(scope="module")
def odd_host(client_key: ClientKey) -> Iterator[SshHost]:
    """One sshd whose host has the users above and a /proc that hides others' processes."""
    with accounts_lab(client_key, "aisa-odd-") as (netlab, ns, address, homes):
        setup = accounts(homes, USERS, SUDOERS) + "mount -t proc -o hidepid=2 proc /proc && "
        more = [f"ListenAddress {address}:{port}" for port in PORTS.values()]
        host = netlab.sshd("odd", ns, [address], extra=more, setup=setup)
        assert host.log is not None
        wait_until(lambda: host.log.read_text().count("Server listening on") > len(PORTS),
                   "sshd odd listening on every port")
        yield host


@pytest.fixture
def config(odd_host: SshHost, known_hosts: Path, tmp_path: Path) -> Path:
    alg_key = odd_host.known_hosts_line.split(" ", 1)[1]
    known_hosts.write_text(odd_host.known_hosts_line + "".join(
        f"[{odd_host.address}]:{port} {alg_key}" for port in PORTS.values()))
    systems = ", ".join(
        f'{{host = "{odd_host.address}", port = {PORTS[name]}, name = "{name}", '
        f'user = "{user}", '
        f'sudo = {"true" if sudo else "false"}}}' for name, (user, sudo) in SYSTEMS.items())
    path = tmp_path / "config.toml"
    path.write_text(
        'ai_name = "hal"\nautonomy_level = "suggest"\n'
        f'state_dir = "{tmp_path / "state"}"\nremote_systems = [{systems}]\n'
        f'[ssh]\nknown_hosts = "{known_hosts}"\nkey_files = ["{odd_host.client.private}"]\n'
        'use_ssh_config = false\nconnect_timeout = 3\n'
        # the rules that read the whole machine (load, memory) judge the test machine, busy
        # with the rest of the suite: quiet, so an exit code tells of the refusals alone
        '[thresholds]\n' + "".join(f"{k} = {v}\n" for k, v in QUIET_HOST_WIDE.items()))
    return path


def _check(config: Path, name: str) -> tuple[int, dict[str, object]]:
    done = _cli(config, "check", name, "--json")
    return done.returncode, json.loads(done.stdout)


def test_a_sudo_host_is_checked_as_its_login_user_and_sudo_is_not_asked(config: Path) -> None:
    """``sudo = true`` is for fixes alone: pwsudo's sudo wants a password, and the check,
    run as pwsudo, never meets it; it sees what pwsudo may see (its own processes)."""
    code, report = _check(config, "sudo-pw")
    assert code == 2, report
    assert report["reachable"] is True and report["refused"] is None
    errors = report["errors"]
    assert isinstance(errors, dict) and set(errors) == {"processes", "zombies"}, errors
    assert all("as pwsudo the process table holds only pwsudo's processes" in why
               for why in errors.values()), errors


@pytest.mark.parametrize(("name", "user", "said"), [
    ("no-login", "nolog", "saying: This account is currently not available."),
    ("false-shell", "fuser", "saying nothing"),
])
def test_a_login_shell_that_runs_no_commands_is_said(
    config: Path, name: str, user: str, said: str
) -> None:
    code, report = _check(config, name)
    assert code == 2, report
    assert report["reachable"] is True and report["findings"] == []
    errors = report["errors"]
    assert isinstance(errors, dict) and "cpu" in errors
    assert set(errors.values()) == {
        f"the login shell of {user} refuses to run commands: it ended with exit 1 "
        f"before running any, {said}"}


def test_commands_of_an_account_that_runs_none_are_refused_not_failed(
    odd_host: SshHost, known_hosts: Path
) -> None:
    kh = odd_host.write_known_hosts(known_hosts)
    nolog = SshTransport(odd_host.target(kh, user="nolog"), name="no-login")
    alice = SshTransport(odd_host.target(kh, user="alice"), name="as-alice")

    async def go() -> tuple[TransportError, int]:
        try:
            with pytest.raises(CommandRefused) as refused:
                await nolog.run(["true"])
            # a command that fails where commands run is its own answer, not a refusal
            return refused.value, (await alice.run(["false"])).returncode
        finally:
            await nolog.close()
            await alice.close()

    refused, code = asyncio.run(go())
    assert "This account is currently not available." in str(refused)
    assert code == 1


@pytest.fixture
def zombie_parent() -> Iterator[int]:
    """A root process with 25 children it never waits for."""
    parent = subprocess.Popen(["sh", "-c", "for i in $(seq 25); do /bin/true & done; "
                               "exec sleep 300"], start_new_session=True)

    def zombies() -> int:
        children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
        states = []
        for child in children:
            try:
                states.append(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0])
            except OSError:
                continue
        return states.count("Z")

    try:
        wait_until(lambda: zombies() >= 25, "25 zombie children")
        yield parent.pid
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait(5)


def test_a_proc_that_hides_processes_is_not_taken_for_a_healthy_host(
    config: Path, zombie_parent: int
) -> None:
    code, as_root = _check(config, "as-root")
    findings = as_root["findings"]
    assert isinstance(findings, list)
    assert any(f["rule"] == "zombie_processes" and f"pid {zombie_parent} " in f["evidence"][0]
               for f in findings), findings
    code, as_alice = _check(config, "as-alice")
    # alice sees her own processes only: the zombies are not there to see, and the host is
    # not called healthy for it
    assert code == 2, as_alice
    assert as_alice["reachable"] is True and as_alice["findings"] == []
    errors = as_alice["errors"]
    assert isinstance(errors, dict) and set(errors) == {"processes", "zombies"}
    assert all(HIDDEN.fullmatch(why) for why in errors.values()), errors


class PerCommand(SshTransport):
    """The real transport, collected command by command instead of in one script."""

    one_round_trip = False


def test_both_paths_say_the_process_table_is_partial(
    odd_host: SshHost, known_hosts: Path, tmp_path: Path
) -> None:
    target = odd_host.target(odd_host.write_known_hosts(known_hosts), user="alice")
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state")

    async def go() -> tuple[Snapshot, Snapshot]:
        script, each = SshTransport(target, name="as-alice"), PerCommand(target, name="as-alice")
        try:
            return (await Collector(script, settings).collect(),
                    await Collector(each, settings).collect())
        finally:
            await script.close()
            await each.close()

    one, per = asyncio.run(go())
    for snap in (one, per):
        assert HIDDEN.fullmatch(snap.errors.get("processes", "")), snap.errors
        assert snap.errors["zombies"] == snap.errors["processes"]
        # what alice does see is kept: her own processes
        assert {p.user for p in snap.processes or []} == {"alice"}


@pytest.mark.parametrize(("name", "why"), [
    ("sudo-pw", SUDO_WORDS),
    ("no-login", "no-login: the login shell of nolog refuses to run commands"),
])
def test_an_approved_fix_for_a_host_that_runs_nothing_runs_nothing_and_says_why(
    config: Path, name: str, why: str
) -> None:
    action_id = _propose(config, name, "app.service")
    done = _cli(config, "approve", "approve", str(action_id), "--json")
    action = json.loads(done.stdout)
    assert done.returncode == 2, done.stderr
    assert action["state"] == "pending" and action["started_at"] is None
    # sudo-pw: `sudo -n -l` wants the password even to answer, and says nothing of the fix;
    # the run is tried ("running ..."), and sudo refuses it before anything runs
    assert done.stderr.splitlines()[-1].startswith(
        f"error: action {action_id} did not run and waits for approval again: needs a "
        "person: not run, nothing ran: ")
    assert why in done.stderr
