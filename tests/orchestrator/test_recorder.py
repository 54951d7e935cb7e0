"""Checks that land together are stored together, each still on its own: one that fails to
store is rolled back alone, and its caller hears why; the others are kept."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_sysadmin.errors import StoreError
from ai_sysadmin.monitor.findings import Finding, Severity
from ai_sysadmin.orchestrator.recorder import CheckRecorder
from ai_sysadmin.store import CheckOutcome, Database, IncidentStore
from tests.support.needs_root import needs_root


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


#: on a 2 MiB tmpfs, filled: six checks of 2000 journal lines each, landing together (one
#: transaction, each in a savepoint: more than SQLite's page cache holds, so it spills to the
#: full disk mid-statement and rolls the whole transaction back); then, the disk freed, one
#: more check. What each caller got, in JSON.
_FULL_BATCH = """
import asyncio, errno, json, os, sys, time
from pathlib import Path
from ai_sysadmin.monitor.snapshot import JournalEntry
from ai_sysadmin.orchestrator.recorder import CheckRecorder
from ai_sysadmin.store import Database, IncidentStore
disk = Path(sys.argv[1])
store = IncidentStore(Database(disk / "state.db"))
store.record_check("h0", [], {"failed_unit"})
with (disk / "filler").open("wb", buffering=0) as out:
    try:
        while True:
            out.write(bytes(65536))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
def check(host, lines):
    journal = [JournalEntry(cursor=f"{host}-{n}", timestamp=time.time(), priority=4,
                            message=f"{host} line {n} " + os.urandom(150).hex(),
                            unit="app.service") for n in range(lines)]
    return lambda: store.record_check(host, [], {"failed_unit"}, journal=journal,
                                      journal_cursor=f"{host}-end")
async def main():
    recorder = CheckRecorder(store)
    full = await asyncio.gather(*(recorder.record(check(f"web{n}", 2000)) for n in range(6)),
                                return_exceptions=True)
    (disk / "filler").unlink()
    freed = await recorder.record(check("web9", 10))
    return [[type(r).__name__, str(r)] for r in full], type(freed).__name__
print(json.dumps(asyncio.run(main())))
"""


def test_a_batch_of_checks_on_a_full_disk_is_refused_as_a_full_disk(tmp_path: Path) -> None:
    """SQLite rolls a transaction back by itself when the disk fills mid-statement: the
    savepoint of the check being written went with it, and the batch's checks failed as "no
    such savepoint: check_recorded", which the daemon took for a bug of its own, not for the
    full disk its store-down handling says once."""
    needs_root("a tmpfs of its own")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
         'mount -t tmpfs -o size=2m tmpfs "$1" && shift && exec "$@"', "sh", str(disk),
         sys.executable, "-c", _FULL_BATCH, str(disk)],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    full, freed = json.loads(done.stdout)
    assert len(full) == 6
    for kind, said in full:
        assert kind == "StoreRefused", said
        assert "the disk is full" in said and "nothing of this change was stored" in said
    assert freed == "CheckOutcome"  # the disk freed, checks are stored again
