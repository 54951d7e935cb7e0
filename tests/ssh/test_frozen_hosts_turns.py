"""Hosts that do not answer keep no healthy host waiting for its turn (``check_concurrency``).

A fleet's checks share ``check_concurrency`` turns. A host that answers nothing (here: one
behind a black hole, whose connection waits out its timeout) held its turn through the
whole timeout: with 200 of 242 hosts frozen, the healthy ones were checked every 54-92 s at
a 30 s interval. A turn is now given back after ``TURN_SECONDS``, and a host whose last
collection outlived its turn is asked without one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ai_sysadmin.config import Settings
from ai_sysadmin.hosts.ssh import SshTransport
from ai_sysadmin.orchestrator.checker import CheckReport, HostChecker, fleet_checkers
from ai_sysadmin.orchestrator.turns import TURN_SECONDS

from .conftest import Hosts

#: the dead hosts' connect timeout: past one turn, and short of two (the healthy host waits
#: for two dead ones' turns at the first check)
CONNECT_TIMEOUT = TURN_SECONDS + 1.5


def test_hosts_that_do_not_answer_give_their_turn_to_a_healthy_one(
    ssh_hosts: Hosts, known_hosts: Path, tmp_path: Path
) -> None:
    good = ssh_hosts.alpha
    kh = good.write_known_hosts(known_hosts)
    dead = [SshTransport(good.target(kh, host=ssh_hosts.blackhole,
                                     connect_timeout=CONNECT_TIMEOUT), name=f"dead{i}")
            for i in (1, 2)]
    healthy = SshTransport(good.target(kh), name="healthy")
    settings = Settings(ai_name="hal", state_dir=tmp_path / "state", check_concurrency=1)
    # the dead hosts are first in line: one turn for three hosts
    checkers = fleet_checkers([*dead, healthy], settings, None)

    async def one_round() -> tuple[list[str], dict[str, CheckReport]]:
        ended: list[str] = []

        async def check(checker: HostChecker) -> CheckReport:
            report = await checker.check("interval")
            ended.append(checker.host)
            return report

        reports = await asyncio.gather(*(check(c) for c in checkers))
        return ended, {r.host: r for r in reports}

    async def scenario() -> list[tuple[list[str], dict[str, CheckReport]]]:
        try:
            return [await one_round(), await one_round()]
        finally:
            await asyncio.gather(*(t.close() for t in (*dead, healthy)))

    (first, first_reports), (second, second_reports) = asyncio.run(scenario())
    for reports in (first_reports, second_reports):
        assert reports["healthy"].snapshot.memory is not None
        for name in ("dead1", "dead2"):
            assert [f.rule for f in reports[name].findings] == ["host_unreachable"], name
    # the first look: each dead host held the one turn for TURN_SECONDS, not for its whole
    # connect timeout; the second dead host was still connecting when the healthy one ended
    assert first.index("healthy") < first.index("dead2"), first
    # the next: the dead hosts, whose collection outlived their turns, wait for none
    assert second[0] == "healthy", second
