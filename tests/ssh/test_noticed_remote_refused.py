"""A host that answers but runs none of the check's commands (its login shell is nologin), over
real SSH: the one round trip keeps the host's refusal as such, `check` says it once with the
sections it cost, and `systems refresh` fails for it and says why."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ai_sysadmin.config import Settings
from ai_sysadmin.errors import CommandRefused, TransportError
from ai_sysadmin.hosts.ssh import SshTransport
from ai_sysadmin.monitor.collector import Collector
from ai_sysadmin.monitor.remote_script import ReplayTransport, run_round_trip

from .conftest import SshHost
from .test_refusing_hosts import config, odd_host  # noqa: F401 - fixtures
from .test_remote_approve import _cli

#: the nologin account's answer to every command, as a check says it
SAID = "This account is currently not available."
NOLOGIN_WORDS = ("the login shell of nolog refuses to run commands: it ended with exit 1 "
                 f"before running any, saying: {SAID}")
#: every section a check of that host collects, each of which the refusal costs
SECTIONS = ("cpu", "memory", "swap", "load", "container", "uptime_seconds", "mounts", "os",
            "units", "unit_files", "restarts", "core_dumps", "journal", "processes", "zombies",
            "reboot", "nixos_boot", "oom_kills", "service_tasks", "kernel_limits", "clock_sync",
            "md_arrays", "zfs_pools", "kernel_taint", "fs_errors")


def _replay(transport: SshTransport, tmp_path: Path) -> ReplayTransport:
    """One check's round trip to the host, as the collector plans and sends it."""
    trip = Collector(transport, Settings(ai_name="hal", state_dir=tmp_path)).script()

    async def go() -> ReplayTransport:
        try:
            return await run_round_trip(transport, trip)
        finally:
            await transport.close()

    return asyncio.run(go())


def test_a_round_trip_keeps_a_refusal_apart_from_a_host_that_did_not_answer(
    odd_host: SshHost, known_hosts: Path, tmp_path: Path  # noqa: F811
) -> None:
    kh = odd_host.write_known_hosts(known_hosts)
    refusing = _replay(SshTransport(odd_host.target(kh, user="nolog"), name="no-login"),
                       tmp_path)
    assert isinstance(refusing.refusal, CommandRefused)
    assert refusing.refusal.said == SAID
    # each command of the check gets the host's answer, as the refusal it is
    with pytest.raises(CommandRefused) as refused:
        refusing.answer(("cat", "--", "/proc/stat"))
    assert str(refused.value) == f"no-login: {NOLOGIN_WORDS}" and refused.value.said == SAID

    down = _replay(SshTransport(odd_host.target(kh, host="127.0.0.1", port=1), name="down"),
                   tmp_path)
    assert down.refusal is None and isinstance(down.failure, TransportError)
    with pytest.raises(TransportError) as failed:
        down.answer(("cat", "--", "/proc/stat"))
    assert not isinstance(failed.value, CommandRefused)
    assert "'cat -- /proc/stat': no answer: connection refused" in str(failed.value)


def test_check_says_a_refusal_once_with_the_sections_it_cost(config: Path) -> None:  # noqa: F811
    done = _cli(config, "check", "no-login")
    assert done.returncode == 2, done.stderr
    assert done.stdout.count(SAID) == 1, done.stdout
    assert f"no-login refused the check: {NOLOGIN_WORDS}\n" in done.stdout
    assert (f"not collected ({len(SECTIONS)} section(s), refused): {', '.join(SECTIONS)}\n"
            in done.stdout)

    report = json.loads(_cli(config, "check", "no-login", "--json").stdout)
    assert report["refused"] == NOLOGIN_WORDS and report["reachable"] is True

    fleet = _cli(config, "check", "--all")
    # the hosts that answered share this busy machine's load, memory and CPU: where one of
    # them shows it (a finding), findings decide the code (1), else the refusals do (2)
    found = ", 0 with findings," not in fleet.stdout.splitlines()[-1]
    assert fleet.returncode == (1 if found else 2), fleet.stdout
    (line,) = [line for line in fleet.stdout.splitlines() if line.startswith("no-login ")]
    assert line == f"no-login refused the check: {NOLOGIN_WORDS} (not collected: " \
        f"{', '.join(SECTIONS)})"
    # the other host whose login shell runs nothing refused it too, named once
    assert "\nfalse-shell refused the check: the login shell of fuser refuses to run " \
        "commands" in fleet.stdout
    assert fleet.stdout.splitlines()[-1].endswith("4 not fully collected (2 refused the check)")


def test_refresh_fails_for_a_host_that_runs_nothing_and_says_why(
    config: Path  # noqa: F811
) -> None:
    done = _cli(config, "systems", "refresh", "no-login")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == f"no-login: refused the check: {NOLOGIN_WORDS}\n"

    every = _cli(config, "systems", "refresh", "--json")
    assert every.returncode == 2, every.stderr
    rows = {r["name"]: r for r in json.loads(every.stdout)}
    assert rows["no-login"]["refused"] == NOLOGIN_WORDS
    assert rows["no-login"]["reachable"] is True
    # a host that ran the check is not refused, a partial one (hidepid) included, and a
    # host whose sudo wants a password, which only a fix would meet
    assert all(rows[name]["refused"] is None for name in ("as-root", "as-alice", "sudo-pw"))
    assert _cli(config, "systems", "refresh", "as-alice").returncode == 0
