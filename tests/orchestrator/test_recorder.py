"""Checks that land together are stored together, each still on its own: one that fails to
store is rolled back alone, and its caller hears why; the others are kept."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_sysadmin.errors import StoreError
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.recorder import CheckRecorder
from ai_sysadmin.store import CheckOutcome, Database, IncidentStore


def failed(host: str) -> Finding:
    return Finding(host, "failed_unit", "nginx.service", Severity.CRITICAL,
                   "nginx.service has failed", ("nginx.service: active=failed",))


def test_a_burst_of_checks_is_stored_and_a_broken_one_alone_is_lost(tmp_path: Path) -> None:
    store = IncidentStore(Database(tmp_path / "state.db"))
    recorder = CheckRecorder[CheckOutcome](store)
    hosts = [f"web{n}" for n in range(20)]

    def broken() -> CheckOutcome:
        # half written, then it fails: none of it may stay
        store.record_check("broken", [failed("broken")], {"failed_unit"})
        raise StoreError("disk trouble while storing the check of broken")

    async def go() -> list[CheckOutcome | BaseException]:
        writes = [recorder.record(lambda h=h: store.record_check(h, [failed(h)], {"failed_unit"}))
                  for h in hosts[:10]]
        writes.append(recorder.record(broken))
        writes += [recorder.record(lambda h=h: store.record_check(h, [failed(h)], {"failed_unit"}))
                   for h in hosts[10:]]
        return await asyncio.gather(*writes, return_exceptions=True)

    results = asyncio.run(go())
    error = results.pop(10)
    assert isinstance(error, StoreError) and "broken" in str(error)
    assert all(isinstance(r, CheckOutcome) and len(r.opened) == 1 for r in results)
    stored = {i.host for i in store.incidents()}
    assert stored == set(hosts)  # every other check kept; nothing of the broken one
    assert "broken" not in {h["name"] for h in store.hosts()}


def test_checks_landing_while_one_is_written_are_written_together(tmp_path: Path) -> None:
    """The first check is written at once; those that land meanwhile wait for it, then go in
    one transaction (one hop to the worker thread for all of them)."""
    store = IncidentStore(Database(tmp_path / "state.db"))
    recorder = CheckRecorder[CheckOutcome](store)
    first_writing, let_go = threading.Event(), threading.Event()
    # each hop to the worker thread, with the checks it carried: the recorder's own writer,
    # counted on this instance (a thread's name cannot tell hops apart: asyncio.to_thread
    # hands separate calls to the same idle worker)
    hops: list[list[str]] = []
    hosts_of: dict[int, str] = {}
    write_batch = recorder._write

    def counted(writes: list[Callable[[], CheckOutcome]]) -> list[CheckOutcome | Exception]:
        hops.append([hosts_of[id(w)] for w in writes])
        return write_batch(writes)

    recorder._write = counted  # type: ignore[method-assign]

    def first() -> CheckOutcome:
        first_writing.set()
        assert let_go.wait(30)
        return store.record_check("web0", [failed("web0")], {"failed_unit"})

    def later(host: str) -> Callable[[], CheckOutcome]:
        def write() -> CheckOutcome:
            return store.record_check(host, [failed(host)], {"failed_unit"})
        hosts_of[id(write)] = host
        return write

    async def go() -> list[CheckOutcome]:
        hosts_of[id(first)] = "web0"
        writes = [asyncio.ensure_future(recorder.record(first))]
        assert await asyncio.to_thread(first_writing.wait, 30)
        writes += [asyncio.ensure_future(recorder.record(later(h)))
                   for h in ("web1", "web2", "web3")]
        deadline = time.monotonic() + 10
        while len(recorder._pending) < 3:  # they are queued behind the first
            assert time.monotonic() < deadline, "the later checks never queued"
            await asyncio.sleep(0)
        let_go.set()
        return list(await asyncio.gather(*writes))

    outcomes = asyncio.run(go())
    assert [len(o.opened) for o in outcomes] == [1, 1, 1, 1]
    # the first alone, at once; the three that landed meanwhile: one hop, one transaction
    assert hops == [["web0"], ["web1", "web2", "web3"]]
    assert {i.host for i in store.incidents()} == {"web0", "web1", "web2", "web3"}


def test_a_cancelled_caller_still_has_its_check_stored(tmp_path: Path) -> None:
    store = IncidentStore(Database(tmp_path / "state.db"))
    recorder = CheckRecorder[CheckOutcome](store)
    writing, let_go = threading.Event(), threading.Event()

    def slow() -> CheckOutcome:
        writing.set()
        assert let_go.wait(30)
        return store.record_check("web1", [failed("web1")], {"failed_unit"})

    async def go() -> None:
        caller = asyncio.ensure_future(recorder.record(slow))
        assert await asyncio.to_thread(writing.wait, 30)
        caller.cancel()
        let_go.set()
        with pytest.raises(asyncio.CancelledError):
            await caller
        drain = recorder._draining
        assert drain is not None
        await drain  # the write it had started ends, committed

    asyncio.run(go())
    assert [i.host for i in store.incidents()] == ["web1"]
