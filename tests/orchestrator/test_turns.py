"""The fleet's turns (``check_concurrency``): a turn held too long is given back, a host that
outlived its turn takes none the next time, and a cancelled collection loses no turn."""

from __future__ import annotations

import asyncio

from ai_sysadmin.orchestrator.turns import SLOW_POOL, Turns


def test_a_turn_is_given_back_after_its_hold_and_the_slow_host_then_takes_none() -> None:
    async def scenario() -> None:
        turns = Turns(1, hold=0.2)
        slow_may_end, slow_has_it = asyncio.Event(), asyncio.Event()

        async def slow() -> bool:
            async with turns.turn("slow") as turn:
                slow_has_it.set()
                await slow_may_end.wait()
            return turn.outlived

        slow_task = asyncio.create_task(slow())
        await slow_has_it.wait()  # the slow host has the one turn
        async with asyncio.timeout(5), turns.turn("quick") as quick:  # given back at 0.2 s
            pass
        assert not quick.outlived
        slow_may_end.set()
        assert await slow_task
        assert turns.outlived == {"slow"}
        async with turns.turn("quick"):  # holds the one turn; "slow" is asked without one
            async with asyncio.timeout(1), turns.turn("slow"):
                pass
        assert turns.outlived == set()  # it answered within its turn

    asyncio.run(scenario())


def test_a_cancelled_collection_gives_its_turn_back() -> None:
    async def scenario() -> None:
        turns = Turns(1, hold=60)

        has_it = asyncio.Event()

        async def hang() -> None:
            async with turns.turn("a"):
                has_it.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(hang())
        await has_it.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        async with asyncio.timeout(1), turns.turn("b"):
            pass

    asyncio.run(scenario())


def test_hosts_asked_without_a_turn_are_bounded_by_a_pool_of_their_own() -> None:
    """Hosts slow for good (a long way, a jump host) all outlive their turns: they are not
    all asked at once, but at most SLOW_POOL times the turns."""
    async def scenario() -> int:
        turns = Turns(1, hold=0.05)
        at_once = most = 0
        proceed = asyncio.Event()

        async def slow(host: str) -> None:
            nonlocal at_once, most
            async with turns.turn(host):
                at_once += 1
                most = max(most, at_once)
                await proceed.wait()
                at_once -= 1

        hosts = [f"h{n}" for n in range(2 * SLOW_POOL)]
        turns.outlived.update(hosts)  # each outlived its turn the last time
        tasks = [asyncio.create_task(slow(h)) for h in hosts]
        async with asyncio.timeout(5):
            while most < SLOW_POOL:
                await asyncio.sleep(0.01)
        proceed.set()
        await asyncio.gather(*tasks)
        return most

    assert asyncio.run(scenario()) == SLOW_POOL


def test_a_slow_host_whose_wait_for_the_pool_is_cancelled_stays_slow() -> None:
    """A check cancelled while it waits for the slow pool (a stop, a host renewed) has not
    answered in time: the host is still asked without a turn next time."""
    async def scenario() -> set[str]:
        turns = Turns(1, hold=60)
        hosts = [f"h{n}" for n in range(SLOW_POOL + 1)]
        turns.outlived.update(hosts)
        inside = 0
        release = asyncio.Event()

        async def slow(host: str) -> None:
            nonlocal inside
            async with turns.turn(host):
                inside += 1
                await release.wait()

        tasks = [asyncio.create_task(slow(h)) for h in hosts]
        async with asyncio.timeout(5):
            while inside < SLOW_POOL:  # the pool is full: the last host waits
                await asyncio.sleep(0.01)
        tasks[-1].cancel()
        await asyncio.gather(tasks[-1], return_exceptions=True)
        release.set()
        await asyncio.gather(*tasks[:-1])
        return turns.outlived

    outlived = asyncio.run(scenario())
    assert f"h{SLOW_POOL}" in outlived
